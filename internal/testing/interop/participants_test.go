package interop_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/election"
	"github.com/turnstile-go/turnstile/internal/queue"
	"github.com/turnstile-go/turnstile/internal/testing/etcdtest"
	"github.com/turnstile-go/turnstile/internal/testing/foreign"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
	"github.com/turnstile-go/turnstile/internal/testing/servicetest"
	"github.com/turnstile-go/turnstile/mutex"
	"github.com/turnstile-go/turnstile/rwlock"
	"github.com/turnstile-go/turnstile/semaphore"
)

// lister is what both backends' sessions offer.
type lister interface {
	Participants(ctx context.Context, name string) ([]turnstile.Participant, error)
}

func participants(t *testing.T, s *servicetest.Service, name string) []turnstile.Participant {
	t.Helper()
	ps, err := s.Session(t).(lister).Participants(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// want is what a listing should show of one participant.
type want struct {
	kind     turnstile.Kind
	holds    bool
	identity string
	client   string
}

func check(t *testing.T, s *servicetest.Service, got []turnstile.Participant, wants []want, tokens ...int64) {
	t.Helper()
	var lines []string
	for _, p := range got {
		lines = append(lines, fmt.Sprintf("%s %v %q %q %d %v", p.Kind, p.Holds, p.Identity, p.Client, p.Token, p.Since.Format(time.RFC3339Nano)))
	}
	if len(got) != len(wants) {
		t.Fatalf("%d participants, want %d:\n%s", len(got), len(wants), strings.Join(lines, "\n"))
	}
	for i, w := range wants {
		p := got[i]
		if p.Kind != w.kind || p.Holds != w.holds || p.Identity != w.identity || p.Client != w.client {
			t.Errorf("participant %d: %s; want %s %v %q %q", i, lines[i], w.kind, w.holds, w.identity, w.client)
		}
		if i > 0 && p.Token <= got[i-1].Token {
			t.Errorf("participant %d: token %d not after %d: not in server order", i, p.Token, got[i-1].Token)
		}
		if i < len(tokens) && tokens[i] != 0 && p.Token != tokens[i] {
			t.Errorf("participant %d: token %d, the holder's is %d", i, p.Token, tokens[i])
		}
		// ZooKeeper keeps a node's creation time; etcd keeps none.
		if recent := time.Since(p.Since) < time.Minute; recent != (s.Name == "zookeeper") {
			t.Errorf("participant %d: since %v", i, p.Since)
		}
	}
}

// A listing of every recipe's queue: holders first, in server order,
// with kind, identity, token and client.
func TestParticipants(t *testing.T) {
	servicetest.Each(t, func(t *testing.T, s *servicetest.Service) {
		ctx := context.Background()
		excl, shared, cand, permit := turnstile.Exclusive, turnstile.Shared, turnstile.Candidate, turnstile.Permit
		ours := queue.Turnstile

		t.Run("mutex", func(t *testing.T) {
			name := locktest.Name()
			m0 := mutex.New(s.Session(t), name, mutex.WithIdentity("one"))
			if err := m0.Lock(ctx); err != nil {
				t.Fatal(err)
			}
			m1 := mutex.New(s.Session(t), name, mutex.WithIdentity("two"))
			s.Waiting(t, name, 2, m1.Lock)
			m2 := mutex.New(s.Session(t), name)
			s.Waiting(t, name, 3, m2.Lock)
			host := participants(t, s, name)[2].Identity
			if !strings.Contains(host, ":") {
				t.Errorf("default identity %q, want host:pid", host)
			}
			check(t, s, participants(t, s, name), []want{{excl, true, "one", ours}, {excl, false, "two", ours}, {excl, false, host, ours}}, m0.Token())
		})
		t.Run("rwlock", func(t *testing.T) {
			name := locktest.Name()
			r0 := rwlock.New(s.Session(t), name, rwlock.WithIdentity("reader"))
			if err := r0.RLock(ctx); err != nil {
				t.Fatal(err)
			}
			w := rwlock.New(s.Session(t), name, rwlock.WithIdentity("writer"))
			s.Waiting(t, name, 2, w.Lock)
			r1 := rwlock.New(s.Session(t), name, rwlock.WithIdentity("late-reader"))
			s.Waiting(t, name, 3, r1.RLock)
			check(t, s, participants(t, s, name), []want{{shared, true, "reader", ours}, {excl, false, "writer", ours}, {shared, false, "late-reader", ours}}, r0.Token())
		})
		t.Run("semaphore", func(t *testing.T) {
			name := locktest.Name()
			var sems []*semaphore.Semaphore
			for i := range 3 {
				sems = append(sems, semaphore.New(s.Session(t), name, 2, semaphore.WithIdentity(fmt.Sprintf("sem-%d", i))))
			}
			for _, sem := range sems[:2] {
				if err := sem.Acquire(ctx); err != nil {
					t.Fatal(err)
				}
			}
			s.InOrder(t, name+"/_waiting", 1, func(int) error { return sems[2].Acquire(ctx) })
			got := participants(t, s, name)
			// The waiter joined its queue before the second holder
			// moved into theirs: its token is not after theirs.
			check(t, s, got[:2], []want{{permit, true, "sem-0", ours}, {permit, true, "sem-1", ours}}, sems[0].Token(), sems[1].Token())
			check(t, s, got[2:], []want{{permit, false, "sem-2", ours}})
		})
		t.Run("election", func(t *testing.T) {
			name := locktest.Name()
			leader := election.New(s.Session(t), name, "leader-1")
			if err := leader.Campaign(ctx); err != nil {
				t.Fatal(err)
			}
			next := election.New(s.Session(t), name, "candidate-2")
			s.Waiting(t, name, 2, next.Campaign)
			check(t, s, participants(t, s, name), []want{{cand, true, "leader-1", ours}, {cand, false, "candidate-2", ours}}, leader.Token())
		})
		t.Run("bad name", func(t *testing.T) {
			session := s.Session(t)
			before := s.Writes(t)
			for _, name := range []string{"", "locks", "/a/", "/zookeeper/x"} {
				if _, err := session.(lister).Participants(ctx, name); !errors.Is(err, turnstile.ErrInvalidName) {
					t.Errorf("Participants(%q): %v, want ErrInvalidName", name, err)
				}
			}
			if s.Writes(t) != before {
				t.Error("the server changed")
			}
		})
	})
}

// Other clients' contenders are listed among turnstile's, in server
// order, named by client, with the identities they stored; and the other
// clients' own listings show turnstile's identities.
func TestParticipantsForeign(t *testing.T) {
	ctx := context.Background()
	excl, ours := turnstile.Exclusive, queue.Turnstile
	servicetest.On(t, "zookeeper", func(t *testing.T, s *servicetest.Service) {
		name := locktest.Name()
		m0 := mutex.New(s.Session(t), name, mutex.WithIdentity("ts-0"))
		if err := m0.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		s.Waiting(t, name, 2, zkLocks(t, s, name, 1)[0].acquire)
		cur := foreign.Curator(t, s.Addrs(), "mutex", name, "curator-0")
		s.Waiting(t, name, 3, func(ctx context.Context) error { _, err := cur.Acquire(ctx); return err })
		kz := foreign.Kazoo(t, s.Addrs(), "lock", name, "kazoo-0", foreign.LockPattern)
		s.Waiting(t, name, 4, func(ctx context.Context) error { _, err := kz.Acquire(ctx); return err })
		m1 := mutex.New(s.Session(t), name, mutex.WithIdentity("ts-1"))
		s.Waiting(t, name, 5, m1.Lock)
		check(t, s, participants(t, s, name), []want{
			{excl, true, "ts-0", ours}, {excl, false, "", queue.ZkLock}, {excl, false, "curator-0", queue.Curator},
			{excl, false, "kazoo-0", queue.Kazoo}, {excl, false, "ts-1", ours}}, m0.Token())
		// The clients waiting above answer nothing until they hold: ask
		// others.
		listers := map[string]*foreign.Client{
			"Curator": foreign.Curator(t, s.Addrs(), "mutex", name, "curator-lister"),
			"kazoo":   foreign.Kazoo(t, s.Addrs(), "lock", name, "kazoo-lister", foreign.LockPattern),
		}
		for who, c := range listers {
			ids, err := c.Participants(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(ids, "ts-0") || !slices.Contains(ids, "ts-1") {
				t.Errorf("%s lists %q, without turnstile's ts-0 and ts-1", who, ids)
			}
		}
	})
	servicetest.On(t, "etcd", func(t *testing.T, s *servicetest.Service) {
		name := locktest.Name()
		m0 := mutex.New(s.Session(t), name, mutex.WithIdentity("ts-0"))
		if err := m0.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		s.Waiting(t, name, 2, etcdMutexes(t, s, name, 1)[0].acquire)
		m1 := mutex.New(s.Session(t), name, mutex.WithIdentity("ts-1"))
		s.Waiting(t, name, 3, m1.Lock)
		check(t, s, participants(t, s, name), []want{
			{excl, true, "ts-0", ours}, {excl, false, "", queue.EtcdConcurrency}, {excl, false, "ts-1", ours}}, m0.Token())
		out, err := exec.Command(etcdtest.Etcdctl(t), "--endpoints="+strings.Join(s.Addrs(), ","), "get", "--prefix", name+"/").CombinedOutput()
		if err != nil {
			t.Fatalf("etcdctl get: %v: %s", err, out)
		}
		if !strings.Contains(string(out), "ts-0") || !strings.Contains(string(out), "ts-1") {
			t.Errorf("etcdctl get --prefix shows\n%s\nwithout turnstile's ts-0 and ts-1", out)
		}
	})
}
