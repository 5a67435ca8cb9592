package semaphore_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/internal/recipe"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
	"github.com/turnstile-go/turnstile/internal/testing/proxy"
	"github.com/turnstile-go/turnstile/internal/testing/servicetest"
	"github.com/turnstile-go/turnstile/mutex"
	"github.com/turnstile-go/turnstile/semaphore"
	"github.com/turnstile-go/turnstile/zklock"
)

func TestMain(m *testing.M) { os.Exit(servicetest.Main(m, &endpoints)) }

// room is the waiting room of the semaphore name.
func room(name string) string { return name + "/" + recipe.WaitingRoom }

// holders takes permits on sems, one after the other, on a free
// semaphore.
func holders(t *testing.T, sems ...*semaphore.Semaphore) {
	t.Helper()
	for i, sem := range sems {
		require.NoError(t, sem.Acquire(context.Background()), "holder %d", i)
	}
}

// waiters queues one Acquire for each of sems, in that order, in name's
// waiting room.
func waiters(t *testing.T, s *servicetest.Service, name string, sems []*semaphore.Semaphore) []chan error {
	t.Helper()
	return s.InOrder(t, room(name), len(sems), func(i int) error { return sems[i].Acquire(context.Background()) })
}

func open(t *testing.T, s *servicetest.Service, name string, permits, n int) []*semaphore.Semaphore {
	sems := make([]*semaphore.Semaphore, n)
	for i := range sems {
		sems[i] = semaphore.New(s.Session(t), name, permits)
	}
	return sems
}

// waiting checks that none of got has returned.
func waiting(t *testing.T, got []chan error, who string) {
	t.Helper()
	for i, ch := range got {
		select {
		case err := <-ch:
			t.Fatalf("%s %d returned (%v) while it should wait", who, i, err)
		default:
		}
	}
}

func empty(t *testing.T, s *servicetest.Service, name string) {
	t.Helper()
	locktest.Eventually(t, 10*time.Second, "both queues empty", func() bool {
		return s.Queued(t, name) == 0 && s.Queued(t, room(name)) == 0
	})
}

// Three permits among twelve contenders, each on a session of its own:
// never more than three inside at once, all three used, and grants in
// the order the server received the contenders, with tokens in that
// order.
func TestBound(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		const permits, n = 3, 12
		sems := open(t, s, name, permits, n)
		var mu sync.Mutex
		inside, most := 0, 0
		tokens := make([]int64, n)
		enter := func(i int) {
			mu.Lock()
			defer mu.Unlock()
			inside++
			most = max(most, inside)
			tokens[i] = sems[i].Token()
		}
		exit := func() {
			mu.Lock()
			defer mu.Unlock()
			inside--
		}
		holders(t, sems[:permits]...)
		for i := range permits {
			enter(i)
		}
		got := s.InOrder(t, room(name), n-permits, func(i int) error {
			sem := sems[permits+i]
			if err := sem.Acquire(ctx); err != nil {
				return err
			}
			enter(permits + i)
			time.Sleep(20 * time.Millisecond) // let holders overlap
			exit()
			return sem.Release(ctx)
		})
		for i := range permits {
			exit()
			require.NoError(t, sems[i].Release(ctx))
		}
		for i, ch := range got {
			servicetest.Succeeds(t, ch, fmt.Sprintf("waiter %d", i))
		}
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, permits, most, "holders at once")
		// Granted in the order they queued, by the server's order: the
		// order in which Acquire calls return may differ by a read.
		for i := 1; i < n; i++ {
			require.Greater(t, tokens[i], tokens[i-1], "grant %d", i)
		}
		empty(t, s, name)
	})
}

// Tokens strictly increase in the order of grants, whatever the order of
// releases.
func TestTokens(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		sems := open(t, s, name, 2, 6)
		holders(t, sems[0], sems[1])
		require.Greater(t, sems[1].Token(), sems[0].Token())
		last := sems[1].Token()
		got := waiters(t, s, name, sems[2:])
		// The newer holder first, then the older; then the newer again.
		for j, released := range []int{1, 0, 3, 2} {
			require.NoError(t, sems[released].Release(ctx))
			servicetest.Succeeds(t, got[j], fmt.Sprintf("waiter %d", j))
			require.Greater(t, sems[2+j].Token(), last, "waiter %d", j)
			last = sems[2+j].Token()
		}
		require.NoError(t, sems[4].Release(ctx))
		require.NoError(t, sems[5].Release(ctx))
		empty(t, s, name)
	})
}

