// Package election is leader election over either backend: candidates
// queue in the order the server received them, the first one leads, and
// each of the others waits for its predecessor alone, so a change of
// leader wakes only the next candidate.
//
// It runs on a *zklock.Session or an *etcdlock.Session unchanged. On
// ZooKeeper a candidate is a child node named as Curator's LeaderLatch
// names its own, _c_<random>-latch-<sequence>, holding the candidate's
// id, so that an election can be shared with Curator's LeaderLatch (or,
// with WithSelectorNames, its LeaderSelector), kazoo's Election and
// go-zookeeper clients; on etcd a key under the election's prefix holding
// the id, as etcd's own concurrency.Election and etcdctl elect keep it.
// Every candidate in the queue counts, whichever client put it there, and
// Leader and Observe name a foreign leader by the id it stored.
//
// Most programs want Run: campaign, do the leader's work while leading,
// and stop that work the moment leadership is lost.
package election

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
	"github.com/turnstile-go/turnstile/internal/recipe"
)

// Election is one participant in the election called name: a candidate
// when it campaigns, an observer through Leader and Observe. Goroutines
// may share it; their Campaign calls wait on the value, in arrival order,
// so the value has at most one candidate in the server's queue.
//
// Safety versus liveness: leadership lasts as long as the session. A
// leader paused or cut off for longer than the session timeout (ZooKeeper)
// or TTL (etcd) is replaced while it may still believe it leads. Lost
// tells it as soon as it can know; only a check of Token at the resource
// the leader acts on is safe against a leader that cannot know yet.
type Election struct {
	l    *recipe.Lock
	b    recipe.Backend
	name string
	id   []byte
	// label names the candidate's node on ZooKeeper.
	label string
	// config is what the options set of the candidate's Lock.
	config []func(*recipe.Config)
	err    error // found at construction: every call fails with it
}

// Option configures an Election.
type Option func(*Election)

// WithSelectorNames names this candidate's ZooKeeper node as Curator's
// LeaderSelector names its own, _c_<random>-lock-<sequence>, instead of
// as its LeaderLatch does, _c_<random>-latch-<sequence>. Curator sorts
// an election's nodes by the part after its own recipe's lock name, so
// every candidate of an election shared with LeaderSelectors must use
// the LeaderSelector form. It makes no difference on etcd, or among
// turnstile candidates alone.
func WithSelectorNames() Option {
	return func(e *Election) { e.label = recipe.MutexLabel }
}

// WithLockDelay sets a lock-delay on leadership, as mutex.WithLockDelay
// does for a mutex: when a leader's term ends without a resignation (its
// session ended, or someone else deleted its candidate), the next
// candidate leads no sooner than d after that end was seen, so that
// what the former leader sent before it was cut off can drain first. A
// Resign, or the end of Run's work, hands over at once. A margin for
// what cannot check a term, not a guarantee.
func WithLockDelay(d time.Duration) Option {
	return func(e *Election) { e.config = append(e.config, func(c *recipe.Config) { c.Delay = d }) }
}

// New returns the participant with the given id in the election called
// name on s, a *zklock.Session or an *etcdlock.Session. It makes no
// server call: a nil s, an invalid name (see turnstile.ValidateName), an
// invalid id (see turnstile.ValidateID) or an option out of range is
// reported by every method, with an error matching
// turnstile.ErrNilSession, turnstile.ErrInvalidName, turnstile.ErrInvalidID
// or turnstile.ErrInvalidOption.
func New(s turnstile.Session, name, id string, opts ...Option) *Election {
	l := recipe.New(s, name)
	e := &Election{l: l, b: l.Backend(), name: name, id: []byte(id), label: recipe.LatchLabel}
	for _, opt := range opts {
		opt(e)
	}
	recipe.Configure(l, e.config)
	if e.err = e.l.Err(); e.err == nil {
		e.err = turnstile.ValidateID(id)
	}
	return e
}

// Campaign blocks until this participant leads, or until ctx ends. It
// queues behind every candidate already in the election. Before it
// returns nil, the server has shown this candidate first in the queue,
// on a live session. On failure it returns the error, ctx's error if
// ctx ended, and leaves no candidate behind.
func (e *Election) Campaign(ctx context.Context) error {
	if e.err != nil {
		return e.err
	}
	return e.l.Acquire(ctx, turnstile.Candidate, e.label, e.id, false)
}

