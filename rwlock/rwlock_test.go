package rwlock_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
	"github.com/turnstile-go/turnstile/internal/testing/servicetest"
	"github.com/turnstile-go/turnstile/rwlock"
)

func TestMain(m *testing.M) { os.Exit(servicetest.Main(m, &endpoints)) }

const (
	read  = turnstile.Shared
	write = turnstile.Exclusive
)

func acquire(ctx context.Context, rw *rwlock.RWMutex, k turnstile.Kind) error {
	if k == read {
		return rw.RLock(ctx)
	}
	return rw.Lock(ctx)
}

func release(ctx context.Context, rw *rwlock.RWMutex, k turnstile.Kind) error {
	if k == read {
		return rw.RUnlock(ctx)
	}
	return rw.Unlock(ctx)
}

// enqueue queues one contender of each kind, each on its own session and
// once the server shows the one before it queued, so that the queue is in
// the order given. got[i] receives contender i's acquisition result.
func enqueue(t *testing.T, s *servicetest.Service, name string, kinds ...turnstile.Kind) ([]*rwlock.RWMutex, []chan error) {
	t.Helper()
	rws := make([]*rwlock.RWMutex, len(kinds))
	for i := range rws {
		rws[i] = rwlock.New(s.Session(t), name)
	}
	got := s.InOrder(t, name, len(kinds), func(i int) error { return acquire(context.Background(), rws[i], kinds[i]) })
	return rws, got
}

// granted waits for the acquisition to succeed.
var granted = servicetest.Succeeds

// waiting checks that the acquisition has not returned.
func waiting(t *testing.T, got chan error, who string) {
	t.Helper()
	select {
	case err := <-got:
		got <- err // put back for a later check
		t.Fatalf("%s returned (%v) while it should wait", who, err)
	default:
	}
}

// Ten readers hold at once; a writer waits for all of them, and its token
// is larger than theirs.
func TestReadersShare(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		const n = 10
		readers := make([]*rwlock.RWMutex, n)
		got := make(chan error, n)
		for i := range readers {
			readers[i] = rwlock.New(s.Session(t), name)
			go func() { got <- readers[i].RLock(ctx) }()
		}
		// None releases before all hold: ten holds at once, or a hang.
		for i := range n {
			granted(t, got, fmt.Sprintf("reader %d", i))
		}
		var maxRead int64
		for _, r := range readers {
			require.Equal(t, read, r.Mode())
			maxRead = max(maxRead, r.Token())
		}
		w := rwlock.New(s.Session(t), name)
		wgot := make(chan error, 1)
		go func() { wgot <- w.Lock(ctx) }()
		locktest.Eventually(t, 10*time.Second, "writer queued", func() bool { return s.Queued(t, name) == n+1 })
		for i, r := range readers {
			waiting(t, wgot, "writer")
			require.NoError(t, r.RUnlock(ctx), "reader %d", i)
		}
		granted(t, wgot, "writer")
		require.Equal(t, write, w.Mode())
		require.Greater(t, w.Token(), maxRead, "the writer's token orders after the readers'")
		require.NoError(t, w.Unlock(ctx))
		require.Zero(t, s.Queued(t, name))
	})
}

// occupancy tracks who is inside the critical section: writers alone, readers
// with no writer, and every grant's token after those it must follow.
type occupancy struct {
	mu         sync.Mutex
	readers    int
	writers    int
	maxReaders int
	lastWrite  int64 // the largest token of a write grant so far
	lastAny    int64 // the largest token of any grant so far
	grants     int
	violations []string
}

