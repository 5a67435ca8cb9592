// Package locktest holds the behaviour tests every mutex must pass,
// written once and run by each backend's tests against its real servers.
package locktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/recipe"
	"github.com/turnstile-go/turnstile/internal/testing/leakcheck"
)

// Locker is what zklock.Mutex and etcdlock.Mutex have in common.
type Locker interface {
	Lock(ctx context.Context) error
	TryLock(ctx context.Context) error
	Unlock(ctx context.Context) error
	Token() int64
	Lost() <-chan struct{}
	Sequencer() turnstile.Sequencer
}

// Env is how the tests reach one backend's servers.
type Env struct {
	// NewMutex opens a session of its own, closed when tb ends, and
	// returns a mutex on name over it.
	NewMutex func(tb testing.TB, name string) Locker
	// Queued returns how many contenders the server holds under name.
	Queued func(tb testing.TB, name string) int
	// Writes returns a number the server increases on every change
	// (ZooKeeper's last zxid, etcd's revision).
	Writes func(tb testing.TB) int64
}

// Name returns a lock name no other test uses.
func Name() string {
	var b [6]byte
	rand.Read(b[:])
	return "/turnstile-test/" + hex.EncodeToString(b[:])
}

// Top returns a fresh top-level path, for a test that sets ACLs: kept
// out of Name's tree, they stay out of the other tests' way on a shared
// server.
func Top() string {
	return strings.Replace(Name(), "/turnstile-test/", "/turnstile-top-", 1)
}

// Eventually polls cond until it holds or d passes: tests wait for server
// state, never for time.
func Eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// occupancy detects two holders inside a critical section at once.
type occupancy struct {
	n      atomic.Int32
	mu     sync.Mutex
	order  []int
	tokens []int64
	errs   []error
}

func (o *occupancy) enter(tb testing.TB, who int, token int64) {
	if o.n.Add(1) != 1 {
		tb.Errorf("contender %d entered while another held the lock", who)
	}
	o.mu.Lock()
	o.order = append(o.order, who)
	o.tokens = append(o.tokens, token)
	o.mu.Unlock()
	o.n.Add(-1)
}

func (o *occupancy) fail(err error) {
	o.mu.Lock()
	o.errs = append(o.errs, err)
	o.mu.Unlock()
}

