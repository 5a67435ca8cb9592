package election_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/election"
	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/internal/queue"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
	"github.com/turnstile-go/turnstile/internal/testing/servicetest"
	"github.com/turnstile-go/turnstile/zklock"
)

func TestMain(m *testing.M) { os.Exit(servicetest.Main(m, &endpoints)) }

// campaignInOrder starts the candidates' campaigns in the order given;
// got[i] receives candidate i's Campaign result.
func campaignInOrder(t *testing.T, s *servicetest.Service, name string, ids ...string) ([]*election.Election, []chan error) {
	t.Helper()
	es := make([]*election.Election, len(ids))
	for i, id := range ids {
		es[i] = election.New(s.Session(t), name, id)
	}
	got := s.InOrder(t, name, len(ids), func(i int) error { return es[i].Campaign(context.Background()) })
	return es, got
}

// leads waits for a campaign to succeed.
var leads = servicetest.Succeeds

// Five candidates lead in the order they came, each with a larger term,
// as Leader reports from the server.
func TestFIFO(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		observer := election.New(s.Session(t), name, "observer")
		_, err := observer.Leader(ctx)
		require.ErrorIs(t, err, turnstile.ErrNoLeader)
		ids := []string{"a", "b", "c", "d", "e"}
		es, got := campaignInOrder(t, s, name, ids...)
		var term int64
		for i, e := range es {
			leads(t, got[i], ids[i])
			leader, err := observer.Leader(ctx)
			require.NoError(t, err)
			require.Equal(t, ids[i], leader)
			require.Greater(t, e.Token(), term, "terms increase")
			term = e.Token()
			require.NoError(t, e.Resign(ctx))
			require.ErrorIs(t, e.Resign(ctx), turnstile.ErrNotHeld)
		}
		_, err = observer.Leader(ctx)
		require.ErrorIs(t, err, turnstile.ErrNoLeader)
		require.Zero(t, s.Queued(t, name))
	})
}

// terms records the work of leaders: never two at once, each term larger
// than the one before.
type terms struct {
	mu     sync.Mutex
	inside int
	tokens []int64
	who    []string
	errs   []string
}

func (r *terms) enter(who string, token int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inside++
	if r.inside != 1 {
		r.errs = append(r.errs, fmt.Sprintf("%s leads with %d others working", who, r.inside-1))
	}
	if n := len(r.tokens); n > 0 && token <= r.tokens[n-1] {
		r.errs = append(r.errs, fmt.Sprintf("%s's term %d after term %d", who, token, r.tokens[n-1]))
	}
	r.tokens = append(r.tokens, token)
	r.who = append(r.who, who)
}

func (r *terms) exit() {
	r.mu.Lock()
	r.inside--
	r.mu.Unlock()
}

func (r *terms) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tokens)
}

func (r *terms) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		t.Error(e)
	}
}

// runAll runs n workers through Run until want terms have been worked,
// with fault, if any, once after the second term; every Run returns
// ctx's error and leaves no candidate behind.
func runAll(t *testing.T, s *servicetest.Service, n, want int, fault func()) *terms {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	name := locktest.Name()
	var rec terms
	var faultOnce sync.Once
	var wg sync.WaitGroup
	errs := make(chan error, n)
	// Every session opens before any worker starts, so that the fault
	// meets workers, not sessions being opened.
	sessions := make([]turnstile.Session, n)
	for i := range sessions {
		sessions[i] = s.Session(t)
	}
	for i, sess := range sessions {
		id := fmt.Sprintf("worker-%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- election.Run(ctx, sess, name, id, func(wctx context.Context, token int64) error {
				rec.enter(id, token)
				defer rec.exit()
				c := rec.count()
				if c == 2 && fault != nil {
					faultOnce.Do(func() { go fault() })
				}
				if c >= want {
					cancel()
				}
				// A term long enough that the worker before has queued
				// again by its end, even on a loaded machine.
				select {
				case <-time.After(25 * time.Millisecond):
				case <-wctx.Done():
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if fault != nil && errors.Is(err, turnstile.ErrLost) {
			// A server's fail-over can outlast a session on a loaded
			// machine; the session is then presumed lost, and its Run
			// ends so. That is no overlap: rec.check sees those.
			t.Logf("a worker's session ended in the fault: %v", err)
			continue
		}
		require.ErrorIs(t, err, context.Canceled)
	}
	rec.check(t)
	require.GreaterOrEqual(t, rec.count(), want)
	locktest.Eventually(t, 10*time.Second, "no candidate left", func() bool { return s.Queued(t, name) == 0 })
	return &rec
}

// Five workers under Run: one works at a time, with increasing terms,
// and the work passes around in the order the workers queued.
func TestRun(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		rec := runAll(t, s, 5, 20, nil)
		// Each worker requeues behind the others: once all five have
		// worked in a row, leadership rotates in that order.
		k := 0
		for ; k+5 <= len(rec.who); k++ {
			if distinct(rec.who[k : k+5]) {
				break
			}
		}
		require.Less(t, k+5, len(rec.who), "five workers never worked in a row: %q", rec.who)
		for i := k + 5; i < len(rec.who); i++ {
			require.Equal(t, rec.who[i-5], rec.who[i], "term %d of %q", i, rec.who)
		}
	})
}

