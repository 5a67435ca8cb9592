package mutex_test

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
	"github.com/turnstile-go/turnstile/internal/recipe"

	"github.com/turnstile-go/turnstile/internal/testing/locktest"
	"github.com/turnstile-go/turnstile/internal/testing/proxy"
	"github.com/turnstile-go/turnstile/internal/testing/servicetest"
	"github.com/turnstile-go/turnstile/mutex"
)

// The behaviour of the Mutex, written once and run on each service.
// What belongs to one backend alone (its requests and watches per
// hand-off, its lost replies, its server-side checks) is tested in
// zklock and etcdlock.

func TestMain(m *testing.M) { os.Exit(servicetest.Main(m, nil)) }

func env(s *servicetest.Service) locktest.Env {
	return locktest.Env{
		NewMutex: func(tb testing.TB, name string) locktest.Locker { return mutex.New(s.Session(tb), name) },
		Queued:   s.Queued,
		Writes:   s.Writes,
	}
}

func each(t *testing.T, test func(t *testing.T, e locktest.Env)) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) { test(t, env(s)) })
}

func TestFIFO(t *testing.T) {
	each(t, func(t *testing.T, e locktest.Env) { locktest.FIFO(t, e, 16) })
}
func TestCancelWaiter(t *testing.T) { each(t, locktest.CancelWaiter) }
func TestTryLock(t *testing.T)      { each(t, locktest.TryLock) }
func TestSharedValue(t *testing.T)  { each(t, locktest.SharedValue) }
func TestBadNames(t *testing.T)     { each(t, locktest.BadNames) }
func TestNestedNames(t *testing.T)  { each(t, locktest.NestedNames) }

// A holder cut off from the server past its session's lifetime learns
// of its loss before the next holder is granted.
func TestPartition(t *testing.T) {
	const lifetime = 2 * time.Second
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		locktest.Partition(t, env(s), lifetime, func(tb testing.TB, name string) (locktest.Locker, func()) {
			session, p := s.Through(tb, lifetime)
			return mutex.New(session, name), p.Cut
		})
	})
}

// Killing the leader of 3 servers while 8 contenders cycle: never two
// holders, grants in arrival order.
func TestLeaderKilled(t *testing.T) {
	servicetest.EachCluster(t, 3, func(t *testing.T, s *servicetest.Service) {
		locktest.Cycle(t, env(s), 8, 6, locktest.KillLeader(t, s.Leader, func(i int) error { return s.Node(t, i).Kill() }))
	})
}

// Holds cost the server no watch and the client no goroutine: a session
// holding many names checks them all in one request a second, and a
// contender deleted among them by someone else is noticed through that
// check alone.
func TestHoldsCostNoWatch(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		session := s.Session(t)
		mutexes := make([]*mutex.Mutex, 50)
		for i := range mutexes {
			mutexes[i] = mutex.New(session, locktest.Name())
		}
		require.NoError(t, mutexes[0].Lock(ctx)) // the session's checker starts
		watching, running := s.Watches(t), runtime.NumGoroutine()
		for _, m := range mutexes[1:] {
			require.NoError(t, m.Lock(ctx))
		}
		require.Equal(t, watching, s.Watches(t), "server watches")
		// Pooled goroutines that run calls come and go; one per hold
		// would be 49.
		require.Less(t, runtime.NumGoroutine()-running, 10, "goroutines")

		const victim = 7
		seq := mutexes[victim].Sequencer()
		require.NoError(t, locktest.Backend(t, s.Session(t)).Leave(ctx, queue.Contender{Key: seq.Key, Seq: seq.Token}, false, false))
		select {
		case <-mutexes[victim].Lost():
		case <-time.After(3 * recipe.SweepPeriod):
			t.Fatal("Lost() still open after the contender was deleted")
		}
		require.Zero(t, mutexes[victim].Token())
		for i, m := range mutexes {
			if i != victim {
				require.False(t, recipe.Closed(m.Lost()), "hold %d lost", i)
				require.NoError(t, m.Unlock(ctx))
			}
		}
	})
}

// A hold whose contender is found gone by its Unlock, before any check
// of the session's, reports ErrLost and closes the Lost channel the
// holder has.
func TestUnlockFindsLoss(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		m := mutex.New(s.Session(t), locktest.Name())
		require.NoError(t, m.Lock(ctx))
		lost := m.Lost()
		seq := m.Sequencer()
		require.NoError(t, locktest.Backend(t, s.Session(t)).Leave(ctx, queue.Contender{Key: seq.Key, Seq: seq.Token}, false, false))
		require.ErrorIs(t, m.Unlock(ctx), turnstile.ErrLost)
		require.True(t, recipe.Closed(lost), "Lost() still open")
	})
}

