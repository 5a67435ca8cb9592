package zklock_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/recipe"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
	"github.com/turnstile-go/turnstile/internal/testing/proxy"
	"github.com/turnstile-go/turnstile/internal/testing/syncbuf"
	"github.com/turnstile-go/turnstile/internal/testing/zktest"
	"github.com/turnstile-go/turnstile/zklock"
)

// One standalone server serves every test that does not break it; each
// test uses fresh lock names.
var shared = locktest.Shared[*zktest.Cluster]{Launch: zktest.Standalone, Unlaunched: zktest.Unlaunched}

func TestMain(m *testing.M) {
	os.Exit(shared.Main(m, func(c *zktest.Cluster) { servers = c.Servers() }))
}

func connect(tb testing.TB, c *zktest.Cluster, opts ...zklock.Option) *zklock.Session {
	tb.Helper()
	s, err := zklock.Connect(c.Servers(), append([]zklock.Option{zklock.WithSessionTimeout(4 * time.Second)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func env(c *zktest.Cluster) locktest.Env {
	var mu sync.Mutex
	var reader *zk.Conn
	conn := func(tb testing.TB) *zk.Conn {
		mu.Lock()
		defer mu.Unlock()
		if reader == nil {
			var err error
			if reader, _, err = zk.Connect(c.Servers(), 10*time.Second, zk.WithLogger(zktest.Logger(tb))); err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { mu.Lock(); reader.Close(); reader = nil; mu.Unlock() })
		}
		return reader
	}
	return locktest.Env{
		NewMutex: func(tb testing.TB, name string) locktest.Locker {
			return zklock.NewMutex(connect(tb, c), name)
		},
		Queued: func(tb testing.TB, name string) int {
			children, _, err := conn(tb).Children(name)
			if errors.Is(err, zk.ErrNoNode) {
				return 0
			}
			if err != nil {
				tb.Fatal(err)
			}
			return len(children)
		},
		Writes: func(tb testing.TB) int64 { return lastZxid(tb, c) },
	}
}

// lastZxid reads the server's last zxid, which every write increases.
func lastZxid(tb testing.TB, c *zktest.Cluster) int64 {
	out, err := c.Node(0).FourLetter(context.Background(), "srvr")
	if err != nil {
		tb.Fatal(err)
	}
	m := regexp.MustCompile(`Zxid: 0x([0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil {
		tb.Fatalf("no zxid in srvr: %q", out)
	}
	z, _ := strconv.ParseInt(m[1], 16, 64)
	return z
}

func TestBadSession(t *testing.T) {
	ctx := context.Background()
	var nilSession *zklock.Session
	m := zklock.NewMutex(nilSession, "/locks/a")
	for op, f := range map[string]func(context.Context) error{"Lock": m.Lock, "TryLock": m.TryLock, "Unlock": m.Unlock} {
		if err := f(ctx); !errors.Is(err, turnstile.ErrNilSession) {
			t.Errorf("%s on a nil session: %v, want ErrNilSession", op, err)
		}
	}
	if _, err := zklock.NewSession(nil, nil); !errors.Is(err, turnstile.ErrNilSession) {
		t.Errorf("NewSession(nil): %v, want ErrNilSession", err)
	}

	c := shared.Get(t)
	s := connect(t, c)
	s.Close()
	before := lastZxid(t, c)
	m = zklock.NewMutex(s, "/locks/closed")
	for op, f := range map[string]func(context.Context) error{"Lock": m.Lock, "TryLock": m.TryLock} {
		if err := f(ctx); !errors.Is(err, turnstile.ErrSessionClosed) {
			t.Errorf("%s on a closed session: %v, want ErrSessionClosed", op, err)
		}
	}
	if err := m.Unlock(ctx); !errors.Is(err, turnstile.ErrNotHeld) {
		t.Errorf("Unlock without a hold: %v, want ErrNotHeld", err)
	}
	if after := lastZxid(t, c); after != before {
		t.Errorf("the server changed on a closed session")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// sessionsWatching maps each watched path to the sessions watching it.
func watches(tb testing.TB, c *zktest.Cluster) map[string][]int64 {
	w, err := c.Node(0).Watches(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// requests reads, per session, the xid of its last request: it counts
// every request but pings, so its change over an interval is the number
// of requests a session sent.
func requests(tb testing.TB, c *zktest.Cluster) map[int64]int64 {
	out, err := c.Node(0).FourLetter(context.Background(), "cons")
	if err != nil {
		tb.Fatal(err)
	}
	re := regexp.MustCompile(`sid=0x([0-9a-f]+).*lcxid=0x([0-9a-f]+)`)
	got := map[int64]int64{}
	for _, line := range strings.Split(out, "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			sid, _ := strconv.ParseUint(m[1], 16, 64)
			xid, _ := strconv.ParseInt(m[2], 16, 64)
			got[int64(sid)] = xid
		}
	}
	return got
}

// With 20 contenders queued, each waiter watches its predecessor's node
// and nothing else, and the holder watches nothing; one release costs the
// holder's delete and the next holder's check, and no other session sends
// anything.
func TestHerd(t *testing.T) {
	ctx := context.Background()
	c := shared.Get(t)
	e := env(c)
	name := locktest.Name()
	const n = 20
	sessions := make([]*zklock.Session, n)
	mutexes := make([]*zklock.Mutex, n)
	for i := range n {
		sessions[i] = connect(t, c)
		mutexes[i] = zklock.NewMutex(sessions[i], name)
	}
	if err := mutexes[0].Lock(ctx); err != nil {
		t.Fatal(err)
	}
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
	children := queueOrder(t, c, name)
	want := map[string][]int64{}
	for i := 1; i < n; i++ {
		want[children[i-1]] = []int64{sessions[i].ID()}
	}
	locktest.Eventually(t, 10*time.Second, "one watch per waiter", func() bool {
		return sameWatches(watches(t, c), want)
	})
	if w := watches(t, c); len(w) != n-1 {
		t.Fatalf("%d watched nodes, want %d: %v", len(w), n-1, w)
	}

	before := requests(t, c)
	if err := mutexes[0].Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if next := <-granted; next != 1 {
		t.Fatalf("contender %d granted first", next)
	}
	delete(want, children[0])
	locktest.Eventually(t, 10*time.Second, "the watch on the former holder gone", func() bool {
		return sameWatches(watches(t, c), want)
	})
	after := requests(t, c)
	for i, s := range sessions {
		sent := after[s.ID()] - before[s.ID()]
		want := map[int]int64{0: 1, 1: 1}[i]
		if i == 0 && sent == 2 {
			continue // its delete, and a check of its hold that fell in the interval (Tracker)
		}
		if sent != want {
			t.Errorf("contender %d sent %d requests during the hand-off, want %d", i, sent, want)
		}
	}
	for i := 1; i < n; i++ {
		if err := mutexes[i].Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if i+1 < n {
			<-granted
		}
	}
}

// queueOrder returns the full paths of name's children in queue order.
func queueOrder(tb testing.TB, c *zktest.Cluster, name string) []string {
	s := connect(tb, c)
	q, err := locktest.Backend(tb, s).Queue(context.Background(), name)
	if err != nil {
		tb.Fatal(err)
	}
	paths := make([]string, len(q))
	for i, c := range q {
		paths[i] = c.Key
	}
	return paths
}

func sameWatches(got, want map[string][]int64) bool {
	if len(got) != len(want) {
		return false
	}
	for path, ws := range want {
		g := append([]int64(nil), got[path]...)
		if len(g) != len(ws) {
			return false
		}
		for _, w := range ws {
			found := false
			for _, x := range g {
				found = found || x == w
			}
			if !found {
				return false
			}
		}
	}
	return true
}

// A create whose reply is lost (the connection cut after the request left
// the client, before the server answered) is found again: one node for
// the Lock call, and the call acquires.
func TestLostCreateReply(t *testing.T) {
	ctx := context.Background()
	c := shared.Get(t)
	e := env(c)
	p, err := proxy.Start(c.Servers()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var log syncbuf.Buffer
	s, err := zklock.Connect([]string{p.Addr()}, zklock.WithSessionTimeout(10*time.Second),
		zklock.WithLogger(slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	name := locktest.Name()
	m := zklock.NewMutex(s, name)
	// The first Lock creates the parents; the second is the one whose
	// reply is lost.
	if err := m.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	if err := c.Node(0).Pause(); err != nil {
		t.Fatal(err)
	}
	sent := p.Sent()
	got := make(chan error, 1)
	go func() { got <- m.Lock(ctx) }()
	// A create is several times a ping's 12 bytes.
	locktest.Eventually(t, 5*time.Second, "create sent", func() bool { return p.Sent()-sent > 40 })
	p.Cut()
	if err := c.Node(0).Resume(); err != nil {
		t.Fatal(err)
	}
	p.Restore()
	if err := <-got; err != nil {
		t.Fatalf("Lock after a lost reply: %v", err)
	}
	if q := e.Queued(t, name); q != 1 {
		t.Errorf("%d nodes for one Lock call, want 1", q)
	}
	recovered := strings.Contains(log.String(), "found its node after a lost reply")
	if !recovered {
		t.Errorf("the lost reply was not recovered by lookup; log:\n%s", log.String())
	}
	if err := m.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// A server that accepts the reconnecting client but never answers its
// handshake costs the client a share of the session timeout, not the
// session: the client moves on to a server that answers, and keeps its
// hold.
func TestSilentServer(t *testing.T) {
	ctx := context.Background()
	c := shared.Get(t)
	var proxies [2]*proxy.Proxy
	var addrs []string
	for i := range proxies {
		p, err := proxy.Start(c.Servers()[0])
		require.NoError(t, err)
		t.Cleanup(func() { p.Close() })
		proxies[i] = p
		addrs = append(addrs, p.Addr())
	}
	const timeout = 6 * time.Second
	var dialed sync.Map // addresses the client dialed
	dial := func(network, addr string, d time.Duration) (net.Conn, error) {
		dialed.Store(addr, true)
		return net.DialTimeout(network, addr, d)
	}
	s, err := zklock.Connect(addrs, zklock.WithSessionTimeout(timeout), zklock.WithDialer(dial))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	m := zklock.NewMutex(s, locktest.Name())
	require.NoError(t, m.Lock(ctx))

	live, silent := proxies[0], proxies[1]
	if live.Sent() == 0 {
		live, silent = silent, live
	}
	require.Zero(t, silent.Sent(), "both proxies carried the session")
	silent.Cut() // accepts, and answers nothing
	// The server's clock for the session starts again with this request.
	require.NoError(t, s.Check(ctx, m.Sequencer()))
	dialed.Clear()
	live.Cut()
	live.Restore()

	// The client tries the silent server next, for 3 s, then waits 1 s
	// before it starts the list again: back within 6 s of the request
	// above. With the whole handshake allowance of the ZooKeeper client
	// (ten read timeouts) the session would expire at the silent server.
	unlock, cancel := context.WithTimeout(ctx, 2*timeout)
	defer cancel()
	require.NoError(t, m.Unlock(unlock), "the hold did not survive a silent server")
	_, tried := dialed.Load(silent.Addr())
	require.True(t, tried, "the client never tried the silent server")
}

// A reply that arrives late, from a link that stalled and then went
// silent, dates the session by when its request was sent: the hold is
// presumed lost a session timeout after that, which is by the time the
// server expires it, neither a stall later nor a stall earlier.
func TestStalledReplies(t *testing.T) {
	ctx := context.Background()
	c := shared.Get(t)
	p, err := proxy.Start(c.Servers()[0])
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	// The client drops a connection that brings nothing for 4 s, and
	// pings every 2 s.
	const timeout = 6 * time.Second
	s, err := zklock.Connect([]string{p.Addr()}, zklock.WithSessionTimeout(timeout))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	m := zklock.NewMutex(s, locktest.Name())
	require.NoError(t, m.Lock(ctx))
	lost := make(chan time.Time, 1)
	go func() { <-m.Lost(); lost <- time.Now() }()
	observer := connect(t, c)
	ok, _, gone, err := observer.Conn().ExistsW(m.Sequencer().Key)
	require.NoError(t, err)
	require.True(t, ok)

	// From a fresh answer, answers stall for 2.5 s; a request sent 1 s
	// in reaches the server, and after it nothing does.
	_, _, err = s.Conn().Exists("/")
	require.NoError(t, err)
	p.Hold(proxy.ToClient)
	time.Sleep(time.Second)
	marker := locktest.Name()
	sent := time.Now()
	answered := make(chan error, 1)
	go func() {
		_, err := s.Conn().Create(marker, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		answered <- err
	}()
	locktest.Eventually(t, 2*time.Second, "request at the server", func() bool {
		ok, _, err := observer.Conn().Exists(marker)
		return err == nil && ok
	})
	p.Hold(proxy.ToServer)
	time.Sleep(1500 * time.Millisecond)
	p.Release(proxy.ToClient)
	require.NoError(t, <-answered)

	var deleted time.Time
	select {
	case ev := <-gone:
		require.Equal(t, zk.EventNodeDeleted, ev.Type)
		deleted = time.Now()
	case <-time.After(2 * timeout):
		t.Fatal("the server did not expire the session")
	}
	select {
	case at := <-lost:
		// The server rounds expiry up to its next tick, so the hold is
		// normally lost first; the allowance is for scheduling, and well
		// under the stall.
		t.Logf("hold lost %v after the last request was sent, %v before the server deleted its node", at.Sub(sent), deleted.Sub(at))
		require.GreaterOrEqual(t, at.Sub(sent), timeout, "the late answer was not counted")
		require.Less(t, at.Sub(deleted), 500*time.Millisecond, "hold presumed lost this long after the server expired it")
	case <-time.After(2 * time.Second):
		t.Fatal("Lost() still open after the server expired the session")
	}
}

// A waiter whose session expires returns an error at once, never
// success, and a holder whose session expires sees Lost close.
func TestSessionExpired(t *testing.T) {
	ctx := context.Background()
	c := shared.Get(t)
	e := env(c)
	name := locktest.Name()
	holder := connect(t, c, zklock.WithDialer(c.Dialer()))
	waiter := connect(t, c, zklock.WithDialer(c.Dialer()))
	hm, wm := zklock.NewMutex(holder, name), zklock.NewMutex(waiter, name)
	if err := hm.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- wm.Lock(ctx) }()
	locktest.Eventually(t, 10*time.Second, "waiter queued", func() bool { return e.Queued(t, name) == 2 })

	if err := c.Expire(ctx, waiter.ID()); err != nil {
		t.Fatal(err)
	}
	if err := <-got; !errors.Is(err, turnstile.ErrLost) {
		t.Fatalf("waiter's Lock after its session expired: %v, want ErrLost", err)
	}
	if err := c.Expire(ctx, holder.ID()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hm.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("Lost() still open after the session expired")
	}
	if err := hm.Unlock(ctx); !errors.Is(err, turnstile.ErrLost) {
		t.Fatalf("Unlock after expiry: %v, want ErrLost", err)
	}
	if err := hm.Lock(ctx); !errors.Is(err, turnstile.ErrLost) {
		t.Fatalf("Lock on an expired session: %v, want ErrLost", err)
	}
	if q := e.Queued(t, name); q != 0 {
		t.Errorf("%d contenders left", q)
	}
}

// A holder whose node is deleted by someone else sees Lost close, and
// its Unlock reports ErrLost.
func TestNodeDeleted(t *testing.T) {
	ctx := context.Background()
	c := shared.Get(t)
	name := locktest.Name()
	m := zklock.NewMutex(connect(t, c), name)
	require.NoError(t, m.Lock(ctx))
	b := locktest.Backend(t, connect(t, c))
	q, err := b.Queue(ctx, name)
	require.NoError(t, err)
	require.Len(t, q, 1)
	require.NoError(t, b.Leave(ctx, q[0], false, false))
	select {
	case <-m.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("Lost() still open after the node was deleted")
	}
	require.Zero(t, m.Token(), "token of a lost hold")
	require.ErrorIs(t, m.Unlock(ctx), turnstile.ErrLost)
}

// A session holding many locks reads only so many of their nodes a
// second, and still finds each deleted one in time: the server's load
// from a session stays flat however many locks it holds.
func TestManyHolds(t *testing.T) {
	ctx := context.Background()
	c := shared.Get(t)
	base := locktest.Name()
	s := connect(t, c)
	ms := make([]*zklock.Mutex, 300)
	for i := range ms {
		ms[i] = zklock.NewMutex(s, base+"/"+strconv.Itoa(i))
		require.NoError(t, ms[i].Lock(ctx))
	}
	deleted := ms[137]
	b := locktest.Backend(t, connect(t, c))
	q, err := b.Queue(ctx, path.Dir(deleted.Sequencer().Key))
	require.NoError(t, err)
	require.NoError(t, b.Leave(ctx, q[0], false, false))
	// 64 reads a second reach every one of 300 holds within 5 seconds.
	select {
	case <-deleted.Lost():
	case <-time.After(5*recipe.SweepPeriod + 2*time.Second):
		t.Fatal("Lost() still open after the node was deleted")
	}

	packets := func() int64 {
		m, err := c.Node(0).Mntr(ctx)
		require.NoError(t, err)
		n, err := strconv.ParseInt(m["zk_packets_received"], 10, 64)
		require.NoError(t, err)
		return n
	}
	before := packets()
	time.Sleep(5 * recipe.SweepPeriod)
	// 64 reads a period, and the pings of the few sessions open.
	require.LessOrEqual(t, packets()-before, int64(5*64+100), "requests in five sweeps of 300 holds")

	for i, m := range ms {
		if m == deleted {
			continue
		}
		require.False(t, recipe.Closed(m.Lost()), "hold %d lost", i)
		require.NoError(t, m.Unlock(ctx))
	}
}

// Waits for a first contender given up on a name no one joins leave one
// watch behind, not one each: the client keeps a channel per watch set
// until it fires, and the waits share the session's. Then a join wakes
// a waiter.
func TestAwaitJoinGivenUp(t *testing.T) {
	c := shared.Get(t)
	s := connect(t, c)
	b := locktest.Backend(t, s)
	name := locktest.Name()
	wait := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		require.ErrorIs(t, b.AwaitJoin(ctx, name), context.DeadlineExceeded)
	}
	heap := func() int64 {
		time.Sleep(time.Second) // for the requests left behind to be answered
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	wait()
	before := heap()
	const waits = 4000
	for range waits {
		wait()
	}
	grown := heap() - before
	t.Logf("the heap grew by %d bytes over %d waits given up", grown, waits)
	// A channel with room for its event is some 170 bytes.
	require.Less(t, grown, int64(waits*170/3), "heap growth")

	got := make(chan error, 1)
	go func() { got <- b.AwaitJoin(context.Background(), name) }()
	m := zklock.NewMutex(s, name)
	require.NoError(t, m.Lock(context.Background()))
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("AwaitJoin still waiting 5s after a join")
	}
	require.NoError(t, m.Unlock(context.Background()))
}

// A connection the caller opened works as a session, which then owns it.
func TestNewSession(t *testing.T) {
	ctx := context.Background()
	c := shared.Get(t)
	conn, events, err := zk.Connect(c.Servers(), 4*time.Second, zk.WithLogger(zktest.Logger(t)))
	require.NoError(t, err)
	s, err := zklock.NewSession(conn, events, zklock.WithSessionTimeout(4*time.Second))
	require.NoError(t, err)
	m := zklock.NewMutex(s, locktest.Name())
	require.NoError(t, m.Lock(ctx))
	require.Positive(t, m.Token())
	require.NoError(t, m.Unlock(ctx))
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Err(), turnstile.ErrSessionClosed)
	_, _, err = conn.Exists("/")
	require.Error(t, err, "the connection outlived its session")
}

// stallable starts a server of the test's own, to stall, and a Mutex on
// a name there whose session outlasts a short stall.
func stallable(t *testing.T) (*zktest.Cluster, locktest.Env, string, *zklock.Mutex) {
	c := zktest.Start(t)
	name := locktest.Name()
	return c, env(c), name, zklock.NewMutex(connect(t, c, zklock.WithSessionTimeout(10*time.Second)), name)
}

// A Lock whose context ends while the server is stalled returns then,
// though its create and its read of the queue are still unanswered, and
// once the server answers, the node its create made is removed and the
// next Lock is granted.
func TestLockGivenUp(t *testing.T) {
	ctx := context.Background()
	c, e, name, m := stallable(t)
	require.NoError(t, m.Lock(ctx)) // the name's parents exist from here on
	require.NoError(t, m.Unlock(ctx))

	require.NoError(t, c.Node(0).Pause())
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.ErrorIs(t, m.Lock(short), context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second, "Lock returned long after its context ended")
	require.NoError(t, c.Node(0).Resume())
	locktest.Eventually(t, 10*time.Second, "the given-up join's node removed", func() bool { return e.Queued(t, name) == 0 })

	require.NoError(t, m.Lock(ctx))
	require.NoError(t, m.Unlock(ctx))
}

// After a holder's session expires and another takes over, the server
// says the old sequencer is no longer current and the new one is, and a
// Multi guarded by the old hold changes nothing.
func TestFencing(t *testing.T) {
	ctx := context.Background()
	c := shared.Get(t)
	e := env(c)
	name := locktest.Name()
	s := connect(t, c, zklock.WithDialer(c.Dialer()))
	old, cur := locktest.Succession(t, e, name, zklock.NewMutex(s, name), func() {
		require.NoError(t, c.Expire(ctx, s.ID()))
	})

	checker := connect(t, c)
	locktest.Checks(t, e, checker.Check, old, cur)

	// The caller's own data, fenced by the hold in one transaction.
	conn := checker.Conn()
	data := name + "-data"
	_, err := conn.Create(data, []byte("0"), 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	set := func(v string) *zk.SetDataRequest { return &zk.SetDataRequest{Path: data, Data: []byte(v), Version: -1} }
	_, err = conn.Multi(zklock.Guard(old), set("late"))
	require.ErrorIs(t, err, zk.ErrNoNode)
	_, err = conn.Multi(zklock.Guard(turnstile.Sequencer{}), set("no hold"))
	require.ErrorIs(t, err, zk.ErrBadArguments)
	_, err = conn.Multi(zklock.Guard(cur), set("current"))
	require.NoError(t, err)
	got, _, err := conn.Get(data)
	require.NoError(t, err)
	require.Equal(t, "current", string(got))
}

// The lock znode may belong to another program, which keeps its own data
// there: 100 Locks leave that data, and its version, as they found them,
// and each token is still the node's czxid.
func TestOthersData(t *testing.T) {
	ctx := context.Background()
	c := shared.Get(t)
	name := locktest.Top()
	owner := connect(t, c).Conn()
	_, err := owner.Create(name, []byte("owner's config"), 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	_, before, err := owner.Get(name)
	require.NoError(t, err)
	t.Cleanup(func() { owner.Delete(name, -1) })

	s := connect(t, c)
	m := zklock.NewMutex(s, name)
	for range 100 {
		require.NoError(t, m.Lock(ctx))
		_, stat, err := owner.Exists(m.Sequencer().Key)
		require.NoError(t, err)
		require.Equal(t, stat.Czxid, m.Token(), "token of %s", m.Sequencer().Key)
		require.NoError(t, m.Unlock(ctx))
	}
	data, after, err := owner.Get(name)
	require.NoError(t, err)
	require.Equal(t, "owner's config", string(data))
	require.Equal(t, before.Version, after.Version, "the lock znode's data version")
	require.Equal(t, before.Mzxid, after.Mzxid, "the lock znode's mzxid")
}

// Every hold's token is its node's czxid, also when other contenders
// join and leave between a join's create and its read, the case where the
// token is not read off the parent's stat.
func TestTokenUnderContention(t *testing.T) {
	c := shared.Get(t)
	name := locktest.Top()
	observer := connect(t, c).Conn()
	var ms []*zklock.Mutex
	for range 4 {
		ms = append(ms, zklock.NewMutex(connect(t, c), name))
	}
	takeTurns(t, ms, 40, func(m *zklock.Mutex) error {
		_, stat, err := observer.Exists(m.Sequencer().Key)
		if err == nil && (stat == nil || stat.Czxid != m.Token()) {
			err = fmt.Errorf("token %d of %s, czxid %+v", m.Token(), m.Sequencer().Key, stat)
		}
		return err
	})
}

// takeTurns has every one of ms Lock and Unlock rounds times, all at once,
// calling held, if any, while it holds, and reports every error.
func takeTurns(t *testing.T, ms []*zklock.Mutex, rounds int, held func(*zklock.Mutex) error) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, len(ms))
	for _, m := range ms {
		wg.Go(func() {
			for range rounds {
				if err := m.Lock(ctx); err != nil {
					errs <- fmt.Errorf("lock: %w", err)
					return
				}
				var err error
				if held != nil {
					err = held(m)
				}
				if err := m.Unlock(ctx); err != nil {
					errs <- fmt.Errorf("unlock: %w", err)
					return
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A Session shows what its users call, and none of the queue operations
// the recipes use.
func TestSessionMethods(t *testing.T) {
	locktest.Methods(t, &zklock.Session{}, "Check", "Close", "Conn", "Done", "Err", "ID", "Participants")
}

// WithContext bounds Connect: a server that takes the connection and
// never answers keeps it only until ctx ends.
func TestConnectContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the listener closes
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = zklock.Connect([]string{l.Addr().String()}, zklock.WithContext(ctx), zklock.WithSessionTimeout(30*time.Second))
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// Options that cannot work are refused before any connection, with an
// error matching turnstile.ErrInvalidOption.
func TestBadOptions(t *testing.T) {
	var dials atomic.Int32
	dialer := func(network, addr string, timeout time.Duration) (net.Conn, error) {
		dials.Add(1)
		return net.DialTimeout(network, addr, timeout)
	}
	for what, opt := range map[string]zklock.Option{
		"no session timeout":       zklock.WithSessionTimeout(0),
		"a negative timeout":       zklock.WithSessionTimeout(-time.Second),
		"a nil context":            zklock.WithContext(nil),
		"a nil logger":             zklock.WithLogger(nil),
		"a nil dialer":             zklock.WithDialer(nil),
		"a digest user with ':'":   zklock.WithDigestAuth("a:b", "c"),
		"the auth ACL, no digests": zklock.WithACL(zk.AuthACL(zk.PermAll)...),
	} {
		opts := []zklock.Option{opt}
		if what != "a nil dialer" {
			opts = append(opts, zklock.WithDialer(dialer))
		}
		_, err := zklock.Connect(shared.Get(t).Servers(), opts...)
		require.ErrorIs(t, err, turnstile.ErrInvalidOption, what)
	}
	require.Zero(t, dials.Load(), "connections opened")

	conn, events, err := zk.Connect(shared.Get(t).Servers(), 4*time.Second)
	require.NoError(t, err)
	_, err = zklock.NewSession(conn, events, zklock.WithSessionTimeout(0))
	require.ErrorIs(t, err, turnstile.ErrInvalidOption)
}

// Closing the session's connection ends the session before the server
// can hear of it: the holder's Lost() is closed by the time another
// session may hold.
func TestConnClosed(t *testing.T) {
	ctx := context.Background()
	c := shared.Get(t)
	s := connect(t, c)
	name := locktest.Name()
	holder := zklock.NewMutex(s, name)
	require.NoError(t, holder.Lock(ctx))
	token := holder.Token()
	s.Conn().Close()
	require.True(t, recipe.Closed(holder.Lost()), "Lost() open once the connection closed")
	require.ErrorIs(t, s.Err(), turnstile.ErrSessionClosed)
	next := zklock.NewMutex(connect(t, c), name)
	require.NoError(t, next.Lock(ctx))
	require.Greater(t, next.Token(), token)
	require.NoError(t, next.Unlock(ctx))
}

// Waits given up on one long hold share one watch on the holder's node:
// the client keeps a channel per watch it sets until the watch fires, so
// each new watch would pile one up for as long as the hold lasts. Each
// attempt after the first costs its join and its leave, and no watch.
func TestGivenUpWaitsShareAWatch(t *testing.T) {
	ctx, c, name := t.Context(), shared.Get(t), locktest.Name()
	holder := zklock.NewMutex(connect(t, c), name)
	require.NoError(t, holder.Lock(ctx))
	s := connect(t, c)
	m := zklock.NewMutex(s, name)
	e := env(c)
	attempt := func() int64 {
		before := requests(t, c)[s.ID()]
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, m.Lock(short), context.DeadlineExceeded)
		locktest.Eventually(t, 5*time.Second, "the attempt's node removed", func() bool { return e.Queued(t, name) == 1 })
		return requests(t, c)[s.ID()] - before
	}
	first := attempt()
	var later []int64
	for range 5 {
		later = append(later, attempt())
	}
	t.Logf("requests per attempt: first %d, then %v", first, later)
	// The median: now and then a join's pipelined read overtakes its
	// create, and is sent again.
	slices.Sort(later)
	require.Less(t, later[len(later)/2], first, "a given-up wait set a watch again")
	require.NoError(t, holder.Unlock(ctx))
}

// A wait given up on a node that later goes, with no one waiting on it
// any more, leaves nothing behind in the session: Locks given up behind
// one holder after another must not grow it.
func TestGivenUpWatchesDoNotPileUp(t *testing.T) {
	ctx, c, name := t.Context(), shared.Get(t), locktest.Name()
	s := connect(t, c)
	holder, waiter := zklock.NewMutex(connect(t, c), name), zklock.NewMutex(s, name)
	const rounds = 60
	for range rounds {
		require.NoError(t, holder.Lock(ctx))
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		err := waiter.Lock(short)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "waiter's Lock")
		require.NoError(t, holder.Unlock(ctx))
	}
	left := zklock.ExitWatches(s)
	t.Logf("%d of %d given-up watches left", left, rounds)
	if left > zklock.ExitPruneAt {
		t.Errorf("%d of %d given-up watches left in the session", left, rounds)
	}
}

// A server that throttles (ZooKeeper's request throttler answers a request
// that waited too long in its queue without applying it) slows Locks and
// Unlocks down but fails none of them.
func TestThrottled(t *testing.T) {
	c := zktest.Start(t,
		zktest.Property("zookeeper.request_throttle_max_requests", "1"),
		zktest.Property("zookeeper.request_throttle_stall_time", "1"),
		zktest.Property("zookeeper.throttled_op_wait_time", "1"))
	name := locktest.Name()
	var ms []*zklock.Mutex
	for range 6 {
		ms = append(ms, zklock.NewMutex(connect(t, c), name))
	}
	takeTurns(t, ms, 5, nil)
	vars, err := c.Node(0).Mntr(context.Background())
	require.NoError(t, err)
	throttled, _ := strconv.Atoi(vars["zk_throttled_ops"])
	require.Positive(t, throttled, "requests the server throttled")
	t.Logf("%d requests throttled", throttled)
}

// A holder whose process stops for longer than its session timeout holds
// nothing when it runs again, before its session's own goroutines run.
func TestPausedHolder(t *testing.T) {
	c := shared.Get(t)
	locktest.PausedHolder(t, 6*time.Second, func(ctx context.Context) (func() int64, <-chan struct{}) {
		s := connect(t, c)
		m := zklock.NewMutex(s, locktest.Name())
		require.NoError(t, m.Lock(ctx))
		return m.Token, s.Done()
	})
}
