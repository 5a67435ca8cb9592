// Package interop_test shows turnstile sharing names with the lock
// clients already running on the same servers: go-zookeeper's zk.Lock,
// Apache Curator and kazoo on ZooKeeper, etcd's concurrency package and
// etcdctl on etcd. Each test mixes turnstile contenders with another
// client's on one name, against the real servers and the real clients,
// and counts who is inside a shared resource that every holder enters
// after it acquires and leaves before it releases.
package interop_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/election"
	"github.com/turnstile-go/turnstile/internal/recipe"
	"github.com/turnstile-go/turnstile/internal/testing/etcdtest"
	"github.com/turnstile-go/turnstile/internal/testing/foreign"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
	"github.com/turnstile-go/turnstile/internal/testing/servicetest"
	"github.com/turnstile-go/turnstile/mutex"
	"github.com/turnstile-go/turnstile/rwlock"
)

func TestMain(m *testing.M) { os.Exit(servicetest.Main(m, nil)) }

// cycles is how many times each contender acquires and releases.
const cycles = 20

// hold is how long a holder stays inside: long enough that a second
// holder let in by mistake would be inside at the same time.
const hold = 2 * time.Millisecond

// A contender is one client's way to hold a name: turnstile's, or another
// client's. acquire blocks until it holds, or leads.
type contender struct {
	who     string
	kind    turnstile.Kind // Shared for a reader, else Exclusive
	acquire func(ctx context.Context) error
	release func(ctx context.Context) error
}

// resource is what every holder enters once it holds and leaves before it
// lets go. It counts overlaps (a holder entering while another is inside
// that it may not share with) and records the server's queue head at
// every exclusive entry, which must grow: grants in the server's order.
type resource struct {
	head func(tb testing.TB) int64

	mu       sync.Mutex
	inside   map[string]turnstile.Kind
	overlaps []string
	heads    []int64
	entries  int
}

func newResource(head func(tb testing.TB) int64) *resource {
	return &resource{head: head, inside: map[string]turnstile.Kind{}}
}

func (r *resource) enter(tb testing.TB, c contender) {
	r.mu.Lock()
	for who, k := range r.inside {
		if k != turnstile.Shared || c.kind != turnstile.Shared {
			r.overlaps = append(r.overlaps, fmt.Sprintf("%s entered while %s was inside", c.who, who))
		}
	}
	r.inside[c.who] = c.kind
	r.entries++
	r.mu.Unlock()
	if c.kind != turnstile.Shared && r.head != nil {
		h := r.head(tb)
		r.mu.Lock()
		r.heads = append(r.heads, h)
		r.mu.Unlock()
	}
}

func (r *resource) leave(c contender) {
	r.mu.Lock()
	delete(r.inside, c.who)
	r.mu.Unlock()
}

// check fails tb on any overlap, or on a grant out of the server's order.
func (r *resource) check(tb testing.TB, wantEntries int) {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.overlaps) > 0 {
		tb.Errorf("%d overlaps, e.g. %s", len(r.overlaps), r.overlaps[0])
	}
	if r.entries != wantEntries {
		tb.Errorf("%d entries, want %d", r.entries, wantEntries)
	}
	for i := 1; i < len(r.heads); i++ {
		if r.heads[i] <= r.heads[i-1] {
			tb.Errorf("grant %d went to the contender at %d, after one at %d: not in the server's order", i, r.heads[i], r.heads[i-1])
			break
		}
	}
}

// queueHead reads the first contender of name, whoever wrote it, as the
// server orders them: at an exclusive holder's entry, that holder.
func queueHead(s turnstile.Session, name string) func(tb testing.TB) int64 {
	return func(tb testing.TB) int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, err := recipe.Of(s)
		if err != nil {
			tb.Fatal(err)
		}
		q, err := b.Queue(ctx, name)
		if err != nil || len(q) == 0 {
			tb.Errorf("queue head of %s: %v (%d queued)", name, err, len(q))
			return 0
		}
		return q[0].Seq
	}
}

// loop has c acquire, enter, leave and release n times, or until stop
// closes if n is 0.
func loop(ctx context.Context, tb testing.TB, r *resource, c contender, n int, stop <-chan struct{}) error {
	for i := 0; n == 0 || i < n; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		if err := c.acquire(ctx); err != nil {
			return fmt.Errorf("%s acquire: %w", c.who, err)
		}
		r.enter(tb, c)
		time.Sleep(hold)
		r.leave(c)
		if err := c.release(ctx); err != nil {
			return fmt.Errorf("%s release: %w", c.who, err)
		}
	}
	return nil
}