// With three permits, three holders and twenty waiters, each release,
// whichever holder makes it, admits exactly the first waiter. The server
// sends two notifications per release, to the waiter admitted and to the
// next first waiter, whatever the number of waiters; waiters hold one
// watch each (on etcd the first waiter two, the holders' keys on either
// side of the waiting room), holders none.
func TestHerd(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		const permits, n = 3, 20
		sems := open(t, s, name, permits, permits+n)
		watches := s.Watches(t)
		holders(t, sems[:permits]...)
		require.Equal(t, watches, s.Watches(t), "holders watch nothing")
		got := waiters(t, s, name, sems[permits:])
		perFirst := 1
		if s.Name == "etcd" {
			perFirst = 2
		}
		settled := func(what string) {
			locktest.Eventually(t, 10*time.Second, what, func() bool {
				return s.Watches(t) == watches+(n-1)+perFirst
			})
		}
		settled("every waiter watching")
		for j, released := range []int{1, 2, 0} { // the middle holder, the last, the first
			n := n - j
			settled := func(what string) {
				locktest.Eventually(t, 10*time.Second, what, func() bool {
					return s.Watches(t) == watches+(n-2)+perFirst
				})
			}
			before := s.Notified(t)
			require.NoError(t, sems[released].Release(ctx))
			servicetest.Succeeds(t, got[j], fmt.Sprintf("waiter %d", j))
			settled(fmt.Sprintf("release %d: the next first waiter watching", j))
			waiting(t, got[j+1:], "waiter")
			require.Equal(t, permits, s.Queued(t, name), "holders")
			notified := s.Notified(t) - before
			t.Logf("release %d: %d notifications", j, notified)
			require.Equal(t, 2, notified, "notifications for release %d", j)
		}
		for i := range got {
			if i >= 3 { // the first three were admitted above
				servicetest.Succeeds(t, got[i], fmt.Sprintf("waiter %d", i))
			}
			require.NoError(t, sems[permits+i].Release(ctx))
		}
		empty(t, s, name)
	})
}

// A cancelled waiter leaves nothing, wherever it waits: the one behind
// it waits for the one ahead instead, and the first waiter's place goes
// to the next.
func TestCancel(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		sems := open(t, s, name, 2, 5)
		holders(t, sems[0], sems[1])
		cancels := make([]context.CancelFunc, 2)
		got := s.InOrder(t, room(name), 3, func(i int) error {
			cctx := ctx
			if i < 2 {
				cctx, cancels[i] = context.WithCancel(ctx)
			}
			return sems[2+i].Acquire(cctx)
		})
		cancels[1]() // in the middle
		require.ErrorIs(t, <-got[1], context.Canceled)
		cancels[0]() // first
		require.ErrorIs(t, <-got[0], context.Canceled)
		locktest.Eventually(t, 10*time.Second, "cancelled waiters gone", func() bool { return s.Queued(t, room(name)) == 1 })
		require.NoError(t, sems[1].Release(ctx))
		servicetest.Succeeds(t, got[2], "the waiter behind the cancelled ones")
		require.Zero(t, sems[2].Token(), "a cancelled Acquire holds nothing")
		require.ErrorIs(t, sems[2].Release(ctx), turnstile.ErrNotHeld)
		require.NoError(t, sems[0].Release(ctx))
		require.NoError(t, sems[4].Release(ctx))
		empty(t, s, name)
	})
}

const cutLifetime = 2 * time.Second

// A holder cut off from its server loses its permit: Lost closes within
// its session's lifetime and a second, the first waiter takes the
// permit with a larger token, and the former holder's Release reports
// ErrLost.
func TestPartition(t *testing.T) {
	t.Parallel() // reads no server counters
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		t.Parallel()
		ctx := context.Background()
		name := locktest.Name()
		sess, p := s.Through(t, cutLifetime)
		cut := semaphore.New(sess, name, 2)
		other := semaphore.New(s.Session(t), name, 2)
		holders(t, cut, other)
		token := cut.Token()
		waiter := semaphore.New(s.Session(t), name, 2)
		got := waiters(t, s, name, []*semaphore.Semaphore{waiter})
		p.Cut()
		select {
		case <-cut.Lost():
		case <-time.After(cutLifetime + time.Second):
			t.Fatalf("Lost() still open %v after the cut", cutLifetime+time.Second)
		}
		require.Zero(t, cut.Token())
		servicetest.Succeeds(t, got[0], "waiter")
		require.Greater(t, waiter.Token(), token)
		require.ErrorIs(t, cut.Release(ctx), turnstile.ErrLost)
		require.NoError(t, other.Release(ctx))
		require.NoError(t, waiter.Release(ctx))
		empty(t, s, name)
	})
}

