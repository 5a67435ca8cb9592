package chaos

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/testing/etcdtest"
	"github.com/turnstile-go/turnstile/internal/testing/foreign"
)

// The other libraries' locks that contend on the mutex's name beside
// turnstile's clients, as in a fleet that mixes them.
const (
	ZKLock    = "zk.Lock"     // go-zookeeper's Lock, in this process
	Curator   = "curator"     // Apache Curator's InterProcessMutex, in a JVM of its own
	EtcdMutex = "concurrency" // etcd's concurrency.Mutex, in this process
)

// withCurator adds Curator's mutex clients to the foreign ones on
// ZooKeeper (see fleetOf).
var withCurator = flag.Bool("chaos.curator", false, "Curator mutex clients among the foreign ones on ZooKeeper")

// fleetOf returns the foreign locks that speak the service's protocol:
// Curator only when asked (withCurator) and its driver can be compiled.
// Curator learns of its session's end late under these faults, and its
// holds then count as live past the server's grant to the next holder,
// turnstile's or another Curator's: the checker reported such overlaps
// in 2 of 5 short runs, with every turnstile recipe clean.
func fleetOf(t interface{ Logf(string, ...any) }, service string, withCurator bool) []string {
	if service == "etcd" {
		return []string{EtcdMutex}
	}
	if !withCurator {
		return []string{ZKLock}
	}
	if err := foreign.CuratorAvailable(); err != nil {
		t.Logf("no Curator clients: %v", err)
		return []string{ZKLock}
	}
	return []string{ZKLock, Curator}
}

// locker is one foreign client's lock on a name, through a link of its
// own. Its holds carry no token, so the client does not touch the
// register: the checker can judge only when it held.
type locker interface {
	// lock blocks until the client holds, or fails; either way the
	// client may lock again.
	lock(ctx context.Context) error
	// unlock lets go and returns when the client learned that the
	// session its hold was granted on had ended, or the zero time if it
	// did not: before the grant, for a grant on a session already
	// ended.
	unlock(ctx context.Context) time.Time
	// close ends the client, and its session.
	close()
}

// errStopped says a client can take no more holds.
var errStopped = errors.New("the client stopped")

// foreignLoop takes hold after hold with l until ctx ends, and records
// them: each from its lock returning to just before its unlock. The
// nemesis may stall a hold, with the client cut off, until another
// client holds.
func (rr *recipeRun) foreignLoop(ctx context.Context, c *client, l locker) {
	defer l.close()
	for ctx.Err() == nil {
		if err := l.lock(ctx); errors.Is(err, errStopped) {
			return
		} else if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		op := Op{Recipe: rr.recipe, Client: c.id, Kind: turnstile.Exclusive, Granted: time.Now(), Foreign: true}
		grant := rr.grants.Add(1)
		if c.pauseNext.CompareAndSwap(true, false) {
			op.Paused = true
			rr.pause(c, func() bool { return rr.grants.Load() > grant })
		}
		op.Released = time.Now()
		if at := l.unlock(ctx); !at.IsZero() {
			op.Lost, op.LostAt = true, at
		}
		rr.record(op)
	}
}

// newLocker returns a client of kind through c's link, started; a
// Curator client takes a JVM, started here on the test's goroutine.
func (rr *recipeRun) newLocker(kind string, c *client) locker {
	switch kind {
	case ZKLock:
		return &zkLocker{addrs: c.link.Addrs(), lifetime: rr.cfg.Lifetime, name: rr.name, id: c.id}
	case EtcdMutex:
		cli, err := clientv3.New(etcdtest.ClientConfig(c.link.Addrs()...))
		if err != nil {
			rr.t.Fatal(err)
		}
		return &etcdLocker{cli: cli, lifetime: rr.cfg.Lifetime, name: rr.name}
	}
	return &curatorLocker{t: rr.t, c: foreign.Curator(rr.t, c.link.Addrs(), "mutex", rr.name, c.id)}
}

