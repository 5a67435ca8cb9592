// Package semaphore is a fair, herd-free counting semaphore over either
// backend: at most a given number of holders at a time, served strictly
// in the order the server received them, each with a fencing token.
//
// It runs on a *zklock.Session or an *etcdlock.Session unchanged. A
// semaphore named /jobs/db keeps two queues: its holders are contenders
// of /jobs/db itself, and its waiters contenders of /jobs/db/_waiting, a
// name nested in it that the semaphore reserves. On ZooKeeper both are
// ephemeral sequential nodes named _c_<random>-sem<permits>-<sequence>;
// on etcd, keys sem<permits>-<random> attached to the session's lease.
//
// # How a release reaches the next waiter
//
// Waiters are served first come, first served, and a holder may release
// before or after any other, so no waiter can know in advance which
// holder's release admits it. Each waiter but the first watches its
// predecessor in the waiting queue alone. The first waiter, and only it,
// watches the holders' queue as a whole, while it is full: ZooKeeper's
// watch on a node's children, or on etcd one watch over the name's keys
// that leaves the waiting queue out. When any holder leaves, by release
// or by losing its session, the first waiter moves into the holders'
// queue, in one write that also takes it out of the waiting queue; that
// write wakes the waiter behind it, which becomes the first. A release
// therefore sends two notifications, to the waiter it admits and to the
// next first waiter, however many wait and whatever the permits, and
// holders watch nothing. (A waiter that watches only the contender N
// places ahead of it misses admissions when holders release out of
// order; one that watches every holder is woken, with all the others, by
// every release.)
//
// A move lands behind every holder, so holders' tokens, their contenders'
// numbers on the server, strictly increase in the order of grants.
//
// Every contender states the permits it asked for in its name. If
// contenders of one name disagree, the fewest any holder or the first
// waiter asked for bounds the holders: a waiter is admitted only while
// there are fewer holders than that. Any other contender among the
// holders, such as a mutex's on the same name, holds alone. Permits are
// never exceeded, but a larger number takes effect only once every
// holder that asked for fewer has gone.
package semaphore

import (
	"context"
	"errors"
	"fmt"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
	"github.com/turnstile-go/turnstile/internal/recipe"
)

// ErrInvalidPermits is matched by the error every method of a Semaphore
// returns when New was given fewer than 1 or more than MaxPermits
// permits.
var ErrInvalidPermits = errors.New("semaphore: invalid number of permits")

// MaxPermits is the largest number of permits a Semaphore may have.
const MaxPermits = queue.MaxPermits

// Semaphore is a counting semaphore shared by every client of a
// ZooKeeper ensemble or etcd cluster that uses the same name and the
// same number of permits: at most that many hold at once.
//
// A Semaphore value holds at most one permit, and has at most one
// contender in the server's queue: acquisitions by goroutines sharing a
// value wait on the value, in arrival order. To hold two permits in one
// process, use two values. Any goroutine may release.
//
// Every hold carries a fencing token (Token), strictly increasing across
// grants. Holders hold together, so a resource fences them as it fences
// readers (Sequencer's mode is turnstile.Shared): it refuses the late
// writes of a holder once a newer exclusive holder has written, not
// those of other permit holders. Lost and the loss of a hold behave as
// for a mutex.Mutex.
type Semaphore struct {
	l       *recipe.Lock
	permits int
	err     error // found at construction: every call fails with it
}

// New returns the semaphore named name on s, a *zklock.Session or an
// *etcdlock.Session, allowing permits holders at once. It makes no server
// call: a nil s, an invalid name (see turnstile.ValidateName), permits
// out of range or an option out of range is reported by every method,
// with an error matching turnstile.ErrNilSession,
// turnstile.ErrInvalidName, ErrInvalidPermits or
// turnstile.ErrInvalidOption.
func New(s turnstile.Session, name string, permits int, opts ...Option) *Semaphore {
	sem := &Semaphore{l: recipe.New(s, name), permits: permits}
	recipe.Configure(sem.l, opts)
	if sem.err = sem.l.Err(); sem.err == nil && (permits < 1 || permits > MaxPermits) {
		sem.err = fmt.Errorf("%w: %d for %s, want 1 to %d", ErrInvalidPermits, permits, name, MaxPermits)
	}
	return sem
}

// An Option configures a Semaphore.
type Option func(*recipe.Config)

// WithIdentity sets what this Semaphore's contenders store, as
// mutex.WithIdentity does for a mutex.
func WithIdentity(id string) Option {
	return func(c *recipe.Config) { c.Identity = id }
}

// Acquire blocks until the value holds a permit, or until ctx ends. On
// failure it returns the error, ctx's error if ctx ended, and leaves
// nothing in either queue; an Acquire that returns nil holds even if ctx
// ended meanwhile.
func (sem *Semaphore) Acquire(ctx context.Context) error {
	if sem.err != nil {
		return sem.err
	}
	return sem.l.AcquirePermit(ctx, sem.permits, false)
}

// TryAcquire acquires a permit only if one is free and no one waits for
// one: it never waits. Otherwise it leaves the queue and returns an
// error matching turnstile.ErrLocked.
func (sem *Semaphore) TryAcquire(ctx context.Context) error {
	if sem.err != nil {
		return sem.err
	}
	return sem.l.AcquirePermit(ctx, sem.permits, true)
}

// Release gives the permit back. It returns an error matching
// turnstile.ErrNotHeld when the value holds none, and turnstile.ErrLost
// when the hold had been lost; in both cases, and on success, the value
// is free for its next Acquire. Any other error, such as ctx's end,
// leaves the hold in place for another Release, as Mutex.Unlock does; a
// ctx that has already ended sends nothing.
func (sem *Semaphore) Release(ctx context.Context) error {
	if sem.err != nil {
		return sem.err
	}
	return sem.l.Release(ctx, turnstile.Permit)
}

// Token returns the current hold's fencing token: the creation zxid of
// its ZooKeeper node or the create revision of its etcd key. It returns
// 0 when nothing is held or the hold was lost.
func (sem *Semaphore) Token() int64 {
	return sem.l.Token()
}

// Sequencer returns the current hold's sequencer, in mode
// turnstile.Shared, for a resource to check with a turnstile.Fence or at
// the server; the zero Sequencer when nothing is held or the hold was
// lost.
func (sem *Semaphore) Sequencer() turnstile.Sequencer {
	return sem.l.Sequencer()
}

// Lost returns a channel closed when the current hold ends other than by
// release: at once when its session ends, and within about two seconds
// when someone else deletes its node or key (on ZooKeeper, a second more
// for every 64 holds of its session past the first 64). It returns nil,
// a channel that never closes, when nothing is held.
func (sem *Semaphore) Lost() <-chan struct{} {
	return sem.l.Lost()
}
