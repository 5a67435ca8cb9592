// Package rwlock is a fair, herd-free read-write lock over either
// backend: readers share a name, writers hold it alone, strictly in the
// order the server received them.
//
// It runs on a *zklock.Session or an *etcdlock.Session unchanged. On
// ZooKeeper a reader is a child node named as Curator's read-write lock
// names its readers, _c_<random>-__READ__<sequence>, and a writer
// _c_<random>-__WRIT__<sequence>, so that a name can be shared with
// Curator's InterProcessReadWriteLock and kazoo's WriteLock; on etcd the
// keys under the name's prefix start read- and lock-. Every contender
// counts, whichever client wrote it, and one not marked as a reader is a
// writer.
package rwlock

import (
	"context"
	"errors"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/recipe"
)

// ErrUpgrade is returned by Lock and TryLock on a value that holds the
// read lock: the write contender would queue behind its own read hold
// and wait for ever. RUnlock first, then Lock, knowing that another
// writer may go in between.
var ErrUpgrade = errors.New("rwlock: cannot upgrade a read hold to a write hold")

// RWMutex is a read-write lock shared by every client of a ZooKeeper
// ensemble or etcd cluster that uses the same name. Contenders are served
// in the order the server received them: a reader holds once no writer is
// ahead of it, a writer once it is first. A waiting writer therefore
// holds back every reader that comes after it, so writers never starve,
// and does not hold back readers that came before it.
//
// Each waiter waits for one contender alone: a reader for the nearest
// writer ahead of it, a writer for its immediate predecessor. A writer's
// release wakes the run of readers behind it, or the next writer, and no
// one else.
//
// An RWMutex value has at most one hold, read or write, and at most one
// contender in the server's queue: acquisitions by goroutines sharing a
// value wait on the value, in arrival order, even two RLocks. Values on
// separate sessions, or separate values on one session, are separate
// contenders; two readers in one process share the lock by using two
// values. Any goroutine may release.
//
// Every hold carries a fencing token (Token), its contender's number on
// the server. Read and write holds of a name are numbered on one scale,
// so a resource can fence both with the same check. Lost and the loss of
// a hold behave as for a mutex.Mutex.
type RWMutex struct {
	l *recipe.Lock
}

// New returns the read-write lock named name on s, a *zklock.Session or
// an *etcdlock.Session. It makes no server call: a nil s, an invalid name
// (see turnstile.ValidateName) or an option out of range is reported by
// every method, with an error matching turnstile.ErrNilSession,
// turnstile.ErrInvalidName or turnstile.ErrInvalidOption.
func New(s turnstile.Session, name string, opts ...Option) *RWMutex {
	l := recipe.New(s, name)
	recipe.Configure(l, opts)
	return &RWMutex{l}
}

// An Option configures an RWMutex.
type Option func(*recipe.Config)

// WithLockDelay sets a lock-delay, as mutex.WithLockDelay does for a
// mutex: when a hold ends without a release, the next grant, read or
// write, comes no sooner than d after that end was seen. A read hold's
// end delays too, though readers do not write: the reader may have been
// serving a writer's delay.
func WithLockDelay(d time.Duration) Option {
	return func(c *recipe.Config) { c.Delay = d }
}

// WithIdentity sets what this RWMutex's contenders store, as
// mutex.WithIdentity does for a mutex.
func WithIdentity(id string) Option {
	return func(c *recipe.Config) { c.Identity = id }
}

// RLock blocks until the lock is held for reading, or until ctx ends.
// On failure it returns the error, ctx's error if ctx ended, and leaves
// nothing in the queue; an RLock that returns nil holds even if ctx
// ended meanwhile.
func (rw *RWMutex) RLock(ctx context.Context) error {
	return rw.l.Acquire(ctx, turnstile.Shared, recipe.ReadLabel, nil, false)
}

// TryRLock acquires the read lock only if no writer holds it or waits
// for it: it never waits. Otherwise it leaves the queue and returns an
// error matching turnstile.ErrLocked.
func (rw *RWMutex) TryRLock(ctx context.Context) error {
	return rw.l.Acquire(ctx, turnstile.Shared, recipe.ReadLabel, nil, true)
}

// RUnlock releases a read hold. It returns an error matching
// turnstile.ErrNotHeld when the value holds no read lock, and
// turnstile.ErrLost when the hold had been lost. Any other error, such as
// ctx's end, leaves the hold in place to RUnlock again, as Mutex.Unlock
// does; a ctx that has already ended sends nothing.
func (rw *RWMutex) RUnlock(ctx context.Context) error {
	return rw.l.Release(ctx, turnstile.Shared)
}

// Lock blocks until the lock is held for writing, or until ctx ends,
// with the same guarantees as RLock. On a value that holds the read
// lock it fails at once with ErrUpgrade.
func (rw *RWMutex) Lock(ctx context.Context) error {
	if err := rw.upgrade(); err != nil {
		return err
	}
	return rw.l.Acquire(ctx, turnstile.Exclusive, recipe.WriteLabel, nil, false)
}

// TryLock acquires the write lock only if nobody holds the lock or waits
// for it: it never waits. Otherwise it leaves the queue and returns an
// error matching turnstile.ErrLocked, or ErrUpgrade as Lock does.
func (rw *RWMutex) TryLock(ctx context.Context) error {
	if err := rw.upgrade(); err != nil {
		return err
	}
	return rw.l.Acquire(ctx, turnstile.Exclusive, recipe.WriteLabel, nil, true)
}

func (rw *RWMutex) upgrade() error {
	if rw.l.Holds(turnstile.Shared) {
		return ErrUpgrade
	}
	return nil
}

// Unlock releases a write hold. It returns an error matching
// turnstile.ErrNotHeld when the value holds no write lock, and
// turnstile.ErrLost when the hold had been lost. Any other error, such as
// ctx's end, leaves the hold in place to Unlock again, as Mutex.Unlock
// does; a ctx that has already ended sends nothing.
func (rw *RWMutex) Unlock(ctx context.Context) error {
	return rw.l.Release(ctx, turnstile.Exclusive)
}

// Token returns the fencing token of the current hold, read or write:
// the ZooKeeper node's creation zxid or the etcd key's create revision.
// It returns 0 when nothing is held or the hold was lost.
func (rw *RWMutex) Token() int64 {
	return rw.l.Token()
}

// Sequencer returns the current hold's sequencer, whose mode tells a
// read hold from a write hold, for a resource to check with a
// turnstile.Fence or at the server; the zero Sequencer when nothing is
// held or the hold was lost.
func (rw *RWMutex) Sequencer() turnstile.Sequencer {
	return rw.l.Sequencer()
}

// Mode returns turnstile.Exclusive for a write hold, turnstile.Shared
// for a read hold, and 0 when nothing is held or the hold was lost, so
// that a resource told of a token can also be told what it permits.
func (rw *RWMutex) Mode() turnstile.Kind {
	return rw.l.Mode()
}

// Lost returns a channel closed when the current hold ends other than by
// release: at once when its session ends, and within about two seconds
// when someone else deletes its node or key (on ZooKeeper, a second more
// for every 64 holds of its session past the first 64). It returns nil,
// a channel that never closes, when nothing is held.
func (rw *RWMutex) Lost() <-chan struct{} {
	return rw.l.Lost()
}
