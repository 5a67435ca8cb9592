package zktest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/turnstile-go/turnstile/internal/testing/leakcheck"
	"github.com/turnstile-go/turnstile/internal/testing/proxy"
	"github.com/turnstile-go/turnstile/internal/testing/testenv"
)

// TestMain fails the package if a test leaves a zk connection or a
// harness goroutine running.
func TestMain(m *testing.M) {
	leakcheck.Main(m)
}

// sessionStates records every session state a client passes through.
// go-zookeeper drops events when its channel is full, so tests take them
// from the callback instead.
type sessionStates struct {
	mu      sync.Mutex
	states  []zk.State
	changed chan struct{} // closed and replaced on every new state
}

func newSessionStates() *sessionStates {
	return &sessionStates{changed: make(chan struct{})}
}

func (s *sessionStates) add(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states = append(s.states, ev.State)
	close(s.changed)
	s.changed = make(chan struct{})
}

// mark returns a position; await looks only at states recorded after it.
func (s *sessionStates) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.states)
}

// await waits until the client reaches want after position from.
func (s *sessionStates) await(ctx context.Context, from int, want zk.State) error {
	for {
		s.mu.Lock()
		seen := slices.Contains(s.states[from:], want)
		changed, states := s.changed, slices.Clone(s.states[from:])
		s.mu.Unlock()
		if seen {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %v, saw %v: %w", want, states, ctx.Err())
		}
	}
}

// connect opens a session on addrs through the cluster's Dialer and waits
// until the session is established; the connection closes with the test.
func connect(t *testing.T, c *Cluster, addrs []string, timeout time.Duration) (*zk.Conn, *sessionStates) {
	t.Helper()
	states := newSessionStates()
	conn, _, err := zk.Connect(addrs, timeout,
		zk.WithDialer(c.Dialer()), zk.WithLogger(Logger(t)), zk.WithEventCallback(states.add))
	must(t, err)
	t.Cleanup(conn.Close)
	must(t, states.await(within(t, 10*time.Second), 0, zk.StateHasSession))
	return conn, states
}

// within returns a context that ends after d or with the test.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it returns nil, failing the test with cond's
// last error when ctx ends.
func waitFor(ctx context.Context, t *testing.T, cond func() error) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gave up after %v: %v", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func createEphemeral(t *testing.T, conn *zk.Conn, path string) {
	t.Helper()
	_, err := conn.Create(path, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	must(t, err)
}

// awaitGone waits until path no longer exists, as seen by conn.
func awaitGone(ctx context.Context, t *testing.T, conn *zk.Conn, path string) {
	t.Helper()
	waitFor(ctx, t, func() error {
		ok, _, err := conn.Exists(path)
		if err == nil && ok {
			err = errors.New(path + " still exists")
		}
		return err
	})
}

// awaitSyncedFollowers waits until the leader counts n followers in sync.
func awaitSyncedFollowers(ctx context.Context, t *testing.T, leader *Node, n int) {
	t.Helper()
	want := strconv.Itoa(n)
	waitFor(ctx, t, func() error {
		mntr, err := leader.Mntr(ctx)
		if err == nil && mntr["zk_synced_followers"] != want {
			err = fmt.Errorf("zk_synced_followers = %q, want %s", mntr["zk_synced_followers"], want)
		}
		return err
	})
}