// An Unlock that gives up while its delete is held up on the way leaves
// the hold, and the delete, landing later, is no loss: Unlock again
// succeeds.
func TestUnlockGivenUp(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		session, p := s.Through(t, 10*time.Second)
		name := locktest.Name()
		m := mutex.New(session, name)
		require.NoError(t, m.Lock(ctx))

		p.Hold(proxy.ToServer)
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, m.Unlock(short), context.DeadlineExceeded)
		require.Positive(t, m.Token(), "the hold stays until Unlock succeeds")
		p.Release(proxy.ToServer)
		locktest.Eventually(t, 10*time.Second, "the late delete landed", func() bool { return s.Queued(t, name) == 0 })
		time.Sleep(3 * recipe.SweepPeriod) // the session's checks see the node or key gone
		require.False(t, recipe.Closed(m.Lost()), "Lost() closed for the holder's own delete")
		require.NoError(t, m.Unlock(ctx))
		require.ErrorIs(t, m.Unlock(ctx), turnstile.ErrNotHeld)
	})
}

// An Unlock under a ctx that has ended sends nothing and leaves the
// hold, with a lock-delay too; the hold is still told of its session's
// end.
func TestUnlockGivenUpThenSessionEnds(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		for _, opts := range [][]mutex.Option{nil, {mutex.WithLockDelay(delay)}} {
			ctx := context.Background()
			session := s.Session(t)
			name := locktest.Name()
			m := mutex.New(session, name, opts...)
			require.NoError(t, m.Lock(ctx))
			gaveUp, cancel := context.WithCancel(ctx)
			cancel()
			require.ErrorIs(t, m.Unlock(gaveUp), context.Canceled)
			require.Positive(t, m.Token(), "the hold stays until Unlock succeeds")
			require.Equal(t, 1, s.Queued(t, name), "the hold's node or key deleted")
			require.NoError(t, session.Close())
			select {
			case <-m.Lost():
			case <-time.After(time.Second):
				t.Fatal("Lost() still open after the session's end")
			}
			require.ErrorIs(t, m.Unlock(ctx), turnstile.ErrLost)
		}
	})
}

// delay is the lock-delay of these tests: long beside a hand-off (a few
// milliseconds), short beside the suite.
const delay = time.Second

// slack covers the test's own sight of the holder's end, which may come
// a poll later than the waiter's.
const slack = 10 * time.Millisecond

// A holder cut off past its session's lifetime: the waiter behind it,
// with a lock-delay, is granted no sooner than the delay after the
// server removed the holder's contender, and no later than a second
// after that.
func TestLockDelayAfterCut(t *testing.T) {
	const lifetime = 2 * time.Second
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		name := locktest.Name()
		session, p := s.Through(t, lifetime)
		holder := mutex.New(session, name, mutex.WithLockDelay(delay))
		require.NoError(t, holder.Lock(context.Background()))
		waiter := mutex.New(s.Session(t), name, mutex.WithLockDelay(delay))
		got := s.Waiting(t, name, 2, waiter.Lock)
		p.Cut()
		end := s.Left(t, name, 2)
		at := servicetest.GrantedAt(t, got, "waiter")
		require.GreaterOrEqual(t, at.Sub(end), delay-slack, "granted before the lock-delay")
		require.LessOrEqual(t, at.Sub(end), delay+time.Second, "granted long after the lock-delay")
		require.Greater(t, waiter.Token(), int64(0))
		require.NoError(t, waiter.Unlock(context.Background()))
	})
}

// A hold whose contender someone else deleted ended without a release:
// the next grant waits the lock-delay too.
func TestLockDelayAfterDelete(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		holder := mutex.New(s.Session(t), name, mutex.WithLockDelay(delay))
		require.NoError(t, holder.Lock(ctx))
		waiter := mutex.New(s.Session(t), name, mutex.WithLockDelay(delay))
		got := s.Waiting(t, name, 2, waiter.Lock)
		seq := holder.Sequencer()
		require.NoError(t, locktest.Backend(t, s.Session(t)).Leave(ctx, queue.Contender{Key: seq.Key, Seq: seq.Token}, false, false))
		end := time.Now()
		at := servicetest.GrantedAt(t, got, "waiter")
		require.GreaterOrEqual(t, at.Sub(end), delay-slack, "granted before the lock-delay")
		require.NoError(t, waiter.Unlock(ctx))
		require.ErrorIs(t, holder.Unlock(ctx), turnstile.ErrLost)
	})
}