func (o *occupancy) check(tb testing.TB, wantOrder []int) {
	tb.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, err := range o.errs {
		tb.Error(err)
	}
	for i := 1; i < len(o.tokens); i++ {
		if o.tokens[i] <= o.tokens[i-1] {
			tb.Errorf("grant %d has token %d after %d: tokens must increase", i, o.tokens[i], o.tokens[i-1])
		}
	}
	for i, t := range o.tokens {
		if t <= 0 {
			tb.Errorf("grant %d has token %d", i, t)
		}
	}
	if wantOrder != nil && !equal(o.order, wantOrder) {
		tb.Errorf("grant order %v, want %v (first come, first served)", o.order, wantOrder)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// queueUp has lockers[0] take the lock, then queues the others one by
// one, each after the server shows the previous one queued, so that the
// order of arrival is known. Each waiter records its grant in occ and
// unlocks. It returns a function that releases lockers[0] and waits for
// the waiters; ctxs, when given, are the waiters' contexts.
func queueUp(tb testing.TB, env Env, name string, lockers []Locker, occ *occupancy, ctxs []context.Context) (release func()) {
	tb.Helper()
	ctx := context.Background()
	if err := lockers[0].Lock(ctx); err != nil {
		tb.Fatal(err)
	}
	occ.enter(tb, 0, lockers[0].Token())
	var wg sync.WaitGroup
	for i := 1; i < len(lockers); i++ {
		wctx := ctx
		if ctxs != nil && ctxs[i] != nil {
			wctx = ctxs[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lockers[i].Lock(wctx); err != nil {
				if wctx.Err() == nil {
					occ.fail(err)
				}
				return
			}
			occ.enter(tb, i, lockers[i].Token())
			if err := lockers[i].Unlock(ctx); err != nil {
				occ.fail(err)
			}
		}()
		Eventually(tb, 10*time.Second, "waiter queued", func() bool { return env.Queued(tb, name) == i+1 })
	}
	return func() {
		if err := lockers[0].Unlock(ctx); err != nil {
			tb.Error(err)
		}
		wg.Wait()
	}
}

// FIFO queues n contenders, each on its own session, and checks that
// they are granted in arrival order, one at a time, with increasing
// tokens, leaving the queue empty.
func FIFO(t *testing.T, env Env, n int) {
	name := Name()
	lockers := make([]Locker, n)
	want := make([]int, n)
	for i := range lockers {
		lockers[i] = env.NewMutex(t, name)
		want[i] = i
	}
	var occ occupancy
	queueUp(t, env, name, lockers, &occ, nil)()
	occ.check(t, want)
	if q := env.Queued(t, name); q != 0 {
		t.Errorf("%d contenders left in the queue", q)
	}
}

// CancelWaiter cancels a waiter in the middle of the queue: it returns
// ctx's error, its contender leaves the server, and the rest are granted
// in order.
func CancelWaiter(t *testing.T, env Env) {
	name := Name()
	lockers := make([]Locker, 5)
	for i := range lockers {
		lockers[i] = env.NewMutex(t, name)
	}
	cctx, cancel := context.WithCancel(context.Background())
	ctxs := []context.Context{nil, nil, cctx, nil, nil}
	var occ occupancy
	release := queueUp(t, env, name, lockers, &occ, ctxs)
	cancel()
	Eventually(t, 10*time.Second, "cancelled waiter left the queue", func() bool { return env.Queued(t, name) == 4 })
	release()
	occ.check(t, []int{0, 1, 3, 4})
	if q := env.Queued(t, name); q != 0 {
		t.Errorf("%d contenders left in the queue", q)
	}
}

// TryLock checks that TryLock takes a free lock, and on a held one
// returns ErrLocked leaving nothing queued.
func TryLock(t *testing.T, env Env) {
	ctx := context.Background()
	name := Name()
	a, b := env.NewMutex(t, name), env.NewMutex(t, name)
	if err := a.TryLock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.TryLock(ctx); !errors.Is(err, turnstile.ErrLocked) {
		t.Fatalf("TryLock on a held lock: %v, want ErrLocked", err)
	}
	if q := env.Queued(t, name); q != 1 {
		t.Fatalf("%d contenders queued after a failed TryLock, want 1", q)
	}
	if err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.TryLock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// SharedValue checks that goroutines sharing one value take turns
// locally: at most one contender for the value on the server.
func SharedValue(t *testing.T, env Env) {
	ctx := context.Background()
	name := Name()
	m := env.NewMutex(t, name)
	var occ occupancy
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Lock(ctx); err != nil {
				occ.fail(err)
				return
			}
			if q := env.Queued(t, name); q != 1 {
				occ.fail(errors.New("more than one contender for one value"))
			}
			occ.enter(t, i, m.Token())
			if err := m.Unlock(ctx); err != nil {
				occ.fail(err)
			}
		}()
	}
	wg.Wait()
	occ.check(t, nil)
	if err := m.Unlock(ctx); !errors.Is(err, turnstile.ErrNotHeld) {
		t.Fatalf("Unlock without a hold: %v, want ErrNotHeld", err)
	}
}

// BadNames checks that invalid names fail every call with ErrInvalidName
// and change nothing on the server.
func BadNames(t *testing.T, env Env) {
	ctx := context.Background()
	names := []string{"", "locks", "/locks/", "/a//b", "/a/../b", "/a/./b", "/a\x00b", "/zookeeper/x"}
	mutexes := make([]Locker, len(names))
	for i, name := range names {
		mutexes[i] = env.NewMutex(t, name) // opening a session is a write
	}
	before := env.Writes(t)
	for i, name := range names {
		m := mutexes[i]
		for op, f := range map[string]func(context.Context) error{"Lock": m.Lock, "TryLock": m.TryLock, "Unlock": m.Unlock} {
			if err := f(ctx); !errors.Is(err, turnstile.ErrInvalidName) {
				t.Errorf("%s on %q: %v, want ErrInvalidName", op, name, err)
			}
		}
		if m.Token() != 0 || m.Lost() != nil {
			t.Errorf("%q: a token or a loss channel without a hold", name)
		}
	}
	if after := env.Writes(t); after != before {
		t.Errorf("the server changed (%d to %d) on invalid names", before, after)
	}
}

// Checks has check, a session's Check, judge the sequencers Succession
// returned: old is stale, cur is current, cur with another token is
// stale, and the zero Sequencer is refused before any request.
func Checks(t *testing.T, env Env, check func(context.Context, turnstile.Sequencer) error, old, cur turnstile.Sequencer) {
	t.Helper()
	ctx := context.Background()
	if err := check(ctx, old); !errors.Is(err, turnstile.ErrStaleToken) {
		t.Errorf("Check of the lost hold: %v, want ErrStaleToken", err)
	}
	if err := check(ctx, cur); err != nil {
		t.Errorf("Check of the current hold: %v", err)
	}
	forged := cur
	forged.Token--
	if err := check(ctx, forged); !errors.Is(err, turnstile.ErrStaleToken) {
		t.Errorf("Check of the current key with another token: %v, want ErrStaleToken", err)
	}
	before := env.Writes(t)
	if err := check(ctx, turnstile.Sequencer{}); !errors.Is(err, turnstile.ErrInvalidSequencer) {
		t.Errorf("Check of the zero Sequencer: %v, want ErrInvalidSequencer", err)
	}
	if after := env.Writes(t); after != before {
		t.Errorf("a refused Check changed the server: writes %d, then %d", before, after)
	}
}

// Succession has a take name, queues a contender behind it, ends a's
// hold with lose (which ends a's session), and waits for the contender to
// take over. It returns a's sequencer from while it held, and the new
// holder's, after checking what a user relies on: the new token is
// larger, both are exclusive holds of name, and a lost hold gives the
// zero Sequencer.
func Succession(t *testing.T, env Env, name string, a Locker, lose func()) (old, cur turnstile.Sequencer) {
	t.Helper()
	ctx := context.Background()
	if err := a.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	old, tokenA := a.Sequencer(), a.Token()
	b := env.NewMutex(t, name)
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx) }()
	Eventually(t, 10*time.Second, "contender queued", func() bool { return env.Queued(t, name) == 2 })
	lose()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	<-a.Lost()
	cur = b.Sequencer()
	t.Logf("lost hold %s, new hold %s", old, cur)
	if old.Validate() != nil || cur.Validate() != nil {
		t.Fatalf("invalid sequencers: %+v, %+v", old, cur)
	}
	if old.Name != name || cur.Name != name || old.Mode != turnstile.Exclusive || cur.Mode != turnstile.Exclusive {
		t.Errorf("sequencers %s and %s, want exclusive holds of %s", old, cur, name)
	}
	if old.Token != tokenA || cur.Token != b.Token() || cur.Token <= old.Token {
		t.Errorf("sequencers' tokens %d and %d, Token() %d and %d: want equal, and increasing", old.Token, cur.Token, tokenA, b.Token())
	}
	if s := a.Sequencer(); s != (turnstile.Sequencer{}) {
		t.Errorf("a lost hold's Sequencer() = %+v, want the zero Sequencer", s)
	}
	return old, cur
}

