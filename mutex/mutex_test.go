package mutex_test

import (
	"os"
	"testing"
	"time"

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