// An Unlock hands over at once, with a lock-delay far longer than a
// hand-off: to a waiter already watching, and through a chain of them.
func TestLockDelayRelease(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		const long = time.Minute
		ms := make([]*mutex.Mutex, 4)
		for i := range ms {
			ms[i] = mutex.New(s.Session(t), name, mutex.WithLockDelay(long))
		}
		require.NoError(t, ms[0].Lock(ctx))
		got := make([]<-chan error, len(ms))
		for i := 1; i < len(ms); i++ {
			got[i] = s.Waiting(t, name, i+1, ms[i].Lock)
		}
		start := time.Now()
		for i := 1; i < len(ms); i++ {
			require.NoError(t, ms[i-1].Unlock(ctx))
			servicetest.Succeeds(t, got[i], "waiter")
		}
		require.Less(t, time.Since(start), long/2, "a release was delayed")
		require.NoError(t, ms[len(ms)-1].Unlock(ctx))
		require.Zero(t, s.Queued(t, name))
	})
}

// A waiter cancelled while it waits leaves as a release does: the one
// behind it is not delayed.
func TestLockDelayCancelledWaiter(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		const long = time.Minute
		holder := mutex.New(s.Session(t), name, mutex.WithLockDelay(long))
		require.NoError(t, holder.Lock(ctx))
		cctx, cancel := context.WithCancel(ctx)
		cancelled := mutex.New(s.Session(t), name, mutex.WithLockDelay(long))
		watches := s.Watches(t)
		cgot := make(chan error, 1)
		go func() { cgot <- cancelled.Lock(cctx) }()
		locktest.Eventually(t, 10*time.Second, "waiter watching", func() bool { return s.Watches(t) == watches+1 })
		last := mutex.New(s.Session(t), name, mutex.WithLockDelay(long))
		got := s.Waiting(t, name, 3, last.Lock)
		cancel()
		require.ErrorIs(t, <-cgot, context.Canceled)
		// The last waiter watches the holder now. ZooKeeper keeps the
		// cancelled waiter's watch on the holder until it fires; etcd
		// removes it.
		dangling := 0
		if s.Name == "zookeeper" {
			dangling = 1
		}
		locktest.Eventually(t, 10*time.Second, "the last waiter watching the holder", func() bool {
			return s.Queued(t, name) == 2 && s.Watches(t) == watches+dangling+1
		})
		start := time.Now()
		require.NoError(t, holder.Unlock(ctx))
		servicetest.Succeeds(t, got, "waiter")
		require.Less(t, time.Since(start), long/2, "delayed by a cancelled waiter")
		require.NoError(t, last.Unlock(ctx))
	})
}

// A negative lock-delay fails every call before any server call.
func TestLockDelayInvalid(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		session := s.Session(t)
		before := s.Writes(t)
		m := mutex.New(session, locktest.Name(), mutex.WithLockDelay(-time.Second))
		require.ErrorIs(t, m.Lock(ctx), turnstile.ErrInvalidOption)
		require.ErrorIs(t, m.TryLock(ctx), turnstile.ErrInvalidOption)
		require.ErrorIs(t, m.Unlock(ctx), turnstile.ErrInvalidOption)
		require.Equal(t, before, s.Writes(t), "the server changed")
	})
}

// A waiter that leaves while it serves a lock-delay leaves the rest of it
// to the one behind: after a hold ended without a release, cancelling
// the waiter behind it does not let the next one in before the delay.
func TestLockDelayServedByNext(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		holder := mutex.New(s.Session(t), name, mutex.WithLockDelay(delay))
		require.NoError(t, holder.Lock(ctx))
		cctx, cancel := context.WithCancel(ctx)
		serving := mutex.New(s.Session(t), name, mutex.WithLockDelay(delay))
		sgot := s.Waiting(t, name, 2, func(context.Context) error { return serving.Lock(cctx) })
		next := mutex.New(s.Session(t), name, mutex.WithLockDelay(delay))
		got := s.Waiting(t, name, 3, next.Lock)
		seq := holder.Sequencer()
		require.NoError(t, locktest.Backend(t, s.Session(t)).Leave(ctx, queue.Contender{Key: seq.Key, Seq: seq.Token}, false, false))
		end := time.Now()
		locktest.Eventually(t, 10*time.Second, "holder gone", func() bool { return s.Queued(t, name) == 2 })
		cancel() // while it serves the delay
		require.ErrorIs(t, <-sgot, context.Canceled)
		at := servicetest.GrantedAt(t, got, "next")
		require.GreaterOrEqual(t, at.Sub(end), delay-slack, "let in before the lock-delay")
		require.NoError(t, next.Unlock(ctx))
	})
}