// zkLocker is go-zookeeper's zk.Lock, a new one for each hold (a Lock
// whose Unlock failed cannot lock again), on a connection of its own.
//
// zk.Lock knows nothing of sessions: a Lock that fails midway leaves its
// node behind, which, its session alive, would block the queue for
// good; and a Lock whose node vanished with its session while it waited
// can still return as if it held. So the client, as a careful user of
// zk.Lock must, starts a new session after a failed Lock or once its
// session expired, and follows the connection's events to learn when
// it did.
type zkLocker struct {
	addrs    []string
	lifetime time.Duration
	name, id string

	conn  *zkConn
	lk    *zk.Lock
	holds int
}

// zkConn is one connection, and when it reported its session expired.
type zkConn struct {
	*zk.Conn
	mu      sync.Mutex
	expired time.Time
}

func (z *zkConn) expiredAt() time.Time {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.expired
}

func (l *zkLocker) connect() error {
	zc := &zkConn{}
	conn, _, err := zk.Connect(l.addrs, l.lifetime, zk.WithLogger(quiet{}), zk.WithEventCallback(func(ev zk.Event) {
		if ev.State == zk.StateExpired {
			zc.mu.Lock()
			if zc.expired.IsZero() {
				zc.expired = time.Now()
			}
			zc.mu.Unlock()
		}
	}))
	if err != nil {
		return err
	}
	zc.Conn = conn
	l.conn = zc
	return nil
}

func (l *zkLocker) lock(ctx context.Context) error {
	if l.conn != nil && !l.conn.expiredAt().IsZero() {
		l.close()
	}
	if l.conn == nil {
		if err := l.connect(); err != nil {
			return err
		}
	}
	// zk.Lock takes no context: closing the connection ends its wait,
	// when the run ends or the wait has lasted as long as turnstile's
	// clients wait.
	conn := l.conn
	timeout := time.AfterFunc(3*l.lifetime, conn.Close)
	stop := context.AfterFunc(ctx, conn.Close)
	l.holds++
	l.lk = zk.NewLock(conn.Conn, l.name, zk.WorldACL(zk.PermAll))
	err := l.lk.LockWithData(l.data())
	timeout.Stop()
	stop()
	if err != nil {
		l.close()
	}
	return err
}

// data is what the hold's node holds, to find it by.
func (l *zkLocker) data() []byte { return fmt.Appendf(nil, "%s/%d", l.id, l.holds) }