func TestStandalone(t *testing.T) {
	began := time.Now()
	c := Start(t)
	t.Logf("standalone serving after %v", time.Since(began))
	if got := len(c.Servers()); got != 1 {
		t.Fatalf("%d servers, want 1", got)
	}

	t.Run("ClientAndFourLetterWords", func(t *testing.T) {
		ctx := within(t, 10*time.Second)
		conn, _ := connect(t, c, c.Servers(), 4*time.Second)
		_, err := conn.Create("/flw", []byte("hello"), 0, zk.WorldACL(zk.PermAll))
		must(t, err)
		data, _, err := conn.Get("/flw")
		must(t, err)
		if string(data) != "hello" {
			t.Errorf("read %q, want %q", data, "hello")
		}

		ruok, err := c.Node(0).FourLetter(ctx, "ruok")
		must(t, err)
		if ruok != "imok" {
			t.Errorf("ruok answered %q", ruok)
		}
		srvr, err := FourLetter(ctx, c.Servers()[0], "srvr")
		must(t, err)
		if !strings.Contains(srvr, "Mode: standalone") {
			t.Errorf("srvr:\n%s", srvr)
		}
		leader, err := c.Leader(ctx)
		must(t, err)
		if leader != 0 {
			t.Errorf("a standalone server's leader is node %d, want 0", leader)
		}

		mntr, err := c.Node(0).Mntr(ctx)
		must(t, err)
		packets, err := strconv.ParseInt(mntr["zk_packets_received"], 10, 64)
		must(t, err)
		if packets <= 0 {
			t.Errorf("zk_packets_received = %d", packets)
		}
		if state := mntr["zk_server_state"]; state != "standalone" {
			t.Errorf("zk_server_state = %q", state)
		}

		_, _, watch, err := conn.GetW("/flw")
		must(t, err)
		waitFor(ctx, t, func() error {
			w, err := c.Node(0).Watches(ctx)
			if err == nil && !slices.Contains(w["/flw"], conn.SessionID()) {
				err = fmt.Errorf("session %#x not among watches %v", conn.SessionID(), w)
			}
			return err
		})
		mntr, err = c.Node(0).Mntr(ctx)
		must(t, err)
		if n := mntr["zk_watch_count"]; n != "1" {
			t.Errorf("zk_watch_count = %q, want 1", n)
		}

		cons, err := c.Node(0).FourLetter(ctx, "cons")
		must(t, err)
		if sid := fmt.Sprintf("sid=0x%x", conn.SessionID()); !strings.Contains(cons, sid) {
			t.Errorf("cons lacks %s:\n%s", sid, cons)
		}

		must(t, conn.Delete("/flw", -1))
		select {
		case ev := <-watch:
			if ev.Type != zk.EventNodeDeleted {
				t.Errorf("watch fired with %v, want %v", ev.Type, zk.EventNodeDeleted)
			}
		case <-ctx.Done():
			t.Fatal("the watch did not fire")
		}
	})

	t.Run("Expire", func(t *testing.T) {
		ctx := within(t, 10*time.Second)
		// A timeout far beyond the test shows the expiry is Expire's doing.
		victim, states := connect(t, c, c.Servers(), 30*time.Second)
		observer, _ := connect(t, c, c.Servers(), 4*time.Second)
		createEphemeral(t, victim, "/expire")
		id := victim.SessionID()

		from := states.mark()
		began := time.Now()
		must(t, c.Expire(ctx, id))
		must(t, states.await(ctx, from, zk.StateExpired))
		t.Logf("client saw StateExpired %v after Expire", time.Since(began))
		awaitGone(ctx, t, observer, "/expire")
		if victim.SessionID() == id {
			t.Errorf("the client should be on a new session, still %#x", id)
		}
	})

	t.Run("ProxyCutShorterThanTimeout", func(t *testing.T) {
		ctx := within(t, 15*time.Second)
		p, err := proxy.Start(c.Servers()[0])
		must(t, err)
		defer p.Close()
		conn, states := connect(t, c, []string{p.Addr()}, 4*time.Second)
		observer, _ := connect(t, c, c.Servers(), 4*time.Second)
		createEphemeral(t, conn, "/short")
		id := conn.SessionID()

		from := states.mark()
		p.Cut()
		must(t, states.await(ctx, from, zk.StateDisconnected))
		from = states.mark()
		p.Restore()
		must(t, states.await(ctx, from, zk.StateHasSession))
		if got := conn.SessionID(); got != id {
			t.Errorf("session %#x after a short cut, want %#x", got, id)
		}
		ok, _, err := observer.Exists("/short")
		must(t, err)
		if !ok {
			t.Error("the ephemeral node should survive a short cut")
		}
	})

	t.Run("ProxyCutLongerThanTimeout", func(t *testing.T) {
		ctx := within(t, 15*time.Second)
		p, err := proxy.Start(c.Servers()[0])
		must(t, err)
		defer p.Close()
		conn, states := connect(t, c, []string{p.Addr()}, time.Second)
		observer, _ := connect(t, c, c.Servers(), 4*time.Second)
		createEphemeral(t, conn, "/long")

		from := states.mark()
		p.Cut()
		must(t, states.await(ctx, from, zk.StateDisconnected))
		// The server expires the session on its own clock; its ephemeral
		// node vanishing is the sign, not a sleep.
		awaitGone(ctx, t, observer, "/long")
		p.Restore()
		must(t, states.await(ctx, from, zk.StateExpired))
	})

	t.Run("RestartKeepsData", func(t *testing.T) {
		ctx := within(t, 20*time.Second)
		conn, _ := connect(t, c, c.Servers(), 4*time.Second)
		_, err := conn.Create("/durable", []byte("kept"), 0, zk.WorldACL(zk.PermAll))
		must(t, err)

		must(t, c.Node(0).Kill())
		_, err = c.Node(0).FourLetter(ctx, "ruok")
		if err == nil {
			t.Fatal("a killed server answered ruok")
		}
		began := time.Now()
		must(t, c.Node(0).Restart(ctx))
		t.Logf("standalone restarted in %v", time.Since(began))

		// A new session reads the node: whether the old one survives the
		// restart is up to the client's reconnect, not to the data dir.
		after, _ := connect(t, c, c.Servers(), 4*time.Second)
		waitFor(ctx, t, func() error {
			data, _, err := after.Get("/durable")
			if err == nil && string(data) != "kept" {
				err = fmt.Errorf("got %q", data)
			}
			return err
		})
	})
}