// A waiter cut off from its server stops waiting with ErrLost, and its
// contender leaves with its session; the waiter behind it goes on.
func TestWaiterCut(t *testing.T) {
	t.Parallel() // reads no server counters
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		t.Parallel()
		ctx := context.Background()
		name := locktest.Name()
		holder := semaphore.New(s.Session(t), name, 1)
		holders(t, holder)
		sess, p := s.Through(t, cutLifetime)
		sems := []*semaphore.Semaphore{semaphore.New(sess, name, 1), semaphore.New(s.Session(t), name, 1)}
		got := waiters(t, s, name, sems)
		p.Cut()
		select {
		case err := <-got[0]:
			require.ErrorIs(t, err, turnstile.ErrLost)
		case <-time.After(cutLifetime + 3*time.Second):
			t.Fatalf("still waiting %v after the cut", cutLifetime+3*time.Second)
		}
		locktest.Eventually(t, 10*time.Second, "the cut waiter gone", func() bool { return s.Queued(t, room(name)) == 1 })
		require.NoError(t, holder.Release(ctx))
		servicetest.Succeeds(t, got[1], "the waiter behind")
		require.NoError(t, sems[1].Release(ctx))
		empty(t, s, name)
	})
}

// Contenders that disagree about the permits keep to the fewest that a
// holder, or the one being admitted, asked for.
func TestPermitsDisagree(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		sem := func(permits int) *semaphore.Semaphore { return semaphore.New(s.Session(t), name, permits) }
		a, b := sem(3), sem(3)
		holders(t, a, b)
		require.ErrorIs(t, sem(2).TryAcquire(ctx), turnstile.ErrLocked, "two holders, two permits asked")
		c := sem(3)
		require.NoError(t, c.TryAcquire(ctx), "two holders of three permits")
		require.ErrorIs(t, sem(4).TryAcquire(ctx), turnstile.ErrLocked, "three holders of three permits")
		for _, h := range []*semaphore.Semaphore{a, b, c} {
			require.NoError(t, h.Release(ctx))
		}
		one := sem(1)
		require.NoError(t, one.Acquire(ctx))
		require.ErrorIs(t, sem(3).TryAcquire(ctx), turnstile.ErrLocked, "a holder that asked for one")
		waiter := sem(3)
		got := waiters(t, s, name, []*semaphore.Semaphore{waiter})
		waiting(t, got, "waiter")
		require.NoError(t, one.Release(ctx))
		servicetest.Succeeds(t, got[0], "waiter")
		require.NoError(t, waiter.Release(ctx))
		empty(t, s, name)
	})
}

// A mutex on a semaphore's name holds alone: it waits for the permit
// holders, and they for it.
func TestBesideMutex(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		sem := semaphore.New(s.Session(t), name, 3)
		holders(t, sem)
		m := mutex.New(s.Session(t), name)
		locked := make(chan error, 1)
		go func() { locked <- m.Lock(ctx) }()
		locktest.Eventually(t, 10*time.Second, "mutex queued", func() bool { return s.Queued(t, name) == 2 })
		waiting(t, []chan error{locked}, "mutex")
		require.NoError(t, sem.Release(ctx))
		servicetest.Succeeds(t, locked, "mutex")
		got := waiters(t, s, name, []*semaphore.Semaphore{sem})
		waiting(t, got, "semaphore")
		require.NoError(t, m.Unlock(ctx))
		servicetest.Succeeds(t, got[0], "semaphore")
		require.NoError(t, sem.Release(ctx))
		empty(t, s, name)
	})
}

// Bad input fails every call with a matching error, before any server
// call.
func TestInvalid(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		sess := s.Session(t)
		before := s.Writes(t)
		for _, tc := range []struct {
			sem  *semaphore.Semaphore
			want error
		}{
			{semaphore.New(sess, "/a", 0), semaphore.ErrInvalidPermits},
			{semaphore.New(sess, "/a", -1), semaphore.ErrInvalidPermits},
			{semaphore.New(sess, "/a", semaphore.MaxPermits+1), semaphore.ErrInvalidPermits},
			{semaphore.New(sess, "a", 1), turnstile.ErrInvalidName},
			{semaphore.New(nil, "/a", 1), turnstile.ErrNilSession},
		} {
			require.ErrorIs(t, tc.sem.Acquire(ctx), tc.want)
			require.ErrorIs(t, tc.sem.TryAcquire(ctx), tc.want)
			require.ErrorIs(t, tc.sem.Release(ctx), tc.want)
			require.Zero(t, tc.sem.Token())
			require.Nil(t, tc.sem.Lost())
		}
		require.Equal(t, before, s.Writes(t), "the server changed")
		sem := semaphore.New(sess, locktest.Name(), semaphore.MaxPermits)
		require.NoError(t, sem.Acquire(ctx))
		require.Equal(t, turnstile.Shared, sem.Sequencer().Mode)
		require.NoError(t, sem.Sequencer().Validate())
		require.NoError(t, sem.Release(ctx))
	})
}