func (o *occupancy) enter(who string, k turnstile.Kind, token int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.grants++
	fail := func(format string, args ...any) {
		o.violations = append(o.violations, who+": "+fmt.Sprintf(format, args...))
	}
	if token <= o.lastWrite {
		fail("token %d after a write grant with token %d", token, o.lastWrite)
	}
	if k == write {
		if o.readers+o.writers > 0 {
			fail("writer entered with %d readers and %d writers inside", o.readers, o.writers)
		}
		if token <= o.lastAny {
			fail("write token %d after a grant with token %d", token, o.lastAny)
		}
		o.writers++
		o.lastWrite = token
	} else {
		if o.writers > 0 {
			fail("reader entered with a writer inside")
		}
		o.readers++
		o.maxReaders = max(o.maxReaders, o.readers)
	}
	o.lastAny = max(o.lastAny, token)
}

func (o *occupancy) exit(k turnstile.Kind) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if k == write {
		o.writers--
	} else {
		o.readers--
	}
}

func (o *occupancy) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, v := range o.violations {
		t.Error(v)
	}
	t.Logf("%d grants, up to %d readers at once", o.grants, o.maxReaders)
}

// cycle has readers and writers, each on its own session, take and
// release the lock in a loop; fault, if any, runs once after a few
// grants. Writers never overlap anyone, and tokens order the grants.
func cycle(t *testing.T, s *servicetest.Service, readers, writers, rounds int, fault func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := locktest.Name()
	var occ occupancy
	var wg sync.WaitGroup
	var faultOnce sync.Once
	var faultWG sync.WaitGroup
	errs := make(chan error, readers+writers)
	// Every session opens before any contender starts, so that the fault
	// meets contenders, not sessions being opened.
	rws := make([]*rwlock.RWMutex, readers+writers)
	for i := range rws {
		rws[i] = rwlock.New(s.Session(t), name)
	}
	for i, rw := range rws {
		k := read
		if i >= readers {
			k = write
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if err := acquire(ctx, rw, k); err != nil {
					errs <- fmt.Errorf("contender %d, round %d: %w", i, r, err)
					return
				}
				occ.enter(fmt.Sprintf("contender %d", i), k, rw.Token())
				if r == 1 && fault != nil {
					faultOnce.Do(func() {
						faultWG.Add(1)
						go func() { defer faultWG.Done(); fault() }()
					})
				}
				time.Sleep(time.Millisecond) // let readers overlap
				occ.exit(k)
				if err := release(ctx, rw, k); err != nil {
					errs <- fmt.Errorf("contender %d, round %d: release: %w", i, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	faultWG.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	occ.check(t)
	if occ.grants != (readers+writers)*rounds {
		t.Errorf("%d grants, want %d", occ.grants, (readers+writers)*rounds)
	}
	require.Zero(t, s.Queued(t, name), "contenders left")
}

func TestCycle(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) { cycle(t, s, 6, 2, 5, nil) })
}

// Killing the servers' leader while readers and writers cycle never lets
// a writer overlap anyone.
func TestLeaderKilled(t *testing.T) {
	servicetest.EachCluster(t, 3, func(t *testing.T, s *servicetest.Service) {
		cycle(t, s, 3, 3, 5, s.KillLeader(t))
	})
}

// Queue R1 (holding) W1 R2: R2 waits for W1 to hold and release, though
// a reader holds when it arrives.
func TestWriterBetweenReaders(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		rws, got := enqueue(t, s, name, read, write, read)
		granted(t, got[0], "R1")
		waiting(t, got[1], "W1")
		waiting(t, got[2], "R2")
		require.NoError(t, rws[0].RUnlock(ctx))
		granted(t, got[1], "W1")
		waiting(t, got[2], "R2")
		require.NoError(t, rws[1].Unlock(ctx))
		granted(t, got[2], "R2")
		require.Greater(t, rws[2].Token(), rws[0].Token())
		require.NoError(t, rws[2].RUnlock(ctx))
	})
}

