package recipe

import (
	"context"
	"fmt"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
)

// Backend is what a coordination service provides so that every recipe
// (mutex, read-write lock, election) runs on it unchanged: zklock and
// etcdlock each implement it over their Session, out of their users' sight,
// and Register it. The recipes keep all the queue logic: a Backend only
// stores contenders in server order, lists them, waits for one to go, and
// removes one.
//
// A Backend must order contenders as its server assigns them, so that a
// contender joining later never lands ahead of one already queued, and
// must tie every contender to its session, so that a session that ends
// takes its contenders with it.
type Backend interface {
	// Join adds a contender of the given kind to the queue of name, with value
	// as its payload (a candidate's id), and returns it with the queue as read
	// after the join. label is the recipe's lock name in the form other
	// clients of ZooKeeper read from a node's name ("lock-", "__WRIT__",
	// "__READ__", "latch-"); a backend whose other clients do not tell recipes
	// apart by name may ignore it. Join must be idempotent across lost
	// replies: a retried or interrupted Join never leaves a second contender
	// for one call, and a Join that fails leaves nothing. A backend that can
	// read the queue in the same round trip returns it; otherwise it returns
	// nil and the caller reads it with Queue. For Exclusive and Candidate
	// kinds the queue returned may hold only the first contender, self's
	// predecessor and self; for Shared it holds every contender ahead of self.
	Join(ctx context.Context, name string, kind turnstile.Kind, label string, value []byte) (self queue.Contender, q []queue.Contender, err error)

	// Queue lists the contenders of name in server order, whoever wrote
	// them, leaving out entries that are not contenders.
	Queue(ctx context.Context, name string) ([]queue.Contender, error)

	// AwaitExit blocks until c has left the queue, and reports how it
	// saw it go. It returns an error matching turnstile.ErrLost if the
	// session ends first, and ctx's error if ctx ends first. Released
	// may come from a change that only looks like a marked Leave, so a
	// caller told Released reads the queue again before it believes c
	// gone.
	AwaitExit(ctx context.Context, c queue.Contender) (Exit, error)

	// HowLeft tells how c, which AwaitExit found Gone, left, where the
	// server can still tell (etcd keeps a key's history until it
	// compacts); Gone where it cannot. A contender with a lock-delay asks,
	// so that a release it did not see is not taken for an end.
	HowLeft(ctx context.Context, c queue.Contender) (Exit, error)

	// Check returns nil if self is still queued on the live session, and
	// an error matching turnstile.ErrLost if it is not.
	Check(ctx context.Context, self queue.Contender) error

	// Gone returns those of cs, all the session's own contenders, that
	// have left the queue. It is one request, however many they are, as
	// far as the server allows: it runs about once a second for every
	// session with contenders (Tracker).
	Gone(ctx context.Context, cs []queue.Contender) ([]queue.Contender, error)

	// Leave removes self from the queue, and only self: a stale retry
	// must not remove a later contender. It returns an error matching
	// turnstile.ErrLost if self was already gone, unless retried says that
	// an earlier Leave of self, whose outcome is unknown, may have removed
	// it. With marked, a contender watching self with AwaitExit sees it
	// Released rather than Deleted. A hold found lost is left too, with
	// retried, so that the backend can take back what it used.
	Leave(ctx context.Context, self queue.Contender, retried, marked bool) error

	// AwaitRoom blocks until fits reports room among the contenders of
	// name, whom it lists, and reports whether there is; without wait it
	// looks once. Only while there is no room it watches name's own queue
	// as a whole (not the WaitingRoom nested in it), and that once per
	// change: only a semaphore's first waiter calls it.
	AwaitRoom(ctx context.Context, name string, fits func([]queue.Contender) bool, wait bool) (bool, error)

	// Promote moves self, a Permit contender of name's WaitingRoom, into
	// name's own queue in one write, behind every contender there, with
	// value as payload, and returns it there with its token, and, where
	// the same round trip can tell it, name's queue after the move (nil
	// otherwise). It returns an error matching turnstile.ErrLost if self
	// is no longer queued. A Promote that fails leaves no contender in
	// name's queue.
	Promote(ctx context.Context, self queue.Contender, name string, value []byte) (held queue.Contender, q []queue.Contender, err error)

	// Value reads what c stored when it joined (a candidate's id, a
	// contender's identity), with its token and, where the server keeps
	// it, the time it joined; queued is false if c has left the queue.
	Value(ctx context.Context, c queue.Contender) (e Entry, queued bool, err error)

	// AwaitJoin blocks until the queue of name holds a contender, the
	// session ends (an error matching turnstile.ErrLost or
	// turnstile.ErrSessionClosed) or ctx ends.
	AwaitJoin(ctx context.Context, name string) error

	// Done is closed when the session ends: expired, revoked or closed.
	Done() <-chan struct{}

	// Err returns nil while the session lives, then why it ended.
	Err() error

	// Tracker returns the session's Tracker, which the recipes share.
	Tracker() *Tracker
}

// Entry is what Value reads of a contender.
type Entry struct {
	Value  []byte
	Token  int64
	Since  time.Time // zero where the server keeps no time
	Client string    // the client its name tells, as queue's constants name them; "" if none
}

// Exit is how AwaitExit saw a contender leave the queue.
type Exit int

const (
	// Gone: it had left when AwaitExit first looked; how is unknown.
	Gone Exit = iota + 1
	// Deleted: its node or key was deleted while AwaitExit watched,
	// without the mark of a release: its session ended, someone else
	// removed it, or its client does not mark releases.
	Deleted
	// Released: it left by a marked Leave while AwaitExit watched.
	Released
)

// adapters find the Backend behind a user's session, one per backend
// package, registered as the package is loaded: the recipes reach a
// session's queue operations without the session showing them to users.
var adapters []func(turnstile.Session) (b Backend, ours bool)

// Register makes the Backend of every non-nil session of type S what
// adapt returns for it. A backend package calls it from an init function.
func Register[S turnstile.Session](adapt func(S) Backend) {
	adapters = append(adapters, func(s turnstile.Session) (Backend, bool) {
		typed, ours := s.(S)
		if !ours || isNil(typed) {
			return nil, ours
		}
		return adapt(typed), true
	})
}

// Of returns the Backend behind s, or an error matching
// turnstile.ErrNilSession for a nil session or one that no backend
// package made.
func Of(s turnstile.Session) (Backend, error) {
	for _, adapt := range adapters {
		if b, ours := adapt(s); ours && b != nil {
			return b, nil
		}
	}
	if isNil(s) {
		return nil, fmt.Errorf("%w", turnstile.ErrNilSession)
	}
	return nil, fmt.Errorf("%w: %T is not a *zklock.Session or an *etcdlock.Session", turnstile.ErrNilSession, s)
}
