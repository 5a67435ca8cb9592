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
		require.NoError(t, locktest.Backend(t, s.Session(t)).Leave(ctx, queue.Contender{Key: seq.Key, Seq: seq.Token}, false))
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
		require.NoError(t, locktest.Backend(t, s.Session(t)).Leave(ctx, queue.Contender{Key: seq.Key, Seq: seq.Token}, false))
		require.ErrorIs(t, m.Unlock(ctx), turnstile.ErrLost)
		require.True(t, recipe.Closed(lost), "Lost() still open")
	})
}

// An Unlock given up before its delete's answer leaves the hold, though
// the delete lands; the hold is still told of its session's end.
func TestUnlockGivenUpThenSessionEnds(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		session := s.Session(t)
		m := mutex.New(session, locktest.Name())
		require.NoError(t, m.Lock(ctx))
		gaveUp, cancel := context.WithCancel(ctx)
		cancel()
		require.ErrorIs(t, m.Unlock(gaveUp), context.Canceled)
		require.Positive(t, m.Token(), "the hold stays until Unlock succeeds")
		time.Sleep(3 * recipe.SweepPeriod) // the session's checks see the node or key gone
		require.False(t, recipe.Closed(m.Lost()), "its own delete taken for a loss")
		require.NoError(t, session.Close())
		select {
		case <-m.Lost():
		case <-time.After(time.Second):
			t.Fatal("Lost() still open after the session's end")
		}
		require.ErrorIs(t, m.Unlock(ctx), turnstile.ErrLost)
	})
}
