package turnstile

import "context"

// Kind says how a contender shares a name with the others in its queue.
type Kind uint8

// The kinds of contender. The queue rules differ only by kind, so that a
// mutex, the write side of a read-write lock and an election candidate
// behave alike.
const (
	// Exclusive contenders hold alone, when first in the queue: a mutex,
	// or the write side of a read-write lock.
	Exclusive Kind = iota + 1
	// Shared contenders hold together, when no Exclusive contender is
	// ahead of them: the read side of a read-write lock.
	Shared
	// Candidate contenders run for leadership; the first one leads.
	Candidate
)

// String returns "exclusive", "shared" or "candidate": the mode of a
// hold, as a sequencer or a log states it.
func (k Kind) String() string {
	switch k {
	case Exclusive:
		return "exclusive"
	case Shared:
		return "shared"
	case Candidate:
		return "candidate"
	}
	return "invalid"
}

// Contender is one entry of a name's queue, as the server keeps it.
type Contender struct {
	// Key is where the contender lives on the server: the znode path on
	// ZooKeeper, the key on etcd.
	Key string
	// Kind is the contender's kind, read back from its Key.
	Kind Kind
	// Seq is the server's order of arrival within the name: the znode's
	// sequence number, or the key's create revision.
	Seq int64
	// Token is the contender's fencing token (the znode's czxid, the
	// key's create revision) where the server has told it: always for
	// the contender Join returns.
	Token int64
}

// Backend is what a coordination service provides so that every recipe
// (mutex, read-write lock, election) runs on it unchanged; zklock.Session
// and etcdlock.Session implement it, and it is the extension point for
// another service. The recipes keep all the queue logic: a Backend only
// stores contenders in server order, lists them, waits for one to go, and
// removes one.
//
// A Backend must order contenders as its server assigns them, so that a
// contender joining later never lands ahead of one already queued, and
// must tie every contender to its session, so that a session that ends
// takes its contenders with it.
type Backend interface {
	// Join adds a contender of the given kind to the queue of name, with
	// value as its payload (a candidate's id), and returns it with the
	// queue as read after the join. label is the recipe's lock name in
	// the form other clients of ZooKeeper read from a node's name
	// ("lock-", "__WRIT__", "__READ__", "latch-"); a backend whose other
	// clients do not tell recipes apart by name may ignore it. Join must be idempotent across lost
	// replies: a retried or interrupted Join never leaves a second
	// contender for one call, and a Join that fails leaves nothing. A
	// backend that can read the queue in the same round trip returns it;
	// otherwise it returns nil and the caller reads it with Queue. For
	// Exclusive and Candidate kinds the queue returned may hold only the
	// first contender, self's predecessor and self; for Shared it holds
	// every contender ahead of self.
	Join(ctx context.Context, name string, kind Kind, label string, value []byte) (self Contender, queue []Contender, err error)

	// Queue lists the contenders of name in server order, whoever wrote
	// them, leaving out entries that are not contenders.
	Queue(ctx context.Context, name string) ([]Contender, error)

	// AwaitExit blocks until c, the contender self waits for, has left
	// the queue. It returns an error matching ErrLost if self's session
	// ends first, or (where the backend can tell) self leaves the queue,
	// and ctx's error if ctx ends first.
	AwaitExit(ctx context.Context, self, c Contender) error

	// Confirm is called when self is admitted, and returns a channel
	// closed when self leaves the queue other than by Leave: deleted by
	// someone else, or its session ended. checked reports that a queue
	// read just showed self admitted; otherwise (self was admitted by its
	// predecessor's exit alone) Confirm must check, before returning, that
	// self is still queued on the live session. After a read, it may
	// arm the loss signal after returning, to keep that work off the
	// hand-off's critical path.
	Confirm(ctx context.Context, self Contender, checked bool) (lost <-chan struct{}, err error)

	// Leave removes self from the queue, and only self: a stale retry
	// must not remove a later contender. It returns an error matching
	// ErrLost if self was already gone.
	Leave(ctx context.Context, self Contender) error

	// Value reads the payload c joined with; queued is false if c has
	// left the queue.
	Value(ctx context.Context, c Contender) (value []byte, queued bool, err error)

	// AwaitJoin blocks until the queue of name holds a contender, the
	// session ends (an error matching ErrLost or ErrSessionClosed) or
	// ctx ends.
	AwaitJoin(ctx context.Context, name string) error

	// Done is closed when the session ends: expired, revoked or closed.
	Done() <-chan struct{}
}
