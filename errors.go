package turnstile

import "errors"

// The errors every recipe returns, whichever backend it runs on. They are
// wrapped with the lock name or node for context, so match them with
// errors.Is.
var (
	// ErrLocked is returned by TryLock, TryRLock and TryAcquire when
	// another contender holds the lock (or every permit) or stands ahead
	// in the queue, or when the same value already holds or is acquiring.
	ErrLocked = errors.New("turnstile: locked by another contender")

	// ErrNotHeld is returned by Unlock, RUnlock, Release and Resign when
	// the value holds nothing to release.
	ErrNotHeld = errors.New("turnstile: not held")

	// ErrLost is returned when a hold or a place in the queue ended
	// without being released: the session expired, the lease lapsed, or
	// the contender's node was deleted by someone else.
	ErrLost = errors.New("turnstile: hold lost")

	// ErrNoLeader is returned by Leader when no candidate leads.
	ErrNoLeader = errors.New("turnstile: no leader")

	// ErrStaleToken reports, at a protected resource, an operation whose
	// fencing token is older than one the resource has already admitted.
	ErrStaleToken = errors.New("turnstile: stale fencing token")

	// ErrInvalidName is returned, before any server call, for a lock or
	// election name that ValidateName rejects.
	ErrInvalidName = errors.New("turnstile: invalid name")

	// ErrInvalidID is returned, before any server call, for an
	// election candidate id that ValidateID rejects.
	ErrInvalidID = errors.New("turnstile: invalid candidate id")

	// ErrInvalidSequencer is returned for a Sequencer that does not
	// Validate, or text that ParseSequencer cannot read.
	ErrInvalidSequencer = errors.New("turnstile: invalid sequencer")

	// ErrInvalidOption is returned, before any server call, by a session
	// or recipe built with an option given a value out of its range, such
	// as a negative lock-delay or session timeout.
	ErrInvalidOption = errors.New("turnstile: invalid option")

	// ErrNilSession is returned, before any server call, by a recipe
	// built on a nil session.
	ErrNilSession = errors.New("turnstile: nil session")

	// ErrSessionClosed is returned, before any server call, by a recipe
	// whose session was closed by its owner.
	ErrSessionClosed = errors.New("turnstile: session closed")

	// ErrNotAuthorized is returned when the server refuses a request for
	// want of credentials or of permission on the name: a ZooKeeper ACL
	// without the session's identity, an etcd user without a role on
	// the key prefix, or credentials the server rejects. The server's
	// own error is wrapped too. The credentials never appear in it.
	ErrNotAuthorized = errors.New("turnstile: not authorized")
)