func distinct(ids []string) bool {
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	return len(seen) == len(ids)
}

// Killing the servers' leader while workers hand leadership around never
// gives two workers at once.
func TestLeaderKilled(t *testing.T) {
	servicetest.EachCluster(t, 3, func(t *testing.T, s *servicetest.Service) {
		runAll(t, s, 5, 20, s.KillLeader(t))
	})
}

// An observer that is no candidate sees every leader in order, and no
// leader before and after.
func TestObserve(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx, cancel := context.WithCancel(context.Background())
		name := locktest.Name()
		ch := election.New(s.Session(t), name, "observer").Observe(ctx)
		next := func(want string) {
			t.Helper()
			select {
			case id := <-ch:
				require.Equal(t, want, id)
			case <-time.After(10 * time.Second):
				t.Fatalf("no leader change observed, want %q", want)
			}
		}
		next("")
		es, got := campaignInOrder(t, s, name, "a", "b", "c")
		for i, id := range []string{"a", "b", "c"} {
			leads(t, got[i], id)
			next(id)
			require.NoError(t, es[i].Resign(ctx))
		}
		next("")
		cancel()
		for range ch { // closes
		}
	})
}

// A leader of another client that stored no id (go-zookeeper's zk.Lock,
// a Curator latch left without one, a concurrency.Election campaign on
// "") is a leader all the same: Leader and Observe report it by its node's
// or key's name, never as no one.
func TestForeignLeaderWithoutID(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx, name := t.Context(), locktest.Name()
		ch := election.New(s.Session(t), name, "observer").Observe(ctx)
		require.Equal(t, "", <-ch)
		first := election.New(s.Session(t), name, "a")
		require.NoError(t, first.Campaign(ctx))
		require.Equal(t, "a", <-ch)
		var key string
		switch session := s.Session(t).(type) {
		case *zklock.Session:
			made, err := session.Conn().Create(name+"/lock-", nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
			require.NoError(t, err)
			key = made
		case *etcdlock.Session:
			key = fmt.Sprintf("%s/%x", name, session.Lease())
			_, err := session.Client().Put(ctx, key, "", clientv3.WithLease(session.Lease()))
			require.NoError(t, err)
		}
		require.NoError(t, first.Resign(ctx))
		select {
		case id := <-ch:
			require.Equal(t, path.Base(key), id)
		case <-time.After(10 * time.Second):
			t.Fatal("the foreign leader not observed")
		}
		leader, err := election.New(s.Session(t), name, "observer").Leader(ctx)
		require.NoError(t, err)
		require.Equal(t, path.Base(key), leader)
	})
}

