// Package recipe is the acquisition loop every recipe shares, written
// once over Backend: join the queue, decide, wait for the one
// contender in the way, read again, and confirm before believing in a
// hold. Mutexes, read-write locks and elections are thin layers on it.
package recipe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
	"github.com/turnstile-go/turnstile/internal/session"
)

// The labels of the recipes' contenders: the lock names Curator gives the
// same recipes, which a ZooKeeper backend writes into its nodes' names so
// that Curator, go-zookeeper's zk.Lock and kazoo recognise them.
const (
	MutexLabel = "lock-"    // a mutex, and a LeaderSelector's candidate
	WriteLabel = "__WRIT__" // the write side of a read-write lock
	ReadLabel  = "__READ__" // the read side of a read-write lock
	LatchLabel = "latch-"   // a LeaderLatch's candidate
)

// Lock is one recipe value's hold on a name: at most one contender in the
// server's queue, shared by the value's goroutines through a local FIFO.
type Lock struct {
	b    Backend
	name string

	set *settings // shared by every Lock left at the defaults

	gate gate

	mu   sync.Mutex
	held *Hold
}

// New returns a Lock on name over s. A nil s, one no backend package
// made, or an invalid name makes every call fail with an error matching
// turnstile.ErrNilSession or turnstile.ErrInvalidName, before any server
// call.
func New(s turnstile.Session, name string) *Lock {
	b, err := Of(s)
	l := &Lock{b: b, name: name, set: defaults()}
	if err != nil {
		l.fail(fmt.Errorf("%w: lock %q", err, name))
	} else {
		l.fail(turnstile.ValidateName(name))
	}
	return l
}

// Config is what a recipe's options set.
type Config struct {
	// Delay is the lock-delay: how long a contender waits, once a
	// contender ahead of it that may have held exclusively has left
	// without releasing, before it believes itself admitted. Its own
	// releases are then marked, so that contenders behind it tell them
	// from a session's end.
	Delay time.Duration
	// Identity is what a contender stores in its node or key, for
	// operators and other clients to read: by default the host name and
	// process id.
	Identity string
}

// settings is a Config as a Lock keeps it, with the error every call of
// a Lock made wrong fails with.
type settings struct {
	err      error
	delay    time.Duration
	identity []byte
}

// fail makes every call fail with err, if not nil and the first.
func (l *Lock) fail(err error) {
	if err != nil && l.set.err == nil {
		set := *l.set
		set.err = err
		l.set = &set
	}
}

// defaults are the settings of a Lock without options: no lock-delay,
// and an identity that names this process as an operator looks for it.
var defaults = sync.OnceValue(func() *settings {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return &settings{identity: []byte(fmt.Sprintf("%s:%d", host, os.Getpid()))}
})

// Configure applies a recipe's options to l. An option out of range
// makes every call fail with an error matching turnstile.ErrInvalidOption.
func Configure[O ~func(*Config)](l *Lock, opts []O) {
	if len(opts) == 0 {
		return
	}
	var c Config
	for _, opt := range opts {
		opt(&c)
	}
	l.set = &settings{err: l.set.err, delay: c.Delay, identity: l.set.identity}
	if c.Delay < 0 {
		l.fail(fmt.Errorf("%w: lock-delay %v for %s, want 0 or more", turnstile.ErrInvalidOption, c.Delay, l.name))
	}
	if c.Identity != "" {
		if err := turnstile.ValidateID(c.Identity); err != nil {
			l.fail(fmt.Errorf("%w: identity for %s: %w", turnstile.ErrInvalidOption, l.name, err))
		}
		l.set.identity = []byte(c.Identity)
	}
}

// Backend returns the backend the Lock runs on, nil if it has none.
func (l *Lock) Backend() Backend { return l.b }

// Err returns the error every call fails with, found at construction:
// a nil backend or an invalid name.
func (l *Lock) Err() error { return l.set.err }