// Partition checks a holder cut off from its server: Lost closes within
// the session's lifetime plus a second, the next waiter takes over with a
// larger token, and the former holder's Unlock reports ErrLost and
// removes nothing of the new holder's.
func Partition(t *testing.T, env Env, lifetime time.Duration, cutOff func(tb testing.TB, name string) (Locker, func())) {
	ctx := context.Background()
	name := Name()
	a, cut := cutOff(t, name)
	b := env.NewMutex(t, name)
	if err := a.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	tokenA := a.Token()
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx) }()
	Eventually(t, 10*time.Second, "b queued", func() bool { return env.Queued(t, name) == 2 })

	cut()
	select {
	case <-a.Lost():
	case <-time.After(lifetime + time.Second):
		t.Fatalf("Lost() still open %v after the cut", lifetime+time.Second)
	}
	if a.Token() != 0 {
		t.Errorf("Token() = %d after the hold was lost, want 0", a.Token())
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if b.Token() <= tokenA {
		t.Errorf("new holder's token %d is not larger than the lost hold's %d", b.Token(), tokenA)
	}
	if err := a.Unlock(ctx); !errors.Is(err, turnstile.ErrLost) {
		t.Errorf("Unlock of a lost hold: %v, want ErrLost", err)
	}
	if q := env.Queued(t, name); q != 1 {
		t.Errorf("%d contenders queued, want the new holder alone", q)
	}
	if err := b.Unlock(ctx); err != nil {
		t.Errorf("new holder's Unlock: %v", err)
	}
}