// Resign gives leadership up, and the next candidate leads. It returns an
// error matching turnstile.ErrNotHeld when this participant does not
// lead, and turnstile.ErrLost when its leadership had been lost. Any other
// error, such as ctx's end, leaves it leading, to Resign again, as
// Mutex.Unlock does; a ctx that has already ended sends nothing.
func (e *Election) Resign(ctx context.Context) error {
	if e.err != nil {
		return e.err
	}
	return e.l.Release(ctx, turnstile.Candidate)
}

// Token returns the term of this participant's leadership: its node's
// creation zxid or its key's create revision, larger for every later
// leader of the election. It returns 0 when it does not lead.
func (e *Election) Token() int64 { return e.l.Token() }

// Sequencer returns the sequencer of this participant's leadership, an
// exclusive hold of the election's name, for a resource to check with a
// turnstile.Fence or at the server; the zero Sequencer when it does not
// lead.
func (e *Election) Sequencer() turnstile.Sequencer { return e.l.Sequencer() }

// Lost returns a channel closed when this participant's leadership ends
// other than by Resign: at once when its session ends, and within about
// two seconds when someone else deletes its node or key (on ZooKeeper, a
// second more for every 64 holds of its session past the first 64). It
// returns nil, a channel that never closes, when it does not lead.
func (e *Election) Lost() <-chan struct{} { return e.l.Lost() }

// Leader returns the id of the current leader, as the server has it: two
// requests, or more if the leader changes meanwhile. A leader of another
// client that stored no id is named by its node or key (lock-0000000002 on
// ZooKeeper, its lease in hex on etcd). With no candidate, it returns an
// error matching turnstile.ErrNoLeader.
func (e *Election) Leader(ctx context.Context) (string, error) {
	if e.err != nil {
		return "", e.err
	}
	for {
		q, err := e.b.Queue(ctx, e.name)
		if err != nil {
			return "", err
		}
		if len(q) == 0 {
			return "", fmt.Errorf("%w: %s", turnstile.ErrNoLeader, e.name)
		}
		id, queued, err := e.b.Value(ctx, q[0])
		if err != nil || queued {
			return idOf(q[0], id), err
		}
	}
}

// Observe returns a channel of the ids of successive leaders, as Leader
// names them, starting with the current one, and "" whenever it sees that
// no one leads. It never repeats an id twice in a row, and never waits
// for a slow reader: a reader that falls behind gets the latest leader,
// not every one in between. Observing costs one watch: on the leader
// alone, or on the name while no one leads.
//
// The channel closes when ctx ends or the session ends; it is closed at
// once if the participant was built with bad input.
func (e *Election) Observe(ctx context.Context) <-chan string {
	out := make(chan string)
	if e.err != nil {
		close(out)
		return out
	}
	l := &latest{changed: make(chan struct{}, 1), stopped: make(chan struct{})}
	go func() {
		defer close(l.stopped)
		e.follow(ctx, l.set)
	}()
	go l.deliver(ctx, out)
	return out
}

// latest is the newest leader seen, handed to the reader when it is ready.
type latest struct {
	mu      sync.Mutex
	id      string
	seen    bool
	changed chan struct{} // signalled after every set
	stopped chan struct{} // closed when nothing more will be set
}

func (l *latest) set(id string) {
	l.mu.Lock()
	l.id, l.seen = id, true
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *latest) get() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.id, l.seen
}

// deliver sends each new leader to out, skipping any the reader was too
// slow for, and closes out when ctx ends or nothing more will come.
func (l *latest) deliver(ctx context.Context, out chan<- string) {
	defer close(out)
	var last string
	sent := false
	for {
		select {
		case <-l.changed:
		case <-l.stopped:
			return
		case <-ctx.Done():
			return
		}
		for {
			id, ok := l.get()
			if !ok || sent && id == last {
				break
			}
			select {
			case out <- id:
				last, sent = id, true
			case <-l.changed:
				continue // a newer leader: offer that instead
			case <-l.stopped:
				return
			case <-ctx.Done():
				return
			}
			break
		}
	}
}

// follow reports the leader, then waits for it to go, or for a candidate
// to come when there is none, until ctx or the session ends.
func (e *Election) follow(ctx context.Context, report func(string)) {
	for pause := minPause; ; {
		err := e.followOnce(ctx, report)
		if ctx.Err() != nil || recipe.Closed(e.b.Done()) {
			return
		}
		if err == nil {
			pause = minPause
			continue
		}
		// The server is unreachable for now: try again.
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return
		}
		pause = min(2*pause, maxPause)
	}
}