// A reader that does not read holds nothing up; when it reads, it gets
// the latest leader, never the same one twice in a row.
func TestObserveSlowReader(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		name := locktest.Name()
		ch := election.New(s.Session(t), name, "observer").Observe(ctx)
		es, got := campaignInOrder(t, s, name, "a", "b", "c")
		for i := range 2 {
			leads(t, got[i], "")
			require.NoError(t, es[i].Resign(ctx))
		}
		leads(t, got[2], "c")
		var seen []string
		for id := range ch {
			if len(seen) > 0 && seen[len(seen)-1] == id {
				t.Fatalf("%q twice in a row: %q", id, seen)
			}
			seen = append(seen, id)
			if id == "c" {
				break
			}
		}
		require.Subset(t, []string{"", "a", "b", "c"}, seen)
		t.Logf("a slow reader saw %q", seen)
		require.NoError(t, es[2].Resign(ctx))
	})
}

// A leader cut off from its server has its work cancelled within its
// session's lifetime and a second; the next candidate then works, with a
// larger term, and never alongside it.
func TestPartition(t *testing.T) {
	const lifetime = 2 * time.Second
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		name := locktest.Name()
		var rec terms
		started := make(chan int64, 2)
		stopped := make(chan time.Time, 2)
		work := func(id string) func(context.Context, int64) error {
			return func(wctx context.Context, token int64) error {
				rec.enter(id, token)
				started <- token
				<-wctx.Done()
				rec.exit()
				stopped <- time.Now()
				return nil
			}
		}
		cut, p := s.Through(t, lifetime)
		results := make(chan error, 2)
		go func() { results <- election.Run(ctx, cut, name, "cut", work("cut")) }()
		first := <-started
		next := s.Session(t)
		go func() { results <- election.Run(ctx, next, name, "next", work("next")) }()
		locktest.Eventually(t, 10*time.Second, "second candidate queued", func() bool { return s.Queued(t, name) == 2 })

		p.Cut()
		at := time.Now()
		select {
		case when := <-stopped:
			require.Less(t, when.Sub(at), lifetime+time.Second, "work cancelled late")
		case <-time.After(lifetime + 5*time.Second):
			t.Fatal("the cut leader's work still runs")
		}
		select {
		case second := <-started:
			require.Greater(t, second, first)
		case <-time.After(10 * time.Second):
			t.Fatal("no new leader")
		}
		require.ErrorIs(t, <-results, turnstile.ErrLost, "the cut worker's Run ends with its session")
		cancel()
		require.ErrorIs(t, <-results, context.Canceled)
		rec.check(t)
	})
}

// A campaign cancelled while waiting leaves nothing behind.
func TestCancelCampaign(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		leader := election.New(s.Session(t), name, "leader")
		require.NoError(t, leader.Campaign(ctx))
		cctx, cancel := context.WithCancel(ctx)
		got := make(chan error, 1)
		go func() { got <- election.New(s.Session(t), name, "waiter").Campaign(cctx) }()
		locktest.Eventually(t, 10*time.Second, "waiter queued", func() bool { return s.Queued(t, name) == 2 })
		cancel()
		require.ErrorIs(t, <-got, context.Canceled)
		locktest.Eventually(t, 10*time.Second, "waiter gone", func() bool { return s.Queued(t, name) == 1 })
		require.NoError(t, leader.Resign(ctx))
	})
}

// Work that fails ends Run with its error, and work that panics resigns
// on its way up: neither leaves a candidate behind.
func TestRunEnds(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		failed := errors.New("work failed")
		err := election.Run(ctx, s.Session(t), name, "a", func(context.Context, int64) error { return failed })
		require.ErrorIs(t, err, failed)
		require.Zero(t, s.Queued(t, name))

		require.PanicsWithValue(t, "boom", func() {
			_ = election.Run(ctx, s.Session(t), name, "b", func(context.Context, int64) error { panic("boom") })
		})
		require.Zero(t, s.Queued(t, name))
	})
}

