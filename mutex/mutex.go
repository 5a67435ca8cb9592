// Package mutex is a fair, herd-free mutual exclusion lock over either
// backend, the one behind zklock.NewMutex and etcdlock.NewMutex:
// contenders are served in the order the server received them, each
// waits for its predecessor alone, and every hold carries a fencing
// token.
//
// It runs on a *zklock.Session or an *etcdlock.Session unchanged. On
// ZooKeeper a contender is a child node of the lock's znode, named as
// Curator names its own (_c_<random>-lock-<sequence>); on etcd a key
// under the name's prefix. Every contender counts, whichever client wrote
// it: go-zookeeper's zk.Lock, Curator's InterProcessMutex, kazoo's Lock
// (see the README for the setting it needs), etcd's concurrency.Mutex and
// etcdctl lock share a name with it.
package mutex

import (
	"context"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/recipe"
)

// Mutex is a mutual exclusion lock shared by every client of a ZooKeeper
// ensemble or etcd cluster that uses the same name. Contenders are served
// in the order the server received them; each waits for its predecessor
// alone, so a release wakes only the next contender.
//
// A Mutex may be used by several goroutines: their Lock calls wait on the
// value, in arrival order, and the value has at most one contender in the
// server's queue. Any goroutine may Unlock. Two Mutex values, on one
// session or on two, are two contenders: they exclude each other.
//
// Safety versus liveness: a hold lasts as long as its session. If the
// holder pauses, or is cut off, for longer than the session timeout
// (ZooKeeper) or lease TTL (etcd), the server ends the session and grants
// the lock to the next contender while the former holder may still
// believe it holds. Lost tells the holder as soon as it can know, but
// only a check at the protected resource is safe against a holder that
// cannot know yet (a stopped process): pass Token to the resource and
// have it refuse tokens older than the newest it has seen.
type Mutex struct {
	l *recipe.Lock
}

// New returns the Mutex named name on s, a *zklock.Session or an
// *etcdlock.Session. It makes no server call: a nil s, an invalid name
// (see turnstile.ValidateName) or an option out of range is reported by
// every method, with an error matching turnstile.ErrNilSession,
// turnstile.ErrInvalidName or turnstile.ErrInvalidOption.
func New(s turnstile.Session, name string, opts ...Option) *Mutex {
	l := recipe.New(s, name)
	recipe.Configure(l, opts)
	return &Mutex{l}
}

// An Option configures a Mutex.
type Option func(*recipe.Config)

// WithLockDelay sets a lock-delay, as Chubby's: when a hold ends without
// a release (its session ended, or someone else deleted its node or
// key), the next contender is granted the lock no sooner than d after
// that end was seen, so that requests the former holder sent before it
// was cut off can drain first. An Unlock hands over at once: it marks
// its release (on ZooKeeper a write in the delete's request, on etcd a
// put before the delete, which the contender behind takes for the
// release) so that the contender behind it can tell a release from an
// end.
//
// It is a margin for resources that cannot check a fencing token, not a
// guarantee: a request delayed longer than d still arrives after the
// next holder's. Where the resource can check Token, fencing is the
// guarantee.
//
// In doubt it delays: after another client's release, which it cannot
// tell from an end, and, on ZooKeeper, after a hold that had gone before
// the contender behind it started watching it, as happens when a hold
// ends just as a contender joins. (etcd still tells, from the key's
// history, unless compacted since: at a cost of up to 100 ms.) It cannot
// delay a contender that finds the lock free:
// the servers keep no record of how the last hold ended. Every
// contender of a name should use the same d.
func WithLockDelay(d time.Duration) Option {
	return func(c *recipe.Config) { c.Delay = d }
}

// WithIdentity sets what this Mutex's contender stores in its node or
// key, where Participants, dlock -ls, Curator and kazoo read it: by
// default the host name and process id, as host:pid. The error of an
// id that turnstile.ValidateID refuses matches turnstile.ErrInvalidOption.
func WithIdentity(id string) Option {
	return func(c *recipe.Config) { c.Identity = id }
}

// Lock blocks until the lock is held, or until ctx ends. It joins the
// queue behind every contender already in it (first come, first served)
// in one round trip, which also tells an uncontended Lock that it holds.
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

// Unlock releases the lock, deleting this hold's node or key and no
// other, even when retried. It returns an error matching
// turnstile.ErrNotHeld when the Mutex holds nothing, and turnstile.ErrLost
// when the hold had been lost (the lock is then free on this value,
// though another client may hold it). Any other error, such as ctx's
// end, leaves the hold in place to Unlock again. A ctx that has already
// ended sends nothing, so a deferred Unlock that must release after ctx's
// end takes context.WithoutCancel(ctx).
func (m *Mutex) Unlock(ctx context.Context) error {
	return m.l.Release(ctx, turnstile.Exclusive)
}

// Token returns the fencing token of the current hold: the zxid that
// created its ZooKeeper node, or its etcd key's create revision, larger
// for every later grant of the same name by any client. It returns 0
// when nothing is held or the hold was lost, which includes a session
// the server may have ended (by zklock.Connect's, no request answered
// for a session timeout; by etcdlock's, its lease not renewed for a
// TTL): after a process pause, from the first call.
func (m *Mutex) Token() int64 {
	return m.l.Token()
}

// Sequencer returns the current hold's sequencer: name, mode and token,
// for a remote resource to check with a turnstile.Fence, or with the
// session's Check or its backend's Guard at the server. It returns the
// zero Sequencer when nothing is held or the hold was lost.
func (m *Mutex) Sequencer() turnstile.Sequencer {
	return m.l.Sequencer()
}

// Lost returns a channel closed when the current hold ends other than by
// Unlock: at once when its session ends (expired, or presumed expired
// because the client could not hear from the server for a session
// timeout or TTL), and within about two seconds when someone else
// deletes its node or key (on ZooKeeper, a second more for every 64
// holds of its session past the first 64). It returns nil, a channel
// that never closes, when nothing is held.
func (m *Mutex) Lost() <-chan struct{} {
	return m.l.Lost()
}
