package foreign_test

import (
	"context"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/foreign"
	"github.com/turnstile-go/turnstile/internal/testing/leakcheck"
	"github.com/turnstile-go/turnstile/internal/testing/proxy"
	"github.com/turnstile-go/turnstile/internal/testing/zktest"
)

// TestMain fails the package if a test leaves a driver's reader running,
// which would mean a driver process was never reaped.
func TestMain(m *testing.M) {
	leakcheck.Main(m)
}

const (
	cycles = 5
	// hold is how long a holder keeps the lock, long enough for another
	// holder to show up if exclusion were broken.
	hold = 10 * time.Millisecond
	// blockedFor is how long a contender must stay blocked to count as
	// waiting, not merely slow.
	blockedFor = 200 * time.Millisecond
)

// Node names as Curator writes them: protected, with a UUID.
var (
	curatorLock  = regexp.MustCompile(`^_c_[0-9a-f-]{36}-lock-\d{10}$`)
	curatorLatch = regexp.MustCompile(`^_c_[0-9a-f-]{36}-latch-\d{10}$`)
	kazooLock    = regexp.MustCompile(`^[0-9a-f]{32}__lock__\d{10}$`)
)

// TestDrivers runs every recipe on one server; the subtests run in
// parallel on paths of their own, as starting JVMs dominates their time.
func TestDrivers(t *testing.T) {
	zk := zktest.Start(t)
	servers := zk.Servers()
	type starter func(tb testing.TB, recipe, path, id string) *foreign.Client
	curator := func(tb testing.TB, recipe, path, id string) *foreign.Client {
		return foreign.Curator(tb, servers, recipe, path, id)
	}
	kazoo := func(patterns ...string) starter {
		return func(tb testing.TB, recipe, path, id string) *foreign.Client {
			return foreign.Kazoo(tb, servers, recipe, path, id, patterns...)
		}
	}

	exclusion := func(start starter, recipe string, node *regexp.Regexp) func(*testing.T) {
		return func(t *testing.T) {
			t.Parallel()
			path := "/" + t.Name()
			a, b := start(t, recipe, path, "a"), start(t, recipe, path, "b")
			mutualExclusion(t, a, b, node)
		}
	}
	election := func(start starter, recipe string, node *regexp.Regexp) func(*testing.T) {
		return func(t *testing.T) {
			t.Parallel()
			path := "/" + t.Name()
			a, b := start(t, recipe, path, "a"), start(t, recipe, path, "b")
			handOver(t, a, b, node)
		}
	}
	t.Run("CuratorMutex", exclusion(curator, "mutex", curatorLock))
	t.Run("KazooLock", exclusion(kazoo(), "lock", kazooLock))
	t.Run("CuratorLatch", election(curator, "latch", curatorLatch))
	t.Run("CuratorSelector", election(curator, "selector", curatorLock))
	t.Run("KazooElection", election(kazoo(), "election", kazooLock))

	t.Run("CuratorReadWrite", func(t *testing.T) {
		t.Parallel()
		path := "/" + t.Name()
		r1, r2 := curator(t, "read", path, "r1"), curator(t, "read", path, "r2")
		w := curator(t, "write", path, "w")
		readersShare(t, r1, r2, w)
	})
	t.Run("KazooReadWrite", func(t *testing.T) {
		t.Parallel()
		path := "/" + t.Name()
		r1, r2 := kazoo()(t, "read", path, "r1"), kazoo()(t, "read", path, "r2")
		w := kazoo()(t, "write", path, "w")
		readersShare(t, r1, r2, w)
	})

	// A Curator client cut off from the server tells when it took its
	// session for lost, while it still holds the lock, as Curator's locks
	// do not.
	t.Run("CuratorLost", func(t *testing.T) {
		t.Parallel()
		p, err := proxy.Start(servers[0])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		c := foreign.Curator(t, []string{p.Addr()}, "mutex", "/"+t.Name(), "c")
		ctx := testContext(t)
		if _, err := c.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
		if lost, err := c.Lost(ctx); err != nil || len(lost) != 0 {
			t.Fatalf("Lost before any fault: %v, %v", lost, err)
		}
		cut := time.Now()
		p.Cut()
		for {
			lost, err := c.Lost(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(lost) > 0 {
				t.Logf("lost %v after the cut", lost[0].Sub(cut))
				if lost[0].Before(cut) {
					t.Errorf("lost at %v, before the cut at %v", lost[0], cut)
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		p.Restore()
		if err := c.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("AbandonedAcquire", func(t *testing.T) {
		t.Parallel()
		path := "/" + t.Name()
		a, b := kazoo()(t, "lock", path, "a"), kazoo()(t, "lock", path, "b")
		abandon(t, a, b)
	})

	// The patterns documented in kazoo.go, against nodes Curator names
	// as turnstile does.
	t.Run("KazooLockWaitsForCuratorMutex", func(t *testing.T) {
		t.Parallel()
		path := "/" + t.Name()
		c := curator(t, "mutex", path, "c")
		k := kazoo(foreign.LockPattern)(t, "lock", path, "k")
		watcher := kazoo(foreign.LockPattern)(t, "lock", path, "watcher")
		waitsFor(t, c, k, watcher)
	})
	t.Run("KazooElectionWaitsForCuratorLatch", func(t *testing.T) {
		t.Parallel()
		path := "/" + t.Name()
		c := curator(t, "latch", path, "c")
		k := kazoo(foreign.LatchPattern)(t, "election", path, "k")
		watcher := kazoo(foreign.LatchPattern)(t, "election", path, "watcher")
		waitsFor(t, c, k, watcher)
	})
	t.Run("KazooReadWriteWithCurator", func(t *testing.T) {
		t.Parallel()
		path := "/" + t.Name()
		c := curator(t, "read", path, "c")
		kr := kazoo(foreign.WritePattern)(t, "read", path, "kr")
		kw := kazoo(foreign.WritePattern, foreign.ReadPattern)(t, "write", path, "kw")
		readersShare(t, c, kr, kw)
	})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mutualExclusion has a and b each take the lock cycles times, and fails
// if both hold it at once.
func mutualExclusion(t *testing.T, a, b *foreign.Client, node *regexp.Regexp) {
	ctx := testContext(t)
	var holder atomic.Pointer[foreign.Client]
	var wg sync.WaitGroup
	for _, c := range []*foreign.Client{a, b} {
		wg.Go(func() {
			for i := range cycles {
				n, err := c.Acquire(ctx)
				if err != nil {
					t.Errorf("cycle %d: %v", i, err)
					return
				}
				if !node.MatchString(n) {
					t.Errorf("cycle %d: node %q does not match %v", i, n, node)
				}
				if !holder.CompareAndSwap(nil, c) {
					t.Errorf("cycle %d: both hold the lock", i)
				}
				time.Sleep(hold)
				holder.Store(nil)
				if err := c.Release(ctx); err != nil {
					t.Errorf("cycle %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if _, err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if ids, err := a.Participants(ctx); err != nil || !slices.Equal(ids, []string{"a"}) {
		t.Errorf("participants while a holds = %q, %v; want [a]", ids, err)
	}
}

// handOver has a lead, b wait, and b lead once a resigns, checking what
// each reports as leader and participants on the way.
func handOver(t *testing.T, a, b *foreign.Client, node *regexp.Regexp) {
	ctx := testContext(t)
	wantLeader(t, a, "")
	n, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !node.MatchString(n) {
		t.Errorf("node %q does not match %v", n, node)
	}
	wantLeader(t, a, "a")
	bLeads := acquireAsync(ctx, b)
	waitParticipants(t, a, "a", "b")
	select {
	case r := <-bLeads:
		t.Fatalf("b leads (%v) while a does", r.err)
	case <-time.After(blockedFor):
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-bLeads; r.err != nil {
		t.Fatal(r.err)
	}
	wantLeader(t, a, "b")
	wantLeader(t, b, "b")
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wantLeader(t, a, "")
	// A released contender can run again.
	if _, err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	wantLeader(t, b, "a")
}

// readersShare has r1 and r2 hold the read lock at once while w waits
// for the write lock until both have released.
func readersShare(t *testing.T, r1, r2, w *foreign.Client) {
	ctx := testContext(t)
	for _, r := range []*foreign.Client{r1, r2} {
		if _, err := r.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wrote := acquireAsync(ctx, w)
	select {
	case res := <-wrote:
		t.Fatalf("writer holds (%v) while readers do", res.err)
	case <-time.After(blockedFor):
	}
	for _, r := range []*foreign.Client{r1, r2} {
		if err := r.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if res := <-wrote; res.err != nil {
		t.Fatal(res.err)
	}
}

// waitsFor has holder take the lock or lead, checks that waiter waits
// and that watcher, which never contends, names holder first, then hands
// over to waiter.
func waitsFor(t *testing.T, holder, waiter, watcher *foreign.Client) {
	ctx := testContext(t)
	if _, err := holder.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	got := acquireAsync(ctx, waiter)
	select {
	case r := <-got:
		t.Fatalf("%q acquired (%v) while the holder holds", r.node, r.err)
	case <-time.After(blockedFor):
	}
	wantLeader(t, watcher, "c")
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.err != nil {
		t.Fatal(r.err)
	}
	wantLeader(t, watcher, "k")
}

// abandon checks that an error reply leaves a client usable, and that a
// command whose context ends returns the context's error and leaves the
// client unusable, its process killed.
func abandon(t *testing.T, a, b *foreign.Client) {
	ctx := testContext(t)
	if err := a.Release(ctx); err == nil {
		t.Error("release without acquire succeeded")
	}
	if _, err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, blockedFor)
	defer cancel()
	if _, err := b.Acquire(short); err != context.DeadlineExceeded {
		t.Fatalf("acquire with an expired context: %v; want %v", err, context.DeadlineExceeded)
	}
	if _, err := b.Participants(ctx); err == nil {
		t.Error("a client whose command was abandoned still answers")
	}
	// b's node stays until its session expires, 4 s after the kill, so
	// only a's place in the list is checked.
	if ids, err := a.Participants(ctx); err != nil || len(ids) == 0 || ids[0] != "a" {
		t.Errorf("participants = %q, %v; want a first", ids, err)
	}
}

type acquired struct {
	node string
	err  error
}

func acquireAsync(ctx context.Context, c *foreign.Client) <-chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		n, err := c.Acquire(ctx)
		ch <- acquired{n, err}
	}()
	return ch
}

func wantLeader(t *testing.T, c *foreign.Client, want string) {
	t.Helper()
	got, err := c.Leader(testContext(t))
	if err != nil || got != want {
		t.Errorf("leader = %q, %v; want %q", got, err, want)
	}
}

// waitParticipants waits until c lists want: another client's node
// appears some time after its Acquire was sent.
func waitParticipants(t *testing.T, c *foreign.Client, want ...string) {
	t.Helper()
	ctx := testContext(t)
	for {
		got, err := c.Participants(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(got, want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("participants = %q; want %q", got, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