// Bad input fails every call with a matchable error, and the server is
// untouched.
func TestBadInput(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		sess := s.Session(t)
		var nilSession turnstile.Session
		cases := []struct {
			s        turnstile.Session
			name, id string
			want     error
		}{
			{nilSession, "/elections/a", "a", turnstile.ErrNilSession},
			{sess, "elections", "a", turnstile.ErrInvalidName},
			{sess, "/elections/", "a", turnstile.ErrInvalidName},
			{sess, "/elections/a", "", turnstile.ErrInvalidID},
			{sess, "/elections/a", "a\nb", turnstile.ErrInvalidID},
		}
		before := s.Writes(t)
		for _, c := range cases {
			e := election.New(c.s, c.name, c.id)
			require.ErrorIs(t, e.Campaign(ctx), c.want)
			require.ErrorIs(t, e.Resign(ctx), c.want)
			_, err := e.Leader(ctx)
			require.ErrorIs(t, err, c.want)
			_, open := <-e.Observe(ctx)
			require.False(t, open, "Observe's channel is closed at once")
			require.Zero(t, e.Token())
			require.Nil(t, e.Lost())
			require.ErrorIs(t, election.Run(ctx, c.s, c.name, c.id, func(context.Context, int64) error { return nil }), c.want)
		}
		require.Equal(t, before, s.Writes(t), "the server changed")
	})
}

// A leader's sequencer is an exclusive hold of the election's name with
// its term as token; the server calls it current while it leads and over
// once it resigns.
func TestSequencer(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		name := locktest.Name()
		e := election.New(s.Session(t), name, "a")
		require.Zero(t, e.Sequencer())
		require.NoError(t, e.Campaign(ctx))
		seq := e.Sequencer()
		require.Equal(t, turnstile.Sequencer{Name: name, Mode: turnstile.Exclusive, Token: e.Token(), Key: seq.Key}, seq)
		check := s.Session(t).(interface {
			Check(context.Context, turnstile.Sequencer) error
		})
		require.NoError(t, check.Check(ctx, seq))
		require.NoError(t, e.Resign(ctx))
		require.Zero(t, e.Sequencer())
		require.ErrorIs(t, check.Check(ctx, seq), turnstile.ErrStaleToken)
	})
}

// A session the server will never let campaign makes Run return the
// refusal at once instead of retrying it for ever.
func TestRunRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := servicetest.ZooKeeper(t).Session(t).(*zklock.Session)
	top := locktest.Top()
	_, err := s.Conn().Create(top, nil, 0, zk.WorldACL(zk.PermRead|zk.PermDelete))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Conn().Delete(top, -1) })

	worked := false
	err = election.Run(ctx, s, top+"/leader", "a", func(context.Context, int64) error {
		worked = true
		return nil
	})
	require.ErrorIs(t, err, turnstile.ErrNotAuthorized)
	require.NoError(t, ctx.Err(), "Run retried the refusal until its context ended")
	require.False(t, worked)
}

// With a lock-delay, a leader whose candidate someone else deleted is
// followed only after the delay; a resignation hands over at once.
func TestLockDelay(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		const delay = time.Second
		name := locktest.Name()
		leader := election.New(s.Session(t), name, "first", election.WithLockDelay(delay))
		require.NoError(t, leader.Campaign(ctx))
		next := election.New(s.Session(t), name, "second", election.WithLockDelay(delay))
		got := s.Waiting(t, name, 2, next.Campaign)
		seq := leader.Sequencer()
		require.NoError(t, locktest.Backend(t, s.Session(t)).Leave(ctx, queue.Contender{Key: seq.Key, Seq: seq.Token}, false, false))
		end := time.Now()
		// The waiter may see the end before the delete's reply reaches
		// the test.
		require.GreaterOrEqual(t, servicetest.GrantedAt(t, got, "second").Sub(end), delay-10*time.Millisecond, "led before the lock-delay")

		third := election.New(s.Session(t), name, "third", election.WithLockDelay(delay))
		got = s.Waiting(t, name, 2, third.Campaign)
		resigned := time.Now()
		require.NoError(t, next.Resign(ctx))
		require.Less(t, servicetest.GrantedAt(t, got, "third").Sub(resigned), delay/2, "delayed after a resignation")
		require.NoError(t, third.Resign(ctx))

		bad := election.New(s.Session(t), name, "x", election.WithLockDelay(-time.Second))
		require.ErrorIs(t, bad.Campaign(ctx), turnstile.ErrInvalidOption)
	})
}