// isNil sees through an interface holding a nil pointer, which is what a
// nil *zklock.Session passed as a Session is.
func isNil(b turnstile.Session) bool {
	if b == nil {
		return true
	}
	v := reflect.ValueOf(b)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// Acquire joins the queue as a contender of kind, named with label, with
// value as payload (the Lock's identity if nil), and blocks until
// admitted. With try set it never
// waits: if it is not admitted at once it leaves the queue and returns an
// error matching turnstile.ErrLocked. On any error nothing of this call is
// left in the queue.
func (l *Lock) Acquire(ctx context.Context, kind turnstile.Kind, label string, value []byte, try bool) error {
	return l.enter(ctx, try, func() (*Hold, error) { return l.acquire(ctx, kind, label, value, try) })
}

// enter runs acquire for a goroutine whose turn on the value has come,
// and keeps the hold it returns.
func (l *Lock) enter(ctx context.Context, try bool, acquire func() (*Hold, error)) error {
	if err := l.set.err; err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err // before anything reaches the server
	}
	if try {
		if !l.gate.tryEnter() {
			return fmt.Errorf("%w: %s (held through this value)", turnstile.ErrLocked, l.name)
		}
	} else if err := l.gate.enter(ctx); err != nil {
		return err
	}
	h, err := acquire()
	if err != nil {
		l.gate.leave()
		return err
	}
	l.mu.Lock()
	l.held = h
	l.mu.Unlock()
	return nil
}

func (l *Lock) acquire(ctx context.Context, kind turnstile.Kind, label string, value []byte, try bool) (*Hold, error) {
	if value == nil {
		value = l.set.identity
	}
	self, q, err := l.b.Join(ctx, l.name, kind, label, value)
	if err != nil {
		return nil, err
	}
	if q == nil {
		q, err = l.b.Queue(ctx, l.name)
	}
	var h *Hold
	var owed time.Time
	if err == nil {
		h, err = l.wait(ctx, self, q, try, &owed)
	}
	if err != nil {
		// A contender that leaves before the lock-delay it was serving
		// is over leaves unmarked, so that the one behind it serves the
		// rest of it.
		l.abandon(self, time.Now().After(owed))
		return nil, err
	}
	return l.track(h), nil
}

// track has the session's Tracker watch over a new hold.
func (l *Lock) track(h *Hold) *Hold {
	l.b.Tracker().add(l.b, h)
	return h
}

// wait runs the queue rules until self is admitted and confirmed. owed is
// set to when a lock-delay it serves ends.
func (l *Lock) wait(ctx context.Context, self queue.Contender, q []queue.Contender, try bool, owed *time.Time) (*Hold, error) {
	for {
		d, err := queue.Decide(q, self.Key)
		if err != nil {
			return nil, err
		}
		if !d.Admitted {
			if try {
				return nil, fmt.Errorf("%w: %s", turnstile.ErrLocked, l.name)
			}
			exit, err := l.b.AwaitExit(ctx, d.Wait)
			if err == nil && exit != Released && l.set.delay > 0 {
				// Owed from the moment the end is seen: a contender that
				// leaves while it asks how the one ahead left must leave
				// unmarked, for the one behind to serve the delay.
				was := *owed
				*owed = time.Now().Add(l.set.delay)
				if exit == Gone {
					if exit, err = l.b.HowLeft(ctx, d.Wait); exit == Released {
						*owed = was
					}
				}
			}
			if err != nil {
				return nil, err
			}
			delayed := false
			if l.set.delay > 0 && exit != Released {
				// The one ahead may have held, or been serving a delay,
				// and did not release: its holder's requests may still
				// be on their way. (Even a reader's: it may have served
				// a writer's delay.)
				*owed = time.Now().Add(l.set.delay)
				if err := pause(ctx, l.set.delay); err != nil {
					return nil, err
				}
				delayed = true
			}
			if !d.Last || exit == Released {
				if q, err = l.b.Queue(ctx, l.name); err != nil {
					return nil, err
				}
				continue
			}
			// Admitted by the exit alone. After a wait, make sure self is
			// still there. If the one ahead was gone when AwaitExit first
			// looked, self is admitted on the read that showed it queued a
			// moment before, as a contender admitted by a read is: that
			// saves a request on most hand-offs between two contenders,
			// whose read at joining still sees the holder.
			if exit == Deleted || delayed {
				if err := l.b.Check(ctx, self); err != nil {
					return nil, err
				}
			}
		}
		return &Hold{Self: self}, nil
	}
}

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// abandon removes a contender whose acquisition failed, before Lock
// returns if the server answers at once, so that a failed Lock never
// leaves a contender blocking others. With clean, a lock-delay's mark
// tells the one behind that it need not wait.
func (l *Lock) abandon(self queue.Contender, clean bool) {
	session.Cleanup(l.b.Done(), func(ctx context.Context) bool {
		err := l.b.Leave(ctx, self, true, l.set.delay > 0 && clean)
		return err == nil || errors.Is(err, turnstile.ErrLost) || errors.Is(err, turnstile.ErrSessionClosed)
	})
}