// Queue W1 (holding) R1 R2 R3 W2 R4: each reader watches the nearest
// writer ahead, each writer its predecessor, as the server shows, and
// holders watch nothing; each release notifies exactly the contenders
// it admits, and admits exactly them.
func TestWatchLayout(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		base := s.Watches(t)
		rws, got := enqueue(t, s, name, write, read, read, read, write, read)
		const w1, r1, r2, r3, w2, r4 = 0, 1, 2, 3, 4, 5
		granted(t, got[w1], "W1")
		q, err := locktest.Backend(t, s.Session(t)).Queue(ctx, name)
		require.NoError(t, err)
		key := make([]string, len(q))
		for i, c := range q {
			key[i] = c.Key
		}

		// settle waits until the server holds the watches of the
		// waiters, then checks who watches whom where the server tells.
		settle := func(waits map[int]int) {
			t.Helper()
			want := base + len(waits)
			locktest.Eventually(t, 10*time.Second, fmt.Sprintf("%d watches", want-base), func() bool {
				return s.Watches(t) == want
			})
			if layout := s.Layout(t, name); layout != nil {
				expect := map[string][]string{}
				for waiter, on := range waits {
					expect[key[waiter]] = []string{key[on]}
				}
				require.Equal(t, expect, layout, "who watches whom")
			}
		}
		// releases has contender i release, and checks the watch
		// notifications the server sends and who is granted.
		releases := func(i int, notified int, admits ...int) {
			t.Helper()
			before := s.Notified(t)
			require.NoError(t, release(ctx, rws[i], q[i].Kind))
			for _, a := range admits {
				granted(t, got[a], fmt.Sprintf("contender %d", a))
			}
			locktest.Eventually(t, 10*time.Second, fmt.Sprintf("%d notifications", notified), func() bool {
				return s.Notified(t)-before >= notified
			})
			require.Equal(t, notified, s.Notified(t)-before, "notifications for contender %d's release", i)
			for j := range got {
				if j > i && !slices.Contains(admits, j) && rws[j].Token() == 0 {
					waiting(t, got[j], fmt.Sprintf("contender %d", j))
				}
			}
		}

		settle(map[int]int{r1: w1, r2: w1, r3: w1, w2: r3, r4: w2})
		releases(w1, 3, r1, r2, r3)
		settle(map[int]int{w2: r3, r4: w2})
		releases(r1, 0)
		releases(r2, 0)
		releases(r3, 1, w2)
		settle(map[int]int{r4: w2})
		releases(w2, 1, r4)
		settle(nil)
		releases(r4, 0)
		require.Zero(t, s.Queued(t, name))
	})
}

// A cancelled reader and a cancelled writer leave the queue; the reader
// behind them is admitted by the holder's release.
func TestCancel(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		holder := rwlock.New(s.Session(t), name)
		require.NoError(t, holder.Lock(ctx))
		cancels := make([]context.CancelFunc, 2)
		got := make([]chan error, 3)
		rws := make([]*rwlock.RWMutex, 3)
		for i, k := range []turnstile.Kind{read, write, read} {
			cctx := ctx
			if i < 2 {
				cctx, cancels[i] = context.WithCancel(ctx)
			}
			rws[i] = rwlock.New(s.Session(t), name)
			got[i] = make(chan error, 1)
			go func() { got[i] <- acquire(cctx, rws[i], k) }()
			locktest.Eventually(t, 10*time.Second, "queued", func() bool { return s.Queued(t, name) == i+2 })
		}
		for i, cancel := range cancels {
			cancel()
			require.ErrorIs(t, <-got[i], context.Canceled)
		}
		locktest.Eventually(t, 10*time.Second, "cancelled contenders left", func() bool { return s.Queued(t, name) == 2 })
		require.NoError(t, holder.Unlock(ctx))
		granted(t, got[2], "the reader behind the cancelled ones")
		require.NoError(t, rws[2].RUnlock(ctx))
		require.Zero(t, s.Queued(t, name))
	})
}