func (e *Election) followOnce(ctx context.Context, report func(string)) error {
	q, err := e.b.Queue(ctx, e.name)
	if err != nil {
		return err
	}
	if len(q) == 0 {
		report("")
		return e.b.AwaitJoin(ctx, e.name)
	}
	id, queued, err := e.b.Value(ctx, q[0])
	if err != nil || !queued {
		return err
	}
	report(idOf(q[0], id))
	_, err = e.b.AwaitExit(ctx, q[0])
	return err
}

// idOf returns the id the leader c stored, or, where it stored none (a
// leader of another client: go-zookeeper's zk.Lock, a Curator latch
// without an id, a concurrency.Election campaign on ""), the name of its
// node or key: a leader is never reported as no one.
func idOf(c queue.Contender, e recipe.Entry) string {
	if len(e.Value) == 0 {
		return path.Base(c.Key)
	}
	return string(e.Value)
}

// Pauses between attempts that failed on an unreachable server.
const (
	minPause = 100 * time.Millisecond
	maxPause = 2 * time.Second
)

// resignTimeout bounds Run's resignation once its context has ended.
const resignTimeout = 5 * time.Second

// Run makes the participant id a leader-elected worker of the election
// called name on s: it campaigns, and while it leads calls work with the
// term's token and a context that is cancelled the moment leadership is
// lost. When work returns nil or leadership is lost, Run resigns if it
// still leads and campaigns again, behind the other candidates.
//
// Run returns when ctx ends, with ctx's error, after resigning; when work
// returns an error while leading, with that error, after resigning (so
// to stop for good, return an error from work; to give others a turn,
// return nil); and when the session ends, with an error matching
// turnstile.ErrLost or turnstile.ErrSessionClosed; and when the server
// refuses the session the right to campaign, with an error matching
// turnstile.ErrNotAuthorized, which no retry would change. A panic in
// work resigns before it goes on up the stack. Campaigns that fail while
// the server is unreachable are retried.
func Run(ctx context.Context, s turnstile.Session, name, id string, work func(ctx context.Context, token int64) error, opts ...Option) error {
	e := New(s, name, id, opts...)
	if e.err != nil {
		return e.err
	}
	for pause := minPause; ; {
		err := e.Campaign(ctx)
		switch {
		case ctx.Err() != nil:
			if err == nil {
				e.resign(ctx)
			}
			return ctx.Err()
		case err != nil && (recipe.Closed(s.Done()) || errors.Is(err, turnstile.ErrNotAuthorized)):
			return err
		case err != nil:
			select {
			case <-time.After(pause):
			case <-ctx.Done():
			}
			pause = min(2*pause, maxPause)
			continue
		}
		pause = minPause
		if err := e.lead(ctx, work); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// lead runs one term of work, and resigns when it ends, even by a panic.
// It returns work's error only if work failed while still leading.
func (e *Election) lead(ctx context.Context, work func(context.Context, int64) error) error {
	wctx, cancel := context.WithCancel(ctx)
	lost := e.Lost()
	go func() {
		select {
		case <-lost:
			cancel()
		case <-wctx.Done():
		}
	}()
	defer e.resign(ctx)
	defer cancel()
	err := work(wctx, e.Token())
	if ctx.Err() != nil || recipe.Closed(lost) {
		return nil
	}
	return err
}

// resign gives leadership up, retrying while the server cannot be
// reached: a candidate left in the queue would block the others, and this
// value's next campaign, until the session ends. Once ctx has ended it
// tries for resignTimeout more, then leaves the candidate to the
// session's end.
func (e *Election) resign(ctx context.Context) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(resignTimeout, cancel) })()
	for pause := minPause; ; pause = min(2*pause, maxPause) {
		err := e.Resign(rctx)
		if err == nil || errors.Is(err, turnstile.ErrLost) || errors.Is(err, turnstile.ErrNotHeld) ||
			errors.Is(err, turnstile.ErrNotAuthorized) || recipe.Closed(e.b.Done()) {
			return
		}
		select {
		case <-time.After(pause):
		case <-rctx.Done():
			return
		}
	}
}