// mix runs every contender's loop at once on one name, and checks that no
// two were ever inside together and that grants followed the server's
// order.
func mix(t *testing.T, r *resource, cs []contender) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(cs))
	for _, c := range cs {
		wg.Go(func() {
			if err := loop(ctx, t, r, c, cycles, nil); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r.check(t, len(cs)*cycles)
}

// migrate is a rolling migration from another client to turnstile on one
// name: the old copies hold and queue, turnstile's copies join them, and
// the old copies leave one by one while turnstile's go on. No two are
// ever inside together, and grants follow the server's order.
func migrate(t *testing.T, r *resource, old, ours []contender) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	errs := make(chan error, len(old)+len(ours))
	start := func(cs []contender) (stops []chan struct{}, dones []chan struct{}) {
		for _, c := range cs {
			stop, done := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				if err := loop(ctx, t, r, c, 0, stop); err != nil {
					errs <- err
					cancel()
				}
			}()
			stops, dones = append(stops, stop), append(dones, done)
		}
		return stops, dones
	}
	// waitEntries waits until the resource has seen n more entries.
	waitEntries := func(n int) {
		r.mu.Lock()
		want := r.entries + n
		r.mu.Unlock()
		locktest.Eventually(t, time.Minute, fmt.Sprintf("%d more entries", n), func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.entries >= want || ctx.Err() != nil
		})
	}
	oldStops, oldDones := start(old)
	waitEntries(2 * len(old))
	ourStops, ourDones := start(ours)
	waitEntries(2 * len(ours))
	for i := range old {
		close(oldStops[i])
		<-oldDones[i]
		waitEntries(len(ours))
	}
	waitEntries(2 * len(ours))
	for i := range ours {
		close(ourStops[i])
		<-ourDones[i]
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r.mu.Lock()
	entries := r.entries
	r.mu.Unlock()
	r.check(t, entries)
}

// turnstileMutexes returns n turnstile Mutexes on name, each on its own
// session.
func turnstileMutexes(t *testing.T, s *servicetest.Service, name string, n int) []contender {
	var cs []contender
	for i := range n {
		m := mutex.New(s.Session(t), name)
		cs = append(cs, contender{who: fmt.Sprintf("turnstile#%d", i), kind: turnstile.Exclusive, acquire: m.Lock, release: m.Unlock})
	}
	return cs
}

// turnstileRW returns n turnstile RWMutexes on name, each on its own
// session, as readers or writers.
func turnstileRW(t *testing.T, s *servicetest.Service, name string, n int, kind turnstile.Kind) []contender {
	var cs []contender
	for i := range n {
		rw := rwlock.New(s.Session(t), name)
		c := contender{who: fmt.Sprintf("turnstile-%s#%d", kind, i), kind: kind, acquire: rw.Lock, release: rw.Unlock}
		if kind == turnstile.Shared {
			c.acquire, c.release = rw.RLock, rw.RUnlock
		}
		cs = append(cs, c)
	}
	return cs
}