// Cycle has n contenders, each on its own session, take and release the
// lock in a loop while fault runs once, after a few grants: no two ever
// hold at once, and grants follow the order of arrival, which tokens
// (the server's numbering of contenders) show by increasing.
func Cycle(t *testing.T, env Env, n, rounds int, fault func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := Name()
	var occ occupancy
	var grants atomic.Int32
	var faultOnce sync.Once
	var faultDone sync.WaitGroup
	var wg sync.WaitGroup
	// Every session opens before any contender starts, so that the fault
	// meets contenders, not sessions being opened.
	ms := make([]Locker, n)
	for i := range ms {
		ms[i] = env.NewMutex(t, name)
	}
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if err := m.Lock(ctx); err != nil {
					occ.fail(err)
					return
				}
				occ.enter(t, i, m.Token())
				if grants.Add(1) == int32(n) {
					faultOnce.Do(func() {
						faultDone.Add(1)
						go func() { defer faultDone.Done(); fault() }()
					})
				}
				if err := m.Unlock(ctx); err != nil {
					occ.fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	faultDone.Wait()
	occ.check(t, nil)
	if got := int(grants.Load()); got != n*rounds {
		t.Errorf("%d grants, want %d", got, n*rounds)
	}
	t.Logf("%d grants across the fault", grants.Load())
}

// NestedNames checks that a name's queue holds only its own contenders:
// a lock on /x/orders does not hold /x.
func NestedNames(t *testing.T, env Env) {
	ctx := context.Background()
	parent := Name()
	child := env.NewMutex(t, parent+"/orders")
	if err := child.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	m := env.NewMutex(t, parent)
	if err := m.TryLock(ctx); err != nil {
		t.Fatalf("TryLock %s while %s/orders is held: %v", parent, parent, err)
	}
	for _, l := range []Locker{m, child} {
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// RunMain runs a package's tests around a server that launch starts with
// its data under a temporary directory, and returns the exit code: a
// failure if any test failed or a goroutine outlived them. launch returns
// how to stop the server (nil if it could not start; each test then
// reports that itself).
func RunMain(m *testing.M, launch func(dir string) (stop func())) int {
	dir, err := os.MkdirTemp("", "turnstile-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	stop := launch(dir)
	code := m.Run()
	if stop != nil {
		stop()
	}
	if code == 0 {
		if err := leakcheck.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	return code
}

// Shared is one server that a package's tests share: Main starts it
// around them with Launch, and Get hands it to each, or stops the test
// with Unlaunched if it did not start.
type Shared[S any] struct {
	Launch     func(dir string) (S, func(), error)
	Unlaunched func(testing.TB, error)

	server S
	err    error
}

// Main runs the package's tests (RunMain) around the server; use, if the
// launch worked, passes it on to what else needs it, such as the
// examples.
func (sh *Shared[S]) Main(m *testing.M, use func(S)) int {
	return RunMain(m, func(dir string) func() {
		var stop func()
		if sh.server, stop, sh.err = sh.Launch(dir); sh.err == nil {
			use(sh.server)
		}
		return stop
	})
}

// Get returns the server, or stops the test if it did not start.
func (sh *Shared[S]) Get(tb testing.TB) S {
	tb.Helper()
	if sh.err != nil {
		sh.Unlaunched(tb, sh.err)
	}
	return sh.server
}

// KillLeader returns a fault for Cycle: find the servers' leader and kill
// it.
func KillLeader(tb testing.TB, leader func(context.Context) (int, error), kill func(int) error) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		i, err := leader(ctx)
		if err != nil {
			tb.Error(err)
			return
		}
		if err := kill(i); err != nil {
			tb.Error(err)
		}
		tb.Logf("killed the leader, server %d", i)
	}
}

// Backend returns the queue operations behind s, for a test that reads
// or changes a queue as the recipes do.
func Backend(tb testing.TB, s turnstile.Session) recipe.Backend {
	tb.Helper()
	b, err := recipe.Of(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Methods checks that the exported methods of v's type are exactly want:
// what users call, so that no plumbing shows in its API unnoticed.
func Methods(t *testing.T, v any, want ...string) {
	t.Helper()
	typ := reflect.TypeOf(v)
	var got []string
	for i := range typ.NumMethod() {
		got = append(got, typ.Method(i).Name)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%v has methods %v, want %v", typ, got, want)
	}
}