// Release gives up a hold of the given kind. It returns an error
// matching turnstile.ErrNotHeld when no hold of that kind is held, and
// turnstile.ErrLost when the hold had already been lost; in the latter
// case, and on success, the value is free for its next acquisition. Any
// other error (the server unreachable) leaves the hold in place for
// another Release.
func (l *Lock) Release(ctx context.Context, kind turnstile.Kind) error {
	if err := l.set.err; err != nil {
		return err
	}
	l.mu.Lock()
	h := l.held
	if h != nil && h.Self.Kind != kind {
		l.mu.Unlock()
		return fmt.Errorf("%w: %s is held %s, not %s", turnstile.ErrNotHeld, l.name, h.Self.Kind, kind)
	}
	l.held = nil // claimed, so that a concurrent Release reports ErrNotHeld
	l.mu.Unlock()
	if h == nil {
		return fmt.Errorf("%w: %s", turnstile.ErrNotHeld, l.name)
	}
	t := l.b.Tracker()
	var err error
	if l.gone(h) {
		err = fmt.Errorf("%w: %s", turnstile.ErrLost, h.Self.Key)
		// Its node or key is gone, or goes with the session: the Leave
		// changes nothing there, but lets the backend take back what the
		// hold used (an etcd session's key, for its next join).
		l.b.Leave(ctx, h.Self, true, false)
	} else {
		t.releasing(h)
		err = l.b.Leave(ctx, h.Self, h.leaving, l.set.delay > 0)
		if err != nil && !errors.Is(err, turnstile.ErrLost) && !errors.Is(err, turnstile.ErrSessionClosed) {
			// The hold stays for another Release. Its delete may yet
			// land, so from now on the contender's absence is no loss.
			h.leaving = true
			l.mu.Lock()
			l.held = h
			l.mu.Unlock()
			return err
		}
	}
	t.remove(h, err != nil) // a hold found lost is told so, if it was not yet
	l.gate.leave()
	return err
}

// current returns the hold, or nil. A lost hold is still returned
// until released, so that callers can tell loss from release.
func (l *Lock) current() *Hold {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

// Token returns the current hold's fencing token, or 0 when nothing is
// held or the hold was lost.
func (l *Lock) Token() int64 {
	h := l.current()
	if h == nil || l.gone(h) {
		return 0
	}
	return h.Self.Token
}

// Sequencer returns the current hold's sequencer, or the zero Sequencer
// when nothing is held or the hold was lost. Leadership is an exclusive
// hold of its name, a semaphore's permit a shared one.
func (l *Lock) Sequencer() turnstile.Sequencer {
	h := l.current()
	if h == nil || l.gone(h) {
		return turnstile.Sequencer{}
	}
	mode := h.Self.Kind
	switch mode {
	case turnstile.Candidate:
		mode = turnstile.Exclusive
	case turnstile.Permit:
		mode = turnstile.Shared // holders share the resource, as readers do
	}
	return turnstile.Sequencer{Name: l.name, Mode: mode, Token: h.Self.Token, Key: h.Self.Key}
}

// Mode returns the current hold's kind, or 0 when nothing is held or the
// hold was lost.
func (l *Lock) Mode() turnstile.Kind {
	h := l.current()
	if h == nil || l.gone(h) {
		return 0
	}
	return h.Self.Kind
}

// Holds reports whether the value holds, or held until it was lost and
// not yet released, a hold of kind.
func (l *Lock) Holds(kind turnstile.Kind) bool {
	h := l.current()
	return h != nil && h.Self.Kind == kind
}

// gone reports whether h is lost, whether or not its loss channel has
// closed yet: a session that has ended holds nothing.
func (l *Lock) gone(h *Hold) bool {
	return l.b.Tracker().ended(h) || l.b.Err() != nil
}

// Lost returns the current hold's loss channel, or nil when nothing is
// held.
func (l *Lock) Lost() <-chan struct{} {
	if h := l.current(); h != nil {
		return l.b.Tracker().Lost(h)
	}
	return nil
}

// Closed reports whether c is closed, without waiting.
func Closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
