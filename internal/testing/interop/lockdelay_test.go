package interop_test

import (
	"context"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/locktest"
	"github.com/turnstile-go/turnstile/internal/testing/servicetest"
	"github.com/turnstile-go/turnstile/mutex"
)

// A lock-delay on a name shared with another client. A turnstile holder
// cut off past its session: the turnstile waiter behind it is granted
// the delay after the holder's end, and no more than a second later,
// while the other client's waiter behind that one keeps waiting; the
// waiter's Unlock, marked, hands over to the other client at once. The
// other client's release is not marked: the turnstile waiter behind it
// waits the delay, in doubt.
func TestLockDelay(t *testing.T) {
	const delay, lifetime = time.Second, 2 * time.Second
	for _, tc := range []struct {
		client, service string
		others          others
	}{
		{"zk.Lock", "zookeeper", func(t *testing.T, s *servicetest.Service, name string) []contender { return zkLocks(t, s, name, 1) }},
		{"concurrency.Mutex", "etcd", func(t *testing.T, s *servicetest.Service, name string) []contender { return etcdMutexes(t, s, name, 1) }},
	} {
		t.Run(tc.client, func(t *testing.T) {
			servicetest.On(t, tc.service, func(t *testing.T, s *servicetest.Service) {
				ctx := context.Background()
				name := locktest.Name()
				session, p := s.Through(t, lifetime)
				holder := mutex.New(session, name, mutex.WithLockDelay(delay))
				if err := holder.Lock(ctx); err != nil {
					t.Fatal(err)
				}
				waiter := mutex.New(s.Session(t), name, mutex.WithLockDelay(delay))
				got := s.Waiting(t, name, 2, waiter.Lock)
				other := tc.others(t, s, name)[0]
				otherGot := s.Waiting(t, name, 3, other.acquire)

				p.Cut()
				end := s.Left(t, name, 3)
				after := servicetest.GrantedAt(t, got, "turnstile waiter").Sub(end)
				if after < delay-10*time.Millisecond || after > delay+time.Second {
					t.Fatalf("granted %v after the holder's end, want %v to %v", after, delay, delay+time.Second)
				}
				select {
				case err := <-otherGot:
					t.Fatalf("%s granted (%v) while the turnstile waiter holds", other.who, err)
				default:
				}
				released := time.Now()
				if err := waiter.Unlock(ctx); err != nil {
					t.Fatal(err)
				}
				if took := servicetest.GrantedAt(t, otherGot, other.who).Sub(released); took > delay/2 {
					t.Fatalf("%s granted %v after a marked release", other.who, took)
				}

				next := mutex.New(s.Session(t), name, mutex.WithLockDelay(delay))
				got = s.Waiting(t, name, 2, next.Lock)
				released = time.Now()
				if err := other.release(ctx); err != nil {
					t.Fatal(err)
				}
				if after := servicetest.GrantedAt(t, got, "turnstile waiter").Sub(released); after < delay {
					t.Fatalf("granted %v after %s released, want at least %v", after, other.who, delay)
				}
				if err := next.Unlock(ctx); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}
