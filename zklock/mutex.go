// Package zklock is turnstile's ZooKeeper backend: a Session, and on it a
// fair, herd-free Mutex whose every hold carries a fencing token.
//
// A lock named /locks/orders is the znode /locks/orders (a container,
// removed by the server once empty); each contender is an ephemeral
// sequential child of it, visible with `zkCli ls /locks/orders`, named as
// Apache Curator names its own (_c_<random>-lock-<sequence>). Every child
// whose name ends in a sequence number is a contender, whichever client
// created it: a name can be shared with Curator, go-zookeeper's zk.Lock
// and kazoo (see the README for the settings each needs). turnstile
// writes only its own nodes, and the lock znode when it creates it.
package zklock

import (
	"context"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/recipe"
)

// Mutex is a mutual exclusion lock shared by every client of a ZooKeeper
// ensemble that uses the same name. Contenders are served in the order the
// server received them; each waits for its predecessor alone, so a release
// wakes only the next contender.
//
// A Mutex may be used by several goroutines: their Lock calls wait on the
// value, in arrival order, and the value has at most one contender in the
// server's queue. Any goroutine may Unlock.
//
// Safety versus liveness: a hold lasts as long as its session. If the
// holder pauses, or is cut off, for longer than the session timeout, the
// server ends the session and grants the lock to the next contender while
// the former holder may still believe it holds. Lost tells the holder as
// soon as it can know, but only a check at the protected resource is
// safe against a holder that cannot know yet (a stopped process): pass
// Token to the resource and have it refuse tokens older than the newest
// it has seen.
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
// queue behind every contender already in it (first come, first served).
// On failure it returns the error, ctx's error if ctx ended, and leaves
// nothing in the queue; a Lock that returns nil holds the lock even if
// ctx ended meanwhile. An ended session fails it with an error matching
// turnstile.ErrLost or turnstile.ErrSessionClosed.
func (m *Mutex) Lock(ctx context.Context) error {
	return m.l.Acquire(ctx, turnstile.Exclusive, recipe.MutexLabel, nil, false)
}

// TryLock acquires the lock only if it is free: it never waits. When
// another contender holds the lock or is queued ahead, it leaves the
// queue and returns an error matching turnstile.ErrLocked.
func (m *Mutex) TryLock(ctx context.Context) error {
	return m.l.Acquire(ctx, turnstile.Exclusive, recipe.MutexLabel, nil, true)
}

// Unlock releases the lock, deleting this hold's node and no other, even
// when retried. It returns an error matching turnstile.ErrNotHeld when
// the Mutex holds nothing, and turnstile.ErrLost when the hold had been
// lost (the lock is then free on this value, though another client may
// hold it). Any other error, such as ctx ending while the server is
// unreachable, leaves the hold in place to Unlock again.
func (m *Mutex) Unlock(ctx context.Context) error {
	return m.l.Release(ctx, turnstile.Exclusive)
}

// Token returns the fencing token of the current hold: the zxid that
// created its node, larger for every later grant of the same name by any
// client. It returns 0 when nothing is held or the hold was lost.
func (m *Mutex) Token() int64 {
	return m.l.Token()
}

// Sequencer returns the current hold's sequencer: name, mode and token,
// for a remote resource to check with a turnstile.Fence, or with
// Session.Check or Guard (in a Multi) at the server. It returns the zero
// Sequencer when nothing is held or the hold was lost.
func (m *Mutex) Sequencer() turnstile.Sequencer {
	return m.l.Sequencer()
}

// Lost returns a channel closed when the current hold ends other than by
// Unlock: its node deleted by someone else, or its session expired or
// presumed expired (no request sent in the last session timeout has been
// answered). It returns nil, a channel that never closes, when nothing
// is held.
func (m *Mutex) Lost() <-chan struct{} {
	return m.l.Lost()
}
