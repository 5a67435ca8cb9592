// Package etcdlock is turnstile's etcd backend: a Session, and on it a
// fair, herd-free Mutex whose every hold carries a fencing token.
//
// A lock named /locks/orders is the keys under /locks/orders/, one per
// contender, attached to the session's lease and ordered by create
// revision: `etcdctl get --prefix /locks/orders/` shows the queue.
package etcdlock

import (
	"context"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/recipe"
)

// Mutex is a mutual exclusion lock shared by every client of an etcd
// cluster that uses the same name. Contenders are served in the order of
// their keys' create revisions; each waits for its predecessor alone, so
// a release wakes only the next contender.
//
// A Mutex may be used by several goroutines: their Lock calls wait on the
// value, in arrival order, and the value has at most one contender in the
// server's queue. Any goroutine may Unlock. Two Mutex values on one
// Session are two contenders: they exclude each other.
//
// Safety versus liveness: a hold lasts as long as its session's lease.
// If the holder pauses, or is cut off, for longer than the TTL, the lease
// expires and the lock passes to the next contender while the former
// holder may still believe it holds. Lost tells the holder as soon as it
// can know, but only a check at the protected resource is safe against a
// holder that cannot know yet (a stopped process): pass Token to the
// resource and have it refuse tokens older than the newest it has seen.
type Mutex struct {
	l *recipe.Lock
}

// NewMutex returns the Mutex named name on s. It makes no server call: a
// nil s or an invalid name (see turnstile.ValidateName) is reported by
// every method, with an error matching turnstile.ErrNilSession or
// turnstile.ErrInvalidName.
func NewMutex(s *Session, name string) *Mutex {
	return &Mutex{recipe.New(s, name)}
}

// Lock blocks until the lock is held, or until ctx ends. It joins the
// queue behind every contender already in it (first come, first served)
// in one round trip, which also tells an uncontended Lock that it holds.
// On failure it returns the error, ctx's error if ctx ended, and leaves
// nothing in the queue. If the session's lease is lost while it waits,
// it returns an error matching turnstile.ErrLost at once.
func (m *Mutex) Lock(ctx context.Context) error {
	return m.l.Acquire(ctx, turnstile.Exclusive, recipe.MutexLabel, nil, false)
}

// TryLock acquires the lock only if it is free: it never waits. When
// another contender holds the lock or is queued ahead, it leaves the
// queue and returns an error matching turnstile.ErrLocked.
func (m *Mutex) TryLock(ctx context.Context) error {
	return m.l.Acquire(ctx, turnstile.Exclusive, recipe.MutexLabel, nil, true)
}

// Unlock releases the lock in one round trip, deleting this hold's key
// only while it is the one created for this hold, so that a retried
// Unlock cannot release a later hold. It returns an error matching
// turnstile.ErrNotHeld when the Mutex holds nothing, and turnstile.ErrLost
// when the hold had been lost (the lock is then free on this value,
// though another client may hold it). Any other error leaves the hold in
// place to Unlock again.
func (m *Mutex) Unlock(ctx context.Context) error {
	return m.l.Release(ctx, turnstile.Exclusive)
}

// Token returns the fencing token of the current hold: its key's create
// revision, larger for every later grant of the same name by any client.
// It returns 0 when nothing is held or the hold was lost.
func (m *Mutex) Token() int64 {
	return m.l.Token()
}

// Sequencer returns the current hold's sequencer: name, mode and token,
// for a remote resource to check with a turnstile.Fence, or with
// Session.Check or Guard (in a Txn) at the server. It returns the zero
// Sequencer when nothing is held or the hold was lost.
func (m *Mutex) Sequencer() turnstile.Sequencer {
	return m.l.Sequencer()
}

// Lost returns a channel closed when the current hold ends other than by
// Unlock: its key deleted by someone else, or its lease expired, revoked
// or not renewed for a TTL. It returns nil, a channel that never closes,
// when nothing is held.
func (m *Mutex) Lost() <-chan struct{} {
	return m.l.Lost()
}