func TestEnsemble(t *testing.T) {
	began := time.Now()
	c := StartEnsemble(t, 3)
	t.Logf("3-node ensemble serving after %v", time.Since(began))

	// others returns the client addresses of every node but skip.
	others := func(skip int) []string {
		var addrs []string
		for i, a := range c.Servers() {
			if i != skip {
				addrs = append(addrs, a)
			}
		}
		return addrs
	}

	t.Run("LeaderFailover", func(t *testing.T) {
		ctx := within(t, 30*time.Second)
		conn, _ := connect(t, c, c.Servers(), 4*time.Second)
		old, err := c.Leader(ctx)
		must(t, err)

		must(t, c.Node(old).Kill())
		began := time.Now()
		leader, err := c.Leader(ctx)
		must(t, err)
		t.Logf("node %d leads %v after node %d was killed", leader, time.Since(began), old)
		if leader == old {
			t.Fatalf("node %d still leads", old)
		}
		waitFor(ctx, t, func() error {
			_, err := conn.Create("/after-failover", nil, 0, zk.WorldACL(zk.PermAll))
			if errors.Is(err, zk.ErrNodeExists) {
				err = nil // a retried create may have landed before its reply was lost
			}
			return err
		})

		began = time.Now()
		must(t, c.Node(old).Restart(ctx))
		t.Logf("node %d rejoined in %v", old, time.Since(began))
		mode, err := c.Node(old).Mode(ctx)
		must(t, err)
		if mode != "follower" {
			t.Errorf("node %d is %q, want follower", old, mode)
		}
		now, err := c.Leader(ctx)
		must(t, err)
		if now != leader {
			t.Errorf("node %d leads, want node %d", now, leader)
		}
		// The rejoined node has the write made while it was down.
		single, _ := connect(t, c, []string{c.Node(old).Addr()}, 4*time.Second)
		_, err = single.Sync("/after-failover")
		must(t, err)
		ok, _, err := single.Exists("/after-failover")
		must(t, err)
		if !ok {
			t.Error("the node lacks a write made while it was away")
		}
	})

	t.Run("PausedFollower", func(t *testing.T) {
		ctx := within(t, 30*time.Second)
		leader, err := c.Leader(ctx)
		must(t, err)
		paused := (leader + 1) % c.Len()
		conn, _ := connect(t, c, others(paused), 4*time.Second)

		must(t, c.Node(paused).Pause())
		resumed := false
		defer func() {
			if !resumed {
				_ = c.Node(paused).Resume()
			}
		}()
		// Only once the leader has given up on the paused follower do
		// writes show that two of three nodes suffice.
		awaitSyncedFollowers(ctx, t, c.Node(leader), 1)
		_, err = conn.Create("/while-paused", nil, 0, zk.WorldACL(zk.PermAll))
		must(t, err)

		must(t, c.Node(paused).Resume())
		resumed = true
		awaitSyncedFollowers(ctx, t, c.Node(leader), 2)
		// It serves again once a client of it alone can write, which
		// needs it to be back in the quorum.
		single, _ := connect(t, c, []string{c.Node(paused).Addr()}, 4*time.Second)
		waitFor(ctx, t, func() error {
			_, err := single.Create("/after-resume", nil, 0, zk.WorldACL(zk.PermAll))
			if errors.Is(err, zk.ErrNodeExists) {
				err = nil
			}
			return err
		})
		ok, _, err := single.Exists("/while-paused")
		must(t, err)
		if !ok {
			t.Error("the node lacks a write made while it was paused")
		}
		must(t, c.WaitServing(ctx))
	})

	t.Run("PausedLeader", func(t *testing.T) {
		ctx := within(t, 30*time.Second)
		old, err := c.Leader(ctx)
		must(t, err)
		must(t, c.Node(old).Pause())
		resumed := false
		defer func() {
			if !resumed {
				_ = c.Node(old).Resume()
			}
		}()
		began := time.Now()
		leader, err := c.Leader(ctx)
		must(t, err)
		t.Logf("node %d leads %v after node %d was paused", leader, time.Since(began), old)
		if leader == old {
			t.Fatalf("node %d still leads", old)
		}

		must(t, c.Node(old).Resume())
		resumed = true
		// Right after SIGCONT the old leader may still claim to lead;
		// Leader must see through that and name the elected one.
		now, err := c.Leader(ctx)
		must(t, err)
		if now != leader {
			t.Errorf("node %d leads, want node %d", now, leader)
		}
		must(t, c.WaitServing(ctx))
		mode, err := c.Node(old).Mode(ctx)
		must(t, err)
		if mode != "follower" {
			t.Errorf("node %d is %q, want follower", old, mode)
		}
	})

	t.Run("ExpireFromAnotherServer", func(t *testing.T) {
		ctx := within(t, 15*time.Second)
		last := c.Len() - 1
		// Expire talks to the first live node; the client sits on the last.
		victim, states := connect(t, c, []string{c.Node(last).Addr()}, 30*time.Second)
		observer, _ := connect(t, c, c.Servers(), 4*time.Second)
		createEphemeral(t, victim, "/expire-ensemble")

		from := states.mark()
		began := time.Now()
		must(t, c.Expire(ctx, victim.SessionID()))
		must(t, states.await(ctx, from, zk.StateExpired))
		t.Logf("client saw StateExpired %v after Expire", time.Since(began))
		awaitGone(ctx, t, observer, "/expire-ensemble")
	})
}

