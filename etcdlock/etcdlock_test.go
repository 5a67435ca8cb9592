package etcdlock_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/internal/queue"
	"github.com/turnstile-go/turnstile/internal/recipe"
	"github.com/turnstile-go/turnstile/internal/testing/etcdtest"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
	"github.com/turnstile-go/turnstile/internal/testing/proxy"
	"github.com/turnstile-go/turnstile/internal/testing/syncbuf"
)

// One server serves every test that does not break it; each test uses
// fresh lock names. Tests count its requests and watches, so no test
// here runs in parallel.
var shared = locktest.Shared[*etcdtest.Server]{Launch: etcdtest.Launched, Unlaunched: etcdtest.Unlaunched}

func TestMain(m *testing.M) {
	os.Exit(shared.Main(m, func(s *etcdtest.Server) { endpoints = s.Endpoints() }))
}

func session(tb testing.TB, cli *clientv3.Client, opts ...etcdlock.Option) *etcdlock.Session {
	tb.Helper()
	s, err := etcdlock.NewSession(cli, append([]etcdlock.Option{etcdlock.WithTTL(5 * time.Second)}, opts...)...)
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close() })
	return s
}

// env runs the shared mutex tests on endpoints, one client for all the
// sessions of a test.
func env(endpoints ...string) locktest.Env {
	var mu sync.Mutex
	clients := map[testing.TB]*clientv3.Client{}
	client := func(tb testing.TB) *clientv3.Client {
		mu.Lock()
		defer mu.Unlock()
		if clients[tb] == nil {
			clients[tb] = etcdtest.NewClient(tb, endpoints...)
			tb.Cleanup(func() { mu.Lock(); delete(clients, tb); mu.Unlock() })
		}
		return clients[tb]
	}
	return locktest.Env{
		NewMutex: func(tb testing.TB, name string) locktest.Locker {
			return etcdlock.NewMutex(session(tb, client(tb)), name)
		},
		Queued: func(tb testing.TB, name string) int {
			resp, err := client(tb).Get(context.Background(), name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			require.NoError(tb, err)
			return int(resp.Count)
		},
		Writes: func(tb testing.TB) int64 {
			resp, err := client(tb).Get(context.Background(), "/")
			require.NoError(tb, err)
			return resp.Header.Revision
		},
	}
}

func TestBadSession(t *testing.T) {
	ctx := context.Background()
	var nilSession *etcdlock.Session
	m := etcdlock.NewMutex(nilSession, "/locks/a")
	for op, f := range map[string]func(context.Context) error{"Lock": m.Lock, "TryLock": m.TryLock, "Unlock": m.Unlock} {
		require.ErrorIs(t, f(ctx), turnstile.ErrNilSession, op)
	}
	_, err := etcdlock.NewSession(nil)
	require.ErrorIs(t, err, turnstile.ErrNilSession)

	e := env(shared.Get(t).Endpoints()...)
	cli := shared.Get(t).Client(t)
	s := session(t, cli)
	require.NoError(t, s.Close())
	before := e.Writes(t)
	m = etcdlock.NewMutex(s, "/locks/closed")
	require.ErrorIs(t, m.Lock(ctx), turnstile.ErrSessionClosed)
	require.ErrorIs(t, m.TryLock(ctx), turnstile.ErrSessionClosed)
	require.ErrorIs(t, m.Unlock(ctx), turnstile.ErrNotHeld)
	require.Equal(t, before, e.Writes(t), "the server changed on a closed session")
	require.NoError(t, s.Close(), "second Close")
}

// unary counts the requests the server has answered, streams aside.
func unary(tb testing.TB) float64 {
	v, err := etcdtest.Metric(context.Background(), shared.Get(tb).Endpoint(), "grpc_server_handled_total", map[string]string{"grpc_type": "unary"})
	require.NoError(tb, err)
	return v
}

// events counts the watch events the server has sent.
func events(tb testing.TB) float64 {
	v, err := etcdtest.Metric(context.Background(), shared.Get(tb).Endpoint(), "etcd_debugging_mvcc_events_total", nil)
	require.NoError(tb, err)
	return v
}

// An uncontended Lock and Unlock cost one request each.
func TestUncontendedRequests(t *testing.T) {
	ctx := context.Background()
	m := etcdlock.NewMutex(session(t, shared.Get(t).Client(t)), locktest.Name())
	require.NoError(t, m.Lock(ctx)) // the first use opens the client's watch stream
	require.NoError(t, m.Unlock(ctx))
	before := unary(t)
	require.NoError(t, m.Lock(ctx))
	require.NoError(t, m.Unlock(ctx))
	require.Equal(t, 2.0, unary(t)-before, "requests for Lock+Unlock")
}

// With 20 contenders queued, one release makes the server send at most
// two watch events: to the next contender, and to the holder's own watch.
func TestHerd(t *testing.T) {
	ctx := context.Background()
	e := env(shared.Get(t).Endpoints()...)
	cli := shared.Get(t).Client(t)
	name := locktest.Name()
	const n = 20
	mutexes := make([]*etcdlock.Mutex, n)
	for i := range n {
		mutexes[i] = etcdlock.NewMutex(session(t, cli), name)
	}
	require.NoError(t, mutexes[0].Lock(ctx))
	granted := make(chan int, n)
	for i := 1; i < n; i++ {
		go func() {
			if err := mutexes[i].Lock(ctx); err != nil {
				t.Error(err)
			}
			granted <- i
		}()
		locktest.Eventually(t, 10*time.Second, "waiter queued", func() bool { return e.Queued(t, name) == i+1 })
	}
	before := events(t)
	require.NoError(t, mutexes[0].Unlock(ctx))
	require.Equal(t, 1, <-granted)
	sent := events(t) - before
	require.LessOrEqual(t, sent, 2.0, "watch events for one release")
	t.Logf("one release among %d contenders: %.0f watch events", n, sent)
	for i := 1; i < n; i++ {
		require.NoError(t, mutexes[i].Unlock(ctx))
		if i+1 < n {
			<-granted
		}
	}
}

// holderAndWaiter has one session hold name and another wait for it; got
// receives the waiter's Lock result.
func holderAndWaiter(t *testing.T, e locktest.Env, cli *clientv3.Client, name string) (*etcdlock.Mutex, *etcdlock.Session, <-chan error) {
	holder := etcdlock.NewMutex(session(t, cli), name)
	require.NoError(t, holder.Lock(context.Background()))
	ws := session(t, cli)
	got := make(chan error, 1)
	go func() { got <- etcdlock.NewMutex(ws, name).Lock(context.Background()) }()
	locktest.Eventually(t, 10*time.Second, "waiter queued", func() bool { return e.Queued(t, name) == 2 })
	return holder, ws, got
}

// A waiter whose lease is revoked returns an error at once, never
// success, and leaves nothing behind.
func TestRevokedWhileWaiting(t *testing.T) {
	ctx := context.Background()
	e := env(shared.Get(t).Endpoints()...)
	cli := shared.Get(t).Client(t)
	name := locktest.Name()
	holder, ws, got := holderAndWaiter(t, e, cli, name)

	_, err := cli.Revoke(ctx, ws.Lease())
	require.NoError(t, err)
	select {
	case err := <-got:
		require.ErrorIs(t, err, turnstile.ErrLost)
	case <-time.After(5 * time.Second):
		t.Fatal("Lock still waiting after its lease was revoked")
	}
	require.Equal(t, 1, e.Queued(t, name))
	require.NoError(t, holder.Unlock(ctx))
}

// A holder whose key is deleted by someone else sees Lost close, and its
// Unlock reports ErrLost; a waiter whose key is deleted returns ErrLost
// when it would have been admitted, never success.
func TestKeyDeleted(t *testing.T) {
	ctx := context.Background()
	e := env(shared.Get(t).Endpoints()...)
	cli := shared.Get(t).Client(t)
	name := locktest.Name()
	holder, _, got := holderAndWaiter(t, e, cli, name)

	q, err := cli.Get(ctx, name+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	require.NoError(t, err)
	_, err = cli.Delete(ctx, string(q.Kvs[1].Key))
	require.NoError(t, err)
	_, err = cli.Delete(ctx, string(q.Kvs[0].Key))
	require.NoError(t, err)
	select {
	case err := <-got:
		require.ErrorIs(t, err, turnstile.ErrLost)
	case <-time.After(5 * time.Second):
		t.Fatal("waiter still waiting after its key was deleted")
	}
	select {
	case <-holder.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost() still open after the key was deleted")
	}
	require.Zero(t, holder.Token())
	require.ErrorIs(t, holder.Unlock(ctx), turnstile.ErrLost)
}

// A put whose reply is lost (the connection cut after the request left
// the client, before the server answered) is retried without making a
// second key, and the Lock acquires.
func TestLostPutReply(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.StartCluster(t, 1)
	p, err := proxy.Start(c.Member(0).Endpoint())
	require.NoError(t, err)
	defer p.Close()
	var log syncbuf.Buffer
	s := session(t, etcdtest.NewClient(t, p.Addr()), etcdlock.WithTTL(30*time.Second),
		etcdlock.WithLogger(slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	name := locktest.Name()
	m := etcdlock.NewMutex(s, name)
	require.NoError(t, m.Lock(ctx)) // opens the client's connection
	require.NoError(t, m.Unlock(ctx))

	require.NoError(t, c.Member(0).Pause())
	sent := p.Sent()
	got := make(chan error, 1)
	go func() { got <- m.Lock(ctx) }()
	// The transaction is several times the size of a lease keep-alive.
	locktest.Eventually(t, 10*time.Second, "put sent", func() bool { return p.Sent()-sent > 150 })
	p.Cut()
	require.NoError(t, c.Member(0).Resume())
	p.Restore()
	require.NoError(t, <-got)
	e := env(c.Endpoints()...)
	require.Equal(t, 1, e.Queued(t, name), "keys for one Lock call")
	require.NoError(t, m.Unlock(ctx))
	require.NoError(t, s.Close()) // while the proxy still runs
	t.Logf("the server applied the lost put, and the retry found it: %v",
		strings.Contains(log.String(), "found its key after a lost reply"))
}

// After a holder's lease is revoked and another takes over, the server
// says the old sequencer is no longer current and the new one is, and a
// Txn guarded by the old hold changes nothing.
func TestFencing(t *testing.T) {
	ctx := context.Background()
	e := env(shared.Get(t).Endpoints()...)
	cli := shared.Get(t).Client(t)
	name := locktest.Name()
	s := session(t, cli)
	old, cur := locktest.Succession(t, e, name, etcdlock.NewMutex(s, name), func() {
		_, err := cli.Revoke(ctx, s.Lease())
		require.NoError(t, err)
	})

	checker := session(t, cli)
	locktest.Checks(t, e, checker.Check, old, cur)

	// The caller's own data, fenced by the hold in one transaction.
	data := name + "-data"
	put := func(seq turnstile.Sequencer, v string) bool {
		resp, err := cli.Txn(ctx).If(etcdlock.Guard(seq)).Then(clientv3.OpPut(data, v)).Commit()
		require.NoError(t, err)
		return resp.Succeeded
	}
	require.False(t, put(old, "late"))
	require.False(t, put(turnstile.Sequencer{}, "no hold"))
	require.True(t, put(cur, "current"))
	g, err := cli.Get(ctx, data)
	require.NoError(t, err)
	require.Equal(t, "current", string(g.Kvs[0].Value))
	require.EqualValues(t, 1, g.Kvs[0].Version, "writes to the data")
}

// A Session shows what its users call, and none of the queue operations
// the recipes use.
func TestSessionMethods(t *testing.T) {
	locktest.Methods(t, &etcdlock.Session{}, "Check", "Client", "Close", "Done", "Err", "Lease", "Participants")
}

// WithContext bounds NewSession: with no member to reach, it gives up
// when ctx ends.
func TestNewSessionContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	cli := etcdtest.NewClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = etcdlock.NewSession(cli, etcdlock.WithContext(ctx))
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// A session that judged its lease lost while the server still keeps it
// (renewals arrive, their answers do not) revokes it on Close, so that
// its key leaves the queue at once rather than a TTL later.
func TestCloseRevokesLostLease(t *testing.T) {
	ctx := context.Background()
	p, err := proxy.Start(shared.Get(t).Endpoint())
	require.NoError(t, err)
	defer p.Close()
	const ttl = 4 * time.Second
	s := session(t, etcdtest.NewClient(t, p.Addr()), etcdlock.WithTTL(ttl))
	name := locktest.Name()
	m := etcdlock.NewMutex(s, name)
	require.NoError(t, m.Lock(ctx))
	key := m.Sequencer().Key

	cli := shared.Get(t).Client(t)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deletedAt := make(chan time.Time, 1)
	go func() {
		for resp := range cli.Watch(wctx, key, clientv3.WithFilterPut()) {
			if len(resp.Events) > 0 {
				deletedAt <- time.Now()
				return
			}
		}
	}()
	p.Hold(proxy.ToClient)
	defer p.Release(proxy.ToClient)
	select {
	case <-s.Done():
	case <-time.After(3 * ttl):
		t.Fatal("the session never judged its lease lost")
	}
	closed := time.Now()
	require.NoError(t, s.Close())
	select {
	case at := <-deletedAt:
		// The server would have kept the key for a TTL after the last
		// renewal it received, which came as the session ended.
		require.Less(t, at.Sub(closed), ttl/2, "the key outlived Close")
	case <-time.After(3 * ttl):
		t.Fatal("the key was never deleted")
	}
}

// An etcd that refuses writes for overload ("too many requests", which it
// answers before applying them) only slows Lock and Unlock down: with
// every other write refused, 20 Lock+Unlock pairs all succeed, and the
// value is free after each.
func TestOverload(t *testing.T) {
	ctx := context.Background()
	var writes, refusals atomic.Int32
	cfg := etcdtest.ClientConfig(shared.Get(t).Endpoints()...)
	cfg.DialOptions = append(cfg.DialOptions, grpc.WithChainUnaryInterceptor(
		func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if method == "/etcdserverpb.KV/Txn" && writes.Add(1)%2 == 1 {
				refusals.Add(1)
				return rpctypes.ErrGRPCRequestTooManyRequests
			}
			return invoke(ctx, method, req, reply, cc, opts...)
		}))
	cli, err := clientv3.New(cfg)
	require.NoError(t, err)
	defer cli.Close()
	m := etcdlock.NewMutex(session(t, cli), locktest.Name())
	for range 20 {
		require.NoError(t, m.Lock(ctx))
		require.NoError(t, m.Unlock(ctx))
	}
	require.GreaterOrEqual(t, refusals.Load(), int32(40), "writes refused")
}

// A contender found gone at the first look is told apart afterwards from
// the key's history: a marked release, or a delete that was not one.
func TestHowLeft(t *testing.T) {
	ctx := context.Background()
	cli := shared.Get(t).Client(t)
	b := locktest.Backend(t, session(t, cli))
	for _, marked := range []bool{true, false} {
		s := session(t, cli)
		m := etcdlock.NewMutex(s, locktest.Name())
		require.NoError(t, m.Lock(ctx))
		seq := m.Sequencer()
		c := queue.Contender{Key: seq.Key, Seq: seq.Token}
		require.NoError(t, locktest.Backend(t, s).Leave(ctx, c, false, marked))
		exit, err := b.AwaitExit(ctx, c)
		require.NoError(t, err)
		require.Equal(t, recipe.Gone, exit)
		exit, err = b.HowLeft(ctx, c)
		require.NoError(t, err)
		want := map[bool]recipe.Exit{true: recipe.Released, false: recipe.Deleted}[marked]
		require.Equal(t, want, exit, "marked %v", marked)
		_ = m.Unlock(ctx) // the hold's Lost is told; nothing is left
	}
}

// Closing the client ends the session at once, and every hold and wait
// on it: a closed client can renew nothing.
func TestClientClosed(t *testing.T) {
	ctx := context.Background()
	cli := etcdtest.NewClient(t, shared.Get(t).Endpoints()...)
	s := session(t, cli)
	name := locktest.Name()
	holder := etcdlock.NewMutex(s, name)
	require.NoError(t, holder.Lock(ctx))
	got := make(chan error, 1)
	go func() { got <- etcdlock.NewMutex(s, name).Lock(ctx) }()
	locktest.Eventually(t, 5*time.Second, "the waiter queued", func() bool {
		return env(shared.Get(t).Endpoints()...).Queued(t, name) == 2
	})
	require.NoError(t, cli.Close())
	select {
	case <-s.Done():
	case <-time.After(time.Second): // the TTL is 5 s
		t.Fatal("session still live a second after its client closed")
	}
	require.ErrorIs(t, s.Err(), turnstile.ErrLost)
	require.ErrorIs(t, <-got, turnstile.ErrLost)
	require.True(t, recipe.Closed(holder.Lost()))
}

// A hold whose key someone else deleted gives the key back with its
// Unlock: the session's next Lock on the name puts the same key, as after
// a release, rather than a key more for every such loss.
func TestLostKeyReused(t *testing.T) {
	ctx := context.Background()
	cli := shared.Get(t).Client(t)
	name := locktest.Name()
	m := etcdlock.NewMutex(session(t, cli), name)
	key := func() string {
		q, err := cli.Get(ctx, name+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		require.NoError(t, err)
		require.Len(t, q.Kvs, 1)
		return string(q.Kvs[0].Key)
	}
	require.NoError(t, m.Lock(ctx))
	held := key()
	_, err := cli.Delete(ctx, held)
	require.NoError(t, err)
	select {
	case <-m.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost() still open after the key was deleted")
	}
	require.ErrorIs(t, m.Unlock(ctx), turnstile.ErrLost)
	require.NoError(t, m.Lock(ctx))
	require.Equal(t, held, key())
	require.NoError(t, m.Unlock(ctx))
}

// Options that cannot work are refused before any request, with an
// error matching turnstile.ErrInvalidOption.
func TestBadOptions(t *testing.T) {
	ctx := context.Background()
	cli := shared.Get(t).Client(t)
	before, err := cli.Leases(ctx)
	require.NoError(t, err)
	for what, opt := range map[string]etcdlock.Option{
		"no TTL":         etcdlock.WithTTL(0),
		"a negative TTL": etcdlock.WithTTL(-time.Second),
		"a nil context":  etcdlock.WithContext(nil),
		"a nil logger":   etcdlock.WithLogger(nil),
	} {
		_, err := etcdlock.NewSession(cli, opt)
		require.ErrorIs(t, err, turnstile.ErrInvalidOption, what)
	}
	after, err := cli.Leases(ctx)
	require.NoError(t, err)
	require.Len(t, after.Leases, len(before.Leases), "leases granted")
}

// A holder whose process stops for longer than its lease's TTL holds
// nothing when it runs again, before its session's own goroutines run.
func TestPausedHolder(t *testing.T) {
	cli := shared.Get(t).Client(t)
	locktest.PausedHolder(t, 7*time.Second, func(ctx context.Context) (func() int64, <-chan struct{}) {
		s := session(t, cli)
		m := etcdlock.NewMutex(s, locktest.Name())
		require.NoError(t, m.Lock(ctx))
		return m.Token, s.Done()
	})
}