// A mutex's contender that joins after the first waiter has seen room
// among the holders, and before its move lands, is ahead of the moved
// waiter: the waiter holds only once the mutex has let go. The proxy
// holds back the answer to the waiter's look at the holders until the
// mutex has taken the name.
func TestMutexBeforeMove(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		holder := semaphore.New(s.Session(t), name, 1)
		holders(t, holder)
		sess, p := s.Through(t, 30*time.Second)
		waiter := semaphore.New(sess, name, 1, semaphore.WithIdentity("waiter"))
		got := waiters(t, s, name, []*semaphore.Semaphore{waiter})
		locktest.Eventually(t, 10*time.Second, "the waiter watching the holders", func() bool { return s.Watches(t) > 0 })

		p.Hold(proxy.ToServer)
		require.NoError(t, holder.Release(ctx))
		time.Sleep(200 * time.Millisecond) // the waiter, told, sends its look at the holders
		p.Hold(proxy.ToClient)
		p.Release(proxy.ToServer) // the look reaches the server: no holder
		time.Sleep(200 * time.Millisecond)
		m := mutex.New(s.Session(t), name)
		require.NoError(t, m.Lock(ctx))
		p.Release(proxy.ToClient) // the waiter moves, behind the mutex

		var moved bool
		locktest.Eventually(t, 10*time.Second, "the waiter moved", func() bool {
			for _, pt := range participants(t, s, name) {
				if pt.Identity == "waiter" && !strings.Contains(pt.Key, recipe.WaitingRoom) {
					moved = true
					if pt.Holds {
						t.Fatalf("the waiter holds, behind a mutex that holds")
					}
				}
			}
			return moved
		})
		waiting(t, got, "waiter")
		require.NoError(t, m.Unlock(ctx))
		servicetest.Succeeds(t, got[0], "waiter")
		require.NoError(t, waiter.Release(ctx))
		empty(t, s, name)
	})
}

func participants(t *testing.T, s *servicetest.Service, name string) []turnstile.Participant {
	t.Helper()
	ps, err := s.Session(t).(interface {
		Participants(context.Context, string) ([]turnstile.Participant, error)
	}).Participants(context.Background(), name)
	require.NoError(t, err)
	return ps
}

// Another program's write to the first waiter's node or key is no
// release: a 1-permit semaphore still admits one waiter per release. (On
// ZooKeeper the waiter behind still waits for the first; on etcd every
// reader takes a key put again for released, and the first waiter, so
// written, can no longer move in.)
func TestWaiterWrittenByAnother(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		sems := open(t, s, name, 1, 3)
		holders(t, sems[0])
		got := waiters(t, s, name, sems[1:])
		switch session := s.Session(t).(type) {
		case *zklock.Session:
			kids, _, err := session.Conn().Children(room(name))
			require.NoError(t, err)
			seq := func(node string) string { return node[len(node)-10:] }
			slices.SortFunc(kids, func(a, b string) int { return strings.Compare(seq(a), seq(b)) })
			_, err = session.Conn().Set(room(name)+"/"+kids[0], []byte("written"), -1)
			require.NoError(t, err)
		case *etcdlock.Session:
			q, err := session.Client().Get(ctx, room(name)+"/", clientv3.WithPrefix(),
				clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
			require.NoError(t, err)
			_, err = session.Client().Put(ctx, string(q.Kvs[0].Key), "written", clientv3.WithIgnoreLease())
			require.NoError(t, err)
		}
		time.Sleep(200 * time.Millisecond) // the waiter behind wakes, and reads the room again
		require.NoError(t, sems[0].Release(ctx))
		admitted := -1
		for i, ch := range got {
			select {
			case err := <-ch:
				if err == nil {
					require.Equal(t, -1, admitted, "waiters %d and %d both admitted on one permit", admitted+1, i+1)
					admitted = i
				}
			case <-time.After(2 * time.Second):
			}
		}
		require.NotEqual(t, -1, admitted, "no waiter admitted")
		require.NoError(t, sems[admitted+1].Release(ctx))
	})
}