// zkLocks returns n go-zookeeper zk.Lock contenders on name, each on its
// own connection.
func zkLocks(t *testing.T, s *servicetest.Service, name string, n int) []contender {
	var cs []contender
	for i := range n {
		conn, _, err := zk.Connect(s.Addrs(), servicetest.Lifetime, zk.WithLogger(quiet{}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Close)
		l := zk.NewLock(conn, name, zk.WorldACL(zk.PermAll))
		cs = append(cs, contender{who: fmt.Sprintf("zk.Lock#%d", i), kind: turnstile.Exclusive,
			acquire: func(context.Context) error { return l.Lock() },
			release: func(context.Context) error { return l.Unlock() }})
	}
	return cs
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// etcdSession opens an etcd concurrency session, closed when t ends.
func etcdSession(t *testing.T, s *servicetest.Service) *concurrency.Session {
	cli := etcdtest.NewClient(t, s.Addrs()...)
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(int(servicetest.Lifetime/time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

// etcdMutexes returns n concurrency.Mutex contenders on name, each on its
// own session: they keep their keys under name/, as turnstile does.
func etcdMutexes(t *testing.T, s *servicetest.Service, name string, n int) []contender {
	var cs []contender
	for i := range n {
		m := concurrency.NewMutex(etcdSession(t, s), name)
		cs = append(cs, contender{who: fmt.Sprintf("concurrency.Mutex#%d", i), kind: turnstile.Exclusive, acquire: m.Lock, release: m.Unlock})
	}
	return cs
}

// A candidate of any client in an election: campaign blocks until it
// leads, and id is what it stored for others to name it by.
type candidate struct {
	contender
	id string
}

// elect runs every candidate's terms at once on one election, and checks
// that no two leaders ever worked at once and that, during every term,
// each observer names the leader of that term, and turnstile's Observe
// (given as observed) reports it.
func elect(t *testing.T, cs []candidate, observed <-chan string, observers map[string]func(context.Context) (string, error)) {
	t.Helper()
	r := newResource(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var misnamed []string
	var latest string
	go func() {
		for id := range observed {
			mu.Lock()
			latest = id
			mu.Unlock()
		}
	}()
	// reported waits until Observe has reported id: it may lag the
	// server by a notification and a read.
	reported := func(id string) bool {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			mu.Lock()
			got := latest
			mu.Unlock()
			if got == id {
				return true
			}
		}
		return false
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(cs))
	for _, c := range cs {
		wg.Go(func() {
			for range cycles {
				if err := c.acquire(ctx); err != nil {
					errs <- fmt.Errorf("%s campaign: %w", c.who, err)
					cancel()
					return
				}
				r.enter(t, c.contender)
				if !reported(c.id) {
					mu.Lock()
					misnamed = append(misnamed, fmt.Sprintf("Observe did not report %s", c.id))
					mu.Unlock()
				}
				for who, leader := range observers {
					id, err := leader(ctx)
					if err != nil || id != c.id {
						mu.Lock()
						misnamed = append(misnamed, fmt.Sprintf("%s named %q (%v) while %s led", who, id, err, c.id))
						mu.Unlock()
					}
				}
				r.leave(c.contender)
				if err := c.release(ctx); err != nil {
					errs <- fmt.Errorf("%s resign: %w", c.who, err)
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r.check(t, len(cs)*cycles)
	if len(misnamed) > 0 {
		t.Errorf("%d leaders misnamed, e.g. %s", len(misnamed), misnamed[0])
	}
}

// turnstileCandidates returns n turnstile candidates of the election name,
// each on its own session, with the given options.
func turnstileCandidates(t *testing.T, s *servicetest.Service, name string, n int, opts ...election.Option) []candidate {
	var cs []candidate
	for i := range n {
		id := fmt.Sprintf("turnstile-%d", i)
		e := election.New(s.Session(t), name, id, opts...)
		cs = append(cs, candidate{contender{who: id, kind: turnstile.Exclusive, acquire: e.Campaign, release: e.Resign}, id})
	}
	return cs
}

// turnstileLeader is turnstile's view of the election's leader.
func turnstileLeader(t *testing.T, s *servicetest.Service, name string) func(context.Context) (string, error) {
	return election.New(s.Session(t), name, "observer").Leader
}

// turnstileObserve is turnstile's report of the election's successive
// leaders, until t ends.
func turnstileObserve(t *testing.T, s *servicetest.Service, name string) <-chan string {
	return election.New(s.Session(t), name, "observer").Observe(t.Context())
}

// etcdctlLocks returns n contenders that each hold name through a run of
// `etcdctl lock`, one process per hold, as an operator's script would.
func etcdctlLocks(t *testing.T, s *servicetest.Service, name string, n int) []contender {
	var cs []contender
	for i := range n {
		var held *etcdtest.Held
		cs = append(cs, contender{who: fmt.Sprintf("etcdctl-lock#%d", i), kind: turnstile.Exclusive,
			acquire: func(ctx context.Context) (err error) {
				held, err = etcdtest.EtcdctlLock(ctx, t, s.Addrs(), name)
				return err
			},
			release: func(ctx context.Context) error { return held.Release(ctx) }})
	}
	return cs
}

// driven returns contenders of another client run in their own
// processes, one per id, as start makes them.
func driven(kind turnstile.Kind, start func(id string) *foreign.Client, ids ...string) []contender {
	var cs []contender
	for _, id := range ids {
		c := start(id)
		cs = append(cs, contender{who: id, kind: kind,
			acquire: func(ctx context.Context) error { _, err := c.Acquire(ctx); return err },
			release: c.Release})
	}
	return cs
}

func ids(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// curator starts Curator recipe clients on name, one per id.
func curator(t *testing.T, s *servicetest.Service, recipe, name string) func(id string) *foreign.Client {
	return func(id string) *foreign.Client { return foreign.Curator(t, s.Addrs(), recipe, name, id) }
}

// kazoo starts kazoo recipe clients on name with the given
// extra_lock_patterns, one per id.
func kazoo(t *testing.T, s *servicetest.Service, recipe, name string, patterns ...string) func(id string) *foreign.Client {
	return func(id string) *foreign.Client { return foreign.Kazoo(t, s.Addrs(), recipe, name, id, patterns...) }
}

// drivenCandidates returns candidates of another client, one per id.
func drivenCandidates(start func(id string) *foreign.Client, ids ...string) []candidate {
	var cs []candidate
	for _, c := range driven(turnstile.Exclusive, start, ids...) {
		cs = append(cs, candidate{c, c.who})
	}
	return cs
}

// others makes the other client's contenders on a name: 3 of them, each
// with a session or a process of its own.
type others func(t *testing.T, s *servicetest.Service, name string) []contender

// Every client that shares a mutex's name with turnstile's Mutex: 3
// turnstile Mutexes and 3 of the other client's on one name, 20 holds
// each.
func TestMutex(t *testing.T) {
	for _, tc := range []struct {
		client, service string
		others          others
	}{
		{"zk.Lock", "zookeeper", func(t *testing.T, s *servicetest.Service, name string) []contender { return zkLocks(t, s, name, 3) }},
		{"Curator", "zookeeper", func(t *testing.T, s *servicetest.Service, name string) []contender {
			return driven(turnstile.Exclusive, curator(t, s, "mutex", name), ids("curator", 3)...)
		}},
		{"kazoo", "zookeeper", func(t *testing.T, s *servicetest.Service, name string) []contender {
			return driven(turnstile.Exclusive, kazoo(t, s, "lock", name, foreign.LockPattern), ids("kazoo", 3)...)
		}},
		{"concurrency.Mutex", "etcd", func(t *testing.T, s *servicetest.Service, name string) []contender { return etcdMutexes(t, s, name, 3) }},
		{"etcdctl lock", "etcd", func(t *testing.T, s *servicetest.Service, name string) []contender {
			return etcdctlLocks(t, s, name, 3)
		}},
	} {
		t.Run(tc.client, func(t *testing.T) {
			servicetest.On(t, tc.service, func(t *testing.T, s *servicetest.Service) {
				name := locktest.Name()
				r := newResource(queueHead(s.Session(t), name))
				mix(t, r, append(turnstileMutexes(t, s, name, 3), tc.others(t, s, name)...))
			})
		})
	}
}

// Every client that shares a read-write lock's name with turnstile's
// RWMutex: 2 turnstile writers and a turnstile reader beside the other
// client's contenders; writers hold alone, readers together. (kazoo
// 2.8.0's ReadLock can deadlock on its own, and is left out.)
func TestReadWrite(t *testing.T) {
	for _, tc := range []struct {
		client string
		others others
	}{
		{"Curator", func(t *testing.T, s *servicetest.Service, name string) []contender {
			return append(driven(turnstile.Exclusive, curator(t, s, "write", name), ids("curator-writer", 1)...),
				driven(turnstile.Shared, curator(t, s, "read", name), ids("curator-reader", 2)...)...)
		}},
		{"kazoo WriteLock", func(t *testing.T, s *servicetest.Service, name string) []contender {
			return driven(turnstile.Exclusive, kazoo(t, s, "write", name, foreign.WritePattern, foreign.ReadPattern), ids("kazoo-writer", 3)...)
		}},
	} {
		t.Run(tc.client, func(t *testing.T) {
			servicetest.On(t, "zookeeper", func(t *testing.T, s *servicetest.Service) {
				name := locktest.Name()
				r := newResource(queueHead(s.Session(t), name))
				cs := append(turnstileRW(t, s, name, 2, turnstile.Exclusive), turnstileRW(t, s, name, 1, turnstile.Shared)...)
				mix(t, r, append(cs, tc.others(t, s, name)...))
			})
		})
	}
}

// Every client that shares an election with turnstile's: 3 turnstile
// candidates and 3 of the other client's, 20 terms each. Never two
// leaders at once, and during every term turnstile's Leader and Observe
// and the other client's own view name that term's leader.
func TestElection(t *testing.T) {
	for _, tc := range []struct {
		client, service string
		opts            []election.Option
		candidates      func(t *testing.T, s *servicetest.Service, name string) []candidate
		leader          func(t *testing.T, s *servicetest.Service, name string) func(context.Context) (string, error)
	}{
		{"Curator LeaderLatch", "zookeeper", nil,
			func(t *testing.T, s *servicetest.Service, name string) []candidate {
				return drivenCandidates(curator(t, s, "latch", name), ids("curator", 3)...)
			},
			func(t *testing.T, s *servicetest.Service, name string) func(context.Context) (string, error) {
				return curator(t, s, "latch", name)("observer").Leader
			}},
		{"Curator LeaderSelector", "zookeeper", []election.Option{election.WithSelectorNames()},
			func(t *testing.T, s *servicetest.Service, name string) []candidate {
				return drivenCandidates(curator(t, s, "selector", name), ids("curator", 3)...)
			},
			func(t *testing.T, s *servicetest.Service, name string) func(context.Context) (string, error) {
				return curator(t, s, "selector", name)("observer").Leader
			}},
		{"kazoo", "zookeeper", nil,
			func(t *testing.T, s *servicetest.Service, name string) []candidate {
				return drivenCandidates(kazoo(t, s, "election", name, foreign.LatchPattern), ids("kazoo", 3)...)
			},
			func(t *testing.T, s *servicetest.Service, name string) func(context.Context) (string, error) {
				return kazoo(t, s, "election", name, foreign.LatchPattern)("observer").Leader
			}},
		{"concurrency.Election", "etcd", nil, etcdCandidates, etcdLeader},
		{"etcdctl elect", "etcd", nil, etcdctlCandidates,
			func(t *testing.T, s *servicetest.Service, name string) func(context.Context) (string, error) {
				return func(ctx context.Context) (string, error) { return etcdtest.EtcdctlLeader(ctx, t, s.Addrs(), name) }
			}},
	} {
		t.Run(tc.client, func(t *testing.T) {
			servicetest.On(t, tc.service, func(t *testing.T, s *servicetest.Service) {
				name := locktest.Name()
				cs := append(turnstileCandidates(t, s, name, 3, tc.opts...), tc.candidates(t, s, name)...)
				elect(t, cs, turnstileObserve(t, s, name), map[string]func(context.Context) (string, error){
					"turnstile":                turnstileLeader(t, s, name),
					tc.client + " as observer": tc.leader(t, s, name),
				})
			})
		})
	}
}

// A rolling migration to turnstile from the clients a name was locked
// with: go-zookeeper's zk.Lock and Curator's InterProcessMutex on
// ZooKeeper, etcd's concurrency.Mutex on etcd.
func TestMigration(t *testing.T) {
	for _, tc := range []struct {
		service string
		old     others
	}{
		{"zookeeper", func(t *testing.T, s *servicetest.Service, name string) []contender {
			return append(zkLocks(t, s, name, 2), driven(turnstile.Exclusive, curator(t, s, "mutex", name), ids("curator", 2)...)...)
		}},
		{"etcd", func(t *testing.T, s *servicetest.Service, name string) []contender { return etcdMutexes(t, s, name, 3) }},
	} {
		servicetest.On(t, tc.service, func(t *testing.T, s *servicetest.Service) {
			name := locktest.Name()
			migrate(t, newResource(queueHead(s.Session(t), name)), tc.old(t, s, name), turnstileMutexes(t, s, name, 3))
		})
	}
}

// etcdCandidates returns 3 candidates of etcd's concurrency.Election on
// the election name, each on its own session.
func etcdCandidates(t *testing.T, s *servicetest.Service, name string) []candidate {
	var cs []candidate
	for _, id := range ids("concurrency", 3) {
		e := concurrency.NewElection(etcdSession(t, s), name)
		cs = append(cs, candidate{contender{who: id, kind: turnstile.Exclusive,
			acquire: func(ctx context.Context) error { return e.Campaign(ctx, id) }, release: e.Resign}, id})
	}
	return cs
}

// etcdLeader is concurrency.Election's view of the election's leader.
func etcdLeader(t *testing.T, s *servicetest.Service, name string) func(context.Context) (string, error) {
	e := concurrency.NewElection(etcdSession(t, s), name)
	return func(ctx context.Context) (string, error) {
		resp, err := e.Leader(ctx)
		if err != nil {
			return "", err
		}
		return string(resp.Kvs[0].Value), nil
	}
}

// etcdctlCandidates returns 3 candidates that each lead through a run of
// `etcdctl elect`, one process per term.
func etcdctlCandidates(t *testing.T, s *servicetest.Service, name string) []candidate {
	var cs []candidate
	for _, id := range ids("etcdctl", 3) {
		var held *etcdtest.Held
		cs = append(cs, candidate{contender{who: id, kind: turnstile.Exclusive,
			acquire: func(ctx context.Context) (err error) {
				held, err = etcdtest.EtcdctlElect(ctx, t, s.Addrs(), name, id)
				return err
			},
			release: func(ctx context.Context) error { return held.Release(ctx) }}, id})
	}
	return cs
}
