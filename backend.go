package turnstile

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
	// Permit contenders hold a semaphore's permits, as many together as
	// the fewest permits any of them asked for.
	Permit
)

// String returns "exclusive", "shared", "candidate" or "permit": the
// mode of a hold, as a sequencer or a log states it.
func (k Kind) String() string {
	switch k {
	case Exclusive:
		return "exclusive"
	case Shared:
		return "shared"
	case Candidate:
		return "candidate"
	case Permit:
		return "permit"
	}
	return "invalid"
}

// Session is a session with a coordination service, the lifetime of
// every hold made through it: a *zklock.Session or an *etcdlock.Session.
// The recipes that run over either (mutex, rwlock, semaphore, election)
// take it; any other implementation is refused by their calls with an
// error matching ErrNilSession.
type Session interface {
	// Done is closed when the session ends: expired, lost or closed.
	Done() <-chan struct{}
	// Err is nil while the session lives, then why it ended.
	Err() error
	// Close ends the session, and every hold made through it.
	Close() error
}