// TestStartRetriesOnPortClash must not run in parallel: it swaps freePorts.
func TestStartRetriesOnPortClash(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer busy.Close()
	taken := busy.Addr().(*net.TCPAddr).Port

	calls := 0
	orig := freePorts
	freePorts = func(n int) ([]int, error) {
		calls++
		if calls == 1 {
			return []int{taken}, nil
		}
		return orig(n)
	}
	defer func() { freePorts = orig }()

	c := Start(t)
	if calls != 2 {
		t.Errorf("%d start attempts, want 2: the first fails on the taken port", calls)
	}
	if got := c.Servers()[0]; got == "127.0.0.1:"+strconv.Itoa(taken) {
		t.Errorf("serving on the taken port %s", got)
	}
	srvr, err := c.Node(0).FourLetter(within(t, 5*time.Second), "srvr")
	must(t, err)
	if !strings.Contains(srvr, "Mode: standalone") {
		t.Errorf("srvr:\n%s", srvr)
	}
}

func TestClasspath(t *testing.T) {
	if _, err := Classpath(); err != nil {
		testenv.Unavailable(t, "zookeeper unavailable: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := Classpath(); err == nil {
		t.Error("Classpath found no java on PATH and still reported no error")
	}
}

func TestParseWchp(t *testing.T) {
	got, err := parseWchp("/a\n\t0x100000abc\n\t0x2\n/b\n\t0xff00000000000001\n")
	must(t, err)
	want := map[string][]int64{
		"/a": {0x100000abc, 2},
		"/b": {-0xffffffffffffff},
	}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("parseWchp = %v, want %v", got, want)
	}
	_, err = parseWchp("\t0x1\n")
	if err == nil {
		t.Error("a session id before any path should be an error")
	}
}