func (l *zkLocker) unlock(ctx context.Context) time.Time {
	conn := l.conn
	expired := conn.expiredAt()
	if !expired.IsZero() && !l.ownNode(conn) {
		// The session ended while Lock waited, and the node went with
		// it: zk.Lock returned without holding.
		l.close()
		return expired
	}
	// Unlock deletes the node. During a fault it fails; it may be tried
	// again, as the node's path is kept, until the node is gone: deleted,
	// or lost with the session.
	stop := context.AfterFunc(ctx, conn.Close)
	defer stop()
	deadline := time.Now().Add(2 * l.lifetime)
	for {
		err := l.lk.Unlock()
		if errors.Is(err, zk.ErrNoNode) || err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			if err != nil && !errors.Is(err, zk.ErrNoNode) {
				l.close() // the node goes with the session
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The node's session expired if the connection said so, however late.
	return conn.expiredAt()
}

// ownNode reports whether the hold's node exists and belongs to the
// connection's current session: one made after an expiry, on the new
// session the client opened in its place.
func (l *zkLocker) ownNode(conn *zkConn) bool {
	children, _, err := conn.Children(l.name)
	if err != nil {
		return false
	}
	want := l.data()
	for _, child := range children {
		data, st, err := conn.Get(l.name + "/" + child)
		if err == nil && slices.Equal(data, want) {
			if st.EphemeralOwner == conn.SessionID() {
				conn.mu.Lock()
				conn.expired = time.Time{} // the hold lives on the new session
				conn.mu.Unlock()
				return true
			}
			return false
		}
	}
	return false
}

func (l *zkLocker) close() {
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// etcdLocker is etcd's concurrency.Mutex, on a session of its own through
// a client of its own, a new session once the last one ended.
//
// Its Unlock deletes the key by name, which is the same for every hold
// on one session: an Unlock that failed may still be applied later and
// delete the next hold's key. So after a failed Unlock the client
// revokes the session and opens another, as a careful user must.
type etcdLocker struct {
	cli      *clientv3.Client
	lifetime time.Duration
	name     string

	sess  *concurrency.Session
	ended func() time.Time // when sess ended, or zero
	m     *concurrency.Mutex
}

func (l *etcdLocker) lock(ctx context.Context) error {
	if l.sess != nil && !l.ended().IsZero() {
		l.endSession()
	}
	if l.sess == nil {
		// Granted here, with a bound: the session would grant with the
		// client's context, which a fault can hold for good.
		gctx, cancel := context.WithTimeout(ctx, 2*l.lifetime)
		lease, err := l.cli.Grant(gctx, int64(l.lifetime/time.Second))
		cancel()
		if err != nil {
			return err
		}
		sess, err := concurrency.NewSession(l.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(l.lifetime/time.Second)))
		if err != nil {
			return err
		}
		var mu sync.Mutex
		var at time.Time
		context.AfterFunc(sess.Ctx(), func() {
			mu.Lock()
			at = time.Now()
			mu.Unlock()
		})
		l.sess, l.ended = sess, func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return at
		}
	}
	l.m = concurrency.NewMutex(l.sess, l.name)
	lctx, cancel := context.WithTimeout(ctx, 3*l.lifetime)
	defer cancel()
	return l.m.Lock(lctx)
}

// unlock lets go. etcd's client learns that a lease expired only once a
// TTL has passed since the last renewal was answered, checked twice a
// second: a hold cut off for a little less than that may have outlived
// its lease on the server without the client's knowing, and the next
// contender been granted. So unless the client already knows, the
// server is asked whether the lease is still there once the key is
// deleted; if not, the session ended during the hold, and the client
// learns so now.
func (l *etcdLocker) unlock(ctx context.Context) time.Time {
	uctx, cancel := context.WithTimeout(ctx, 2*l.lifetime)
	err := l.m.Unlock(uctx)
	cancel()
	if err != nil {
		ended := l.ended()
		l.endSession()
		return ended
	}
	if ended := l.ended(); !ended.IsZero() {
		return ended
	}
	tctx, cancel := context.WithTimeout(ctx, l.lifetime)
	resp, err := l.cli.TimeToLive(tctx, l.sess.Lease())
	cancel()
	if err == nil && resp.TTL <= 0 {
		l.endSession()
		return time.Now()
	}
	return time.Time{}
}

// endSession revokes the session's lease, which deletes its keys, within
// a TTL.
func (l *etcdLocker) endSession() {
	l.sess.Close()
	l.sess = nil
}

func (l *etcdLocker) close() {
	if l.sess != nil {
		l.endSession()
	}
	l.cli.Close()
}

// curatorLocker is Curator's InterProcessMutex in a driver process. Curator
// checks that its node is in the queue before it reports a hold, and its
// connection state tells when it took its session for lost. A release
// may fail during a fault; Curator then deletes the node once it can.
type curatorLocker struct {
	t interface{ Errorf(string, ...any) }
	c *foreign.Client
}

func (l *curatorLocker) lock(ctx context.Context) error {
	_, err := l.c.Acquire(ctx)
	if err != nil {
		if broken := l.c.Broken(); broken != nil {
			if ctx.Err() == nil {
				l.t.Errorf("%v", broken)
			}
			return errStopped
		}
		l.lost(ctx) // forgets what was lost before the next acquire
	}
	return err
}

func (l *curatorLocker) unlock(ctx context.Context) time.Time {
	_ = l.c.Release(ctx)
	return l.lost(ctx)
}

// lost returns the first loss the client reports since it was last
// asked, which was before the current hold's acquire; a loss during the
// acquire counts as one before the grant, the hold as granted on a
// session that had ended.
func (l *curatorLocker) lost(ctx context.Context) time.Time {
	at, err := l.c.Lost(ctx)
	if err != nil || len(at) == 0 {
		return time.Time{}
	}
	return slices.MinFunc(at, time.Time.Compare)
}

func (l *curatorLocker) close() {}