// TryRLock shares with readers and fails on a writer, holding or
// waiting; TryLock fails on anyone. A failed try leaves nothing queued.
func TestTry(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		r1, r2, r3 := rwlock.New(s.Session(t), name), rwlock.New(s.Session(t), name), rwlock.New(s.Session(t), name)
		w := rwlock.New(s.Session(t), name)
		require.NoError(t, r1.TryRLock(ctx))
		require.NoError(t, r2.TryRLock(ctx))
		require.ErrorIs(t, w.TryLock(ctx), turnstile.ErrLocked)
		require.Equal(t, 2, s.Queued(t, name))

		got := make(chan error, 1)
		go func() { got <- w.Lock(ctx) }()
		locktest.Eventually(t, 10*time.Second, "writer queued", func() bool { return s.Queued(t, name) == 3 })
		require.ErrorIs(t, r3.TryRLock(ctx), turnstile.ErrLocked, "a waiting writer keeps later readers out")
		require.Equal(t, 3, s.Queued(t, name))
		require.NoError(t, r1.RUnlock(ctx))
		require.NoError(t, r2.RUnlock(ctx))
		granted(t, got, "writer")
		require.ErrorIs(t, r3.TryRLock(ctx), turnstile.ErrLocked)
		require.NoError(t, w.Unlock(ctx))
		require.NoError(t, w.TryLock(ctx))
		require.NoError(t, w.Unlock(ctx))
		require.Zero(t, s.Queued(t, name))
	})
}

// A value's hold is released by its own kind, a read hold is never
// upgraded, and neither mistake reaches the server.
func TestModes(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		rw := rwlock.New(s.Session(t), locktest.Name())
		require.Zero(t, rw.Mode())
		require.NoError(t, rw.RLock(ctx))
		require.Equal(t, read, rw.Mode())
		before := s.Writes(t)
		require.ErrorIs(t, rw.Lock(ctx), rwlock.ErrUpgrade)
		require.ErrorIs(t, rw.TryLock(ctx), rwlock.ErrUpgrade)
		require.ErrorIs(t, rw.Unlock(ctx), turnstile.ErrNotHeld)
		require.Equal(t, before, s.Writes(t), "the server changed")
		require.Equal(t, read, rw.Mode(), "the read hold is kept")
		require.NoError(t, rw.RUnlock(ctx))
		require.ErrorIs(t, rw.RUnlock(ctx), turnstile.ErrNotHeld)

		require.NoError(t, rw.Lock(ctx))
		require.Equal(t, write, rw.Mode())
		require.ErrorIs(t, rw.RUnlock(ctx), turnstile.ErrNotHeld)
		require.NoError(t, rw.Unlock(ctx))
		require.Zero(t, rw.Mode())
		require.Zero(t, rw.Token())
	})
}

// Goroutines sharing a value take turns on it, reading or writing, with
// at most one contender for it on the server.
func TestSharedValue(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		rw := rwlock.New(s.Session(t), name)
		var occ occupancy
		var wg sync.WaitGroup
		for i := range 6 {
			k := []turnstile.Kind{read, write}[i%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 3 {
					if err := acquire(ctx, rw, k); err != nil {
						t.Error(err)
						return
					}
					occ.enter(fmt.Sprintf("goroutine %d", i), k, rw.Token())
					if q := s.Queued(t, name); q != 1 {
						t.Errorf("%d contenders for one value", q)
					}
					occ.exit(k)
					if err := release(ctx, rw, k); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		occ.check(t)
		if occ.maxReaders > 1 {
			t.Errorf("%d read holds at once on one value", occ.maxReaders)
		}
	})
}

// Bad input fails every call with a matchable error, and the server is
// untouched.
func TestBadInput(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		var nilSession turnstile.Session
		cases := map[*rwlock.RWMutex]error{rwlock.New(nilSession, "/locks/a"): turnstile.ErrNilSession}
		sess := s.Session(t)
		for _, name := range []string{"", "locks", "/locks/", "/a//b", "/a/../b", "/a\x00b", "/zookeeper/x"} {
			cases[rwlock.New(sess, name)] = turnstile.ErrInvalidName
		}
		before := s.Writes(t)
		for rw, want := range cases {
			for op, f := range map[string]func(context.Context) error{
				"RLock": rw.RLock, "TryRLock": rw.TryRLock, "RUnlock": rw.RUnlock,
				"Lock": rw.Lock, "TryLock": rw.TryLock, "Unlock": rw.Unlock,
			} {
				require.ErrorIs(t, f(ctx), want, op)
			}
			require.Zero(t, rw.Token())
			require.Zero(t, rw.Mode())
			require.Nil(t, rw.Lost())
		}
		require.Equal(t, before, s.Writes(t), "the server changed")
	})
}