// must stops the test on an unexpected error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// An isolated node loses its peers and keeps its clients: a follower
// answers them from its stale copy until it gives its leader up, a
// leader is replaced, and both rejoin.
func TestIsolate(t *testing.T) {
	c := StartEnsemble(t, 3, PeerProxies())
	ctx := within(t, 60*time.Second)
	leader, err := c.Leader(ctx)
	must(t, err)
	follower := (leader + 1) % 3
	others := []string{c.Servers()[leader], c.Servers()[(leader+2)%3]}
	writer, _ := connect(t, c, others, 4*time.Second)
	stale, _ := connect(t, c, []string{c.Servers()[follower]}, 4*time.Second)
	_, err = writer.Create("/isolated", []byte("before"), 0, zk.WorldACL(zk.PermAll))
	must(t, err)
	waitFor(ctx, t, func() error {
		_, _, err := stale.Get("/isolated")
		return err
	})

	must(t, c.Node(follower).Isolate())
	_, err = writer.Set("/isolated", []byte("after"), -1)
	must(t, err)
	data, _, err := stale.Get("/isolated")
	must(t, err)
	if string(data) != "before" {
		t.Fatalf("the isolated follower answered %q, which it cannot know", data)
	}
	began := time.Now()
	waitFor(ctx, t, func() error {
		if m, err := c.Node(follower).Mode(ctx); err != nil || m != "" {
			return fmt.Errorf("isolated follower's mode %q, %v", m, err)
		}
		return nil
	})
	t.Logf("the isolated follower stopped serving after %v", time.Since(began))
	must(t, c.Node(follower).Rejoin())
	must(t, c.WaitServing(ctx))
	fresh, _ := connect(t, c, []string{c.Servers()[follower]}, 4*time.Second)
	waitFor(ctx, t, func() error {
		data, _, err := fresh.Get("/isolated")
		if err == nil && string(data) != "after" {
			err = fmt.Errorf("rejoined follower has %q", data)
		}
		return err
	})

	must(t, c.Node(leader).Isolate())
	began = time.Now()
	waitFor(ctx, t, func() error {
		i, err := c.Leader(ctx)
		if err == nil && i == leader {
			err = errors.New("the isolated node still leads")
		}
		return err
	})
	t.Logf("a new leader after %v", time.Since(began))
	must(t, c.Node(leader).Rejoin())
	must(t, c.WaitServing(ctx))
	if m, err := c.Node(leader).Mode(ctx); err != nil || m != "follower" {
		t.Fatalf("the former leader rejoined as %q (%v)", m, err)
	}
}