const cutLifetime = 2 * time.Second

// A holder of either kind cut off from its server sees Lost close within
// its session's lifetime and a second; the waiter of the other kind takes
// over with a larger token, and the former holder's release reports
// ErrLost.
func TestPartition(t *testing.T) {
	t.Parallel() // reads no server counters
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		for _, k := range []turnstile.Kind{read, write} {
			t.Run(k.String(), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				name := locktest.Name()
				sess, p := s.Through(t, cutLifetime)
				holder := rwlock.New(sess, name)
				require.NoError(t, acquire(ctx, holder, k))
				token := holder.Token()
				other := map[turnstile.Kind]turnstile.Kind{read: write, write: read}[k]
				rws, got := enqueue(t, s, name, other)
				p.Cut()
				select {
				case <-holder.Lost():
				case <-time.After(cutLifetime + time.Second):
					t.Fatalf("Lost() still open %v after the cut", cutLifetime+time.Second)
				}
				require.Zero(t, holder.Token())
				require.Zero(t, holder.Mode())
				granted(t, got[0], "waiter")
				require.Greater(t, rws[0].Token(), token)
				require.ErrorIs(t, release(ctx, holder, k), turnstile.ErrLost)
				require.Equal(t, 1, s.Queued(t, name))
				require.NoError(t, release(ctx, rws[0], other))
			})
		}
	})
}

// A waiter of either kind cut off from its server stops waiting with
// ErrLost, and its contender leaves the queue with its session.
func TestWaiterCut(t *testing.T) {
	t.Parallel() // reads no server counters
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		for _, k := range []turnstile.Kind{read, write} {
			t.Run(k.String(), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				name := locktest.Name()
				holder := rwlock.New(s.Session(t), name)
				require.NoError(t, holder.Lock(ctx))
				sess, p := s.Through(t, cutLifetime)
				waiter := rwlock.New(sess, name)
				got := make(chan error, 1)
				go func() { got <- acquire(ctx, waiter, k) }()
				locktest.Eventually(t, 10*time.Second, "waiter queued", func() bool { return s.Queued(t, name) == 2 })
				p.Cut()
				select {
				case err := <-got:
					require.ErrorIs(t, err, turnstile.ErrLost)
				case <-time.After(cutLifetime + 3*time.Second):
					pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
					t.Fatalf("still waiting %v after the cut", cutLifetime+3*time.Second)
				}
				locktest.Eventually(t, 10*time.Second, "the cut waiter's contender gone", func() bool { return s.Queued(t, name) == 1 })
				require.NoError(t, holder.Unlock(ctx))
			})
		}
	})
}

// A join whose reply is lost (the connection cut after the request left
// the client, before the server answered) is found again or retried,
// never doubled: one contender for the call, which acquires.
func TestLostReply(t *testing.T) {
	servicetest.EachCluster(t, 1, func(t *testing.T, s *servicetest.Service) {
		for _, k := range []turnstile.Kind{read, write} {
			t.Run(k.String(), func(t *testing.T) {
				ctx := context.Background()
				name := locktest.Name()
				sess, p := s.Through(t, 30*time.Second)
				rw := rwlock.New(sess, name)
				// The first acquisition opens the connection and, on
				// ZooKeeper, creates the parents.
				require.NoError(t, acquire(ctx, rw, k))
				require.NoError(t, release(ctx, rw, k))

				node := s.Node(t, 0)
				require.NoError(t, node.Pause())
				sent := p.Sent()
				got := make(chan error, 1)
				go func() { got <- acquire(ctx, rw, k) }()
				locktest.Eventually(t, 10*time.Second, "join sent", func() bool { return p.Sent()-sent > s.RequestBytes })
				p.Cut()
				require.NoError(t, node.Resume())
				p.Restore()
				require.NoError(t, <-got)
				require.Equal(t, 1, s.Queued(t, name), "contenders for one call")
				require.Equal(t, k, rw.Mode())
				require.NoError(t, release(ctx, rw, k))
			})
		}
	})
}

// checker is the servers' validity check, which both backends' sessions
// have.
type checker interface {
	Check(context.Context, turnstile.Sequencer) error
}

// Readers hold together with sequencers of their own, shared; a writer
// behind them holds exclusively once they leave. A Fence admits both
// readers in any order, then the writer, and turns a late reader away;
// the server calls the readers' holds over and the writer's current.
func TestSequencers(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		rws, got := enqueue(t, s, name, read, read, write)
		granted(t, got[0], "R1")
		granted(t, got[1], "R2")
		r1, r2 := rws[0].Sequencer(), rws[1].Sequencer()
		require.Equal(t, turnstile.Shared, r1.Mode)
		require.Equal(t, turnstile.Shared, r2.Mode)
		require.Equal(t, rws[0].Token(), r1.Token)
		require.Less(t, r1.Token, r2.Token)

		var f turnstile.Fence
		require.NoError(t, f.Admit(r2))
		require.NoError(t, f.Admit(r1), "readers hold together")
		check := s.Session(t).(checker)
		require.NoError(t, check.Check(ctx, r1))

		require.NoError(t, rws[0].RUnlock(ctx))
		require.NoError(t, rws[1].RUnlock(ctx))
		granted(t, got[2], "W")
		w := rws[2].Sequencer()
		require.Equal(t, turnstile.Exclusive, w.Mode)
		require.Zero(t, rws[0].Sequencer(), "a released hold's sequencer")
		require.ErrorIs(t, check.Check(ctx, r1), turnstile.ErrStaleToken)
		require.NoError(t, check.Check(ctx, w))
		require.NoError(t, f.Admit(w))
		require.ErrorIs(t, f.Admit(r2), turnstile.ErrStaleToken, "a reader after the writer")
		require.NoError(t, rws[2].Unlock(ctx))
	})
}

// With a lock-delay, a hold that ends without a release (here its node
// or key deleted by someone else) delays the contender behind it, a
// write hold's a reader, and a read hold's a writer: the reader may have
// been serving a writer's delay.
func TestLockDelay(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		const delay = time.Second
		remove := func(rw *rwlock.RWMutex) time.Time {
			seq := rw.Sequencer()
			require.NoError(t, locktest.Backend(t, s.Session(t)).Leave(ctx, queue.Contender{Key: seq.Key, Seq: seq.Token}, false, false))
			return time.Now()
		}
		for _, tc := range []struct {
			first, then turnstile.Kind
			delayed     bool
		}{{write, read, true}, {read, write, true}} {
			name := locktest.Name()
			holder := rwlock.New(s.Session(t), name, rwlock.WithLockDelay(delay))
			require.NoError(t, acquire(ctx, holder, tc.first))
			waiter := rwlock.New(s.Session(t), name, rwlock.WithLockDelay(delay))
			watches := s.Watches(t)
			got := make(chan error, 1)
			go func() { got <- acquire(ctx, waiter, tc.then) }()
			locktest.Eventually(t, 10*time.Second, "waiter watching", func() bool { return s.Watches(t) == watches+1 })
			end := remove(holder)
			granted(t, got, tc.then.String())
			// The waiter may see the end before the delete's reply
			// reaches the test.
			took := time.Since(end)
			if tc.delayed && took < delay-10*time.Millisecond || !tc.delayed && took > delay/2 {
				t.Errorf("%s after %s: granted after %v, want delayed %v", tc.then, tc.first, took, tc.delayed)
			}
			require.NoError(t, release(ctx, waiter, tc.then))
		}
	})
}
