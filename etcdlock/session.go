package etcdlock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/recipe"
	"github.com/turnstile-go/turnstile/internal/session"
)

// DefaultTTL is the lease TTL granted when no WithTTL option is given.
const DefaultTTL = 10 * time.Second

// Option configures a Session.
type Option func(*options)

type options struct {
	ttl   time.Duration
	lease clientv3.LeaseID
	log   *slog.Logger
	ctx   context.Context
	err   error // an option that cannot work
}

// invalid records an option that cannot work, for NewSession to refuse
// before it reaches a server.
func (o *options) invalid(format string, args ...any) {
	if o.err == nil {
		o.err = fmt.Errorf("etcdlock: %w: "+format, append([]any{turnstile.ErrInvalidOption}, args...)...)
	}
}

// WithTTL sets the TTL of the lease the session grants, rounded up to a
// whole second (etcd's unit): how long a silent client keeps its lease,
// and so its holds.
func WithTTL(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.invalid("TTL %v: want more than 0", d)
		}
		o.ttl = d
	}
}

// WithLease makes the session keep alive an existing lease instead of
// granting one. Close revokes it all the same, since the holds made
// through the session end only with their lease.
func WithLease(id clientv3.LeaseID) Option {
	return func(o *options) { o.lease = id }
}

// WithContext bounds NewSession: if ctx ends before the lease is granted
// and renewed, NewSession gives up and returns ctx's error. NewSession
// waits 30 seconds at most, with or without it. The session, once made,
// does not end with ctx.
func WithContext(ctx context.Context) Option {
	return func(o *options) {
		if ctx == nil {
			o.invalid("nil context")
		}
		o.ctx = ctx
	}
}

// WithLogger sets where the session logs. The default discards
// everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l == nil {
			o.invalid("nil logger")
		}
		o.log = l
	}
}

// Session is one etcd lease, kept alive, and the lifetime of every hold
// and queued contender made through it. It is safe for use by several
// goroutines and several recipes at once.
//
// A session ends for good when its lease expires or is revoked, when the
// client has not been able to renew it for a TTL (the server has expired
// it by then, whether or not the client has heard), when the client is
// closed, or when Close is called. It never grants itself a new lease:
// an ended session fails every call.
type Session struct {
	cli   *clientv3.Client
	lease clientv3.LeaseID
	log   *slog.Logger
	seen  atomic.Int64 // the highest revision this session has seen

	ending *session.Ending
	ctx    context.Context // ends with the session, and with it every watch
	stop   context.CancelFunc
	ttl    time.Duration // as granted
	born   time.Time
	// expires is when the lease may have expired on the server, as time
	// since born: a TTL after the last answered renewal was sent.
	expires atomic.Int64

	closeOnce sync.Once
	closeErr  error

	tracker recipe.Tracker
	keys    keySlots
	writes  writeContexts
}

// NewSession grants a lease on cli (or takes the one WithLease names)
// and keeps it alive until the session ends.
//
// On a cluster with authentication enabled the session acts as cli's
// user, named by cli's password login or by its TLS client certificate;
// the session never sees the credentials. Each name it uses needs read
// and write permission on the keys under name + "/", as a role granted
// readwrite on a prefix above it gives. A request the server refuses
// fails at once with an error matching turnstile.ErrNotAuthorized.
// Permission cannot tell one user of a prefix from another: any of them
// may delete the others' keys, which fencing tokens guard against.
func NewSession(cli *clientv3.Client, opts ...Option) (*Session, error) {
	if cli == nil {
		return nil, fmt.Errorf("etcdlock: %w: nil *clientv3.Client", turnstile.ErrNilSession)
	}
	o := options{ttl: DefaultTTL, log: slog.New(slog.DiscardHandler), ctx: context.Background()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.err != nil {
		return nil, o.err
	}
	ctx, cancel := context.WithTimeout(o.ctx, 30*time.Second)
	defer cancel()
	defer context.AfterFunc(cli.Ctx(), cancel)() // a closed client gives up too
	unknown := func(error) bool { return false } // a lease not found
	if o.lease == clientv3.NoLease {
		resp, err := settled(ctx, func() (*clientv3.LeaseGrantResponse, error) {
			return cli.Grant(ctx, int64(math.Ceil(o.ttl.Seconds())))
		}, unknown)
		if err != nil {
			err = cmp.Or(o.ctx.Err(), err)
			return nil, fmt.Errorf("etcdlock: grant lease: %w", refused(err))
		}
		o.lease = resp.ID
		// A lease just granted that a member does not know yet (one that
		// has not applied the grant, as after a leader change) is not
		// gone: it cannot have expired.
		granted := time.Now()
		unknown = func(err error) bool {
			return errors.Is(err, rpctypes.ErrLeaseNotFound) && time.Since(granted) < time.Duration(resp.TTL)*time.Second/2
		}
	}
	// A first renewal dates the lease, however long the grant took: it
	// lives at least a TTL from when the renewal was sent.
	var sent time.Time
	resp, err := settled(ctx, func() (*clientv3.LeaseKeepAliveResponse, error) {
		sent = time.Now()
		return cli.KeepAliveOnce(ctx, o.lease)
	}, unknown)
	if err != nil {
		err = cmp.Or(o.ctx.Err(), err)
		return nil, fmt.Errorf("etcdlock: keep lease %x alive: %w", o.lease, refused(err))
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(cli.Ctx()))
	ttl := time.Duration(resp.TTL) * time.Second
	s := &Session{cli: cli, lease: o.lease, log: o.log, ending: session.NewEnding(), ctx: sctx, stop: stop, ttl: ttl, born: time.Now()}
	s.expires.Store(int64(sent.Add(ttl).Sub(s.born)))
	s.keys.salt = rand.Uint64()
	// A closed client renews nothing, and its watches end at once, which
	// waiters would take for a change and watch again until the TTL ran out.
	forget := context.AfterFunc(cli.Ctx(), func() {
		s.end(fmt.Errorf("%w: its etcd client was closed", turnstile.ErrLost))
	})
	s.stop = func() { stop(); forget() }
	s.ending.Go(func() { s.keepAlive(sent, ttl) })
	return s, nil
}

// settled runs call again, after a pause, while it fails on the way or
// for overload (a leader being elected, a member too busy), or as also
// says, until ctx ends. A grant whose reply was lost leaves a lease that
// expires unused.
func settled[T any](ctx context.Context, call func() (T, error), also func(error) bool) (T, error) {
	for {
		v, err := call()
		if err == nil || !unsettled(err) && !also(err) || ctx.Err() != nil {
			return v, err
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return v, err
		}
	}
}

// keepAlive renews the lease a third of its TTL after each renewal, and
// ends the session the moment the lease may have expired on the server:
// a TTL after the last answered renewal was sent, since the server
// cannot have renewed it any earlier. The client's own KeepAlive gives
// up only once a TTL has passed since the last answer arrived, checked
// twice a second: too late for a holder that must stop before the
// server hands its hold to the next contender.
func (s *Session) keepAlive(renewed time.Time, ttl time.Duration) {
	deadline := renewed.Add(ttl)
	// An attempt stuck on a member that died is dropped after a while,
	// so that the next one can reach another.
	attempt := max(ttl/3, 500*time.Millisecond)
	if !s.sleep(time.Until(renewed.Add(ttl / 3))) {
		return
	}
	for {
		sent := time.Now()
		ctx, cancel := context.WithTimeout(s.ctx, min(time.Until(deadline), attempt))
		resp, err := s.cli.KeepAliveOnce(ctx, s.lease)
		cancel()
		switch {
		case s.ctx.Err() != nil:
			return // closed
		case err == nil && resp.TTL > 0:
			ttl := time.Duration(resp.TTL) * time.Second
			deadline = sent.Add(ttl)
			s.expires.Store(int64(deadline.Sub(s.born)))
			attempt = max(ttl/3, 500*time.Millisecond)
			if !s.sleep(ttl / 3) {
				return
			}
		case err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound):
			s.end(fmt.Errorf("%w: etcd lease %x expired or revoked", turnstile.ErrLost, s.lease))
			return
		case !time.Now().Before(deadline):
			s.end(fmt.Errorf("%w: %v", s.errUnrenewed(), err))
			return
		default:
			// Unreachable for now: retry until the lease may be gone.
			if !s.sleep(max(0, min(100*time.Millisecond, time.Until(deadline)))) {
				return
			}
		}
	}
}

// sleep waits d, and reports false if the session ends first.
func (s *Session) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// end makes the session dead with cause, once.
func (s *Session) end(cause error) {
	if s.ending.End(cause) {
		s.stop()
		s.log.Info("etcdlock: session ended", "lease", fmt.Sprintf("%x", s.lease), "cause", cause)
	}
}

// Done returns a channel closed when the session ends: lease expired,
// revoked or not renewed for a TTL, its client closed, or Close called.
// Every hold made through the session is lost by then.
func (s *Session) Done() <-chan struct{} { return s.ending.Done() }

// Err returns nil while the session lives, then why it ended: an error
// matching turnstile.ErrLost, or turnstile.ErrSessionClosed after Close.
func (s *Session) Err() error {
	// The clock is read here too, not only by keepAlive: a process woken
	// from a pause runs some goroutine first, and one that asks for its
	// token must not get it from a lease that may have expired meanwhile.
	if s.ending.Err() == nil && time.Since(s.born) >= time.Duration(s.expires.Load()) {
		s.end(s.errUnrenewed())
	}
	return s.ending.Err()
}

// errUnrenewed ends a session whose lease went unrenewed for its TTL.
func (s *Session) errUnrenewed() error {
	return fmt.Errorf("%w: etcd lease %x not renewed within its TTL", turnstile.ErrLost, s.lease)
}

// Lease returns the session's lease.
func (s *Session) Lease() clientv3.LeaseID { return s.lease }

// Client returns the client the session was made with, for the caller's
// own requests, such as a Txn fenced by Guard.
func (s *Session) Client() *clientv3.Client { return s.cli }

// Close ends the session and revokes its lease, which deletes every key
// the session holds or queued. It does not close the client. Close is
// idempotent.
//
// A session already lost is revoked too: the client cannot tell whether
// its lease still lives on the server, as it does while renewals arrive
// whose answers do not, or for a TTL after a leader change, and its keys
// would block the queue until then. Close then waits no longer than the
// TTL for the revocation, and reports no error from it.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		alive := s.Err() == nil
		s.end(turnstile.ErrSessionClosed)
		s.ending.Wait()
		timeout := 10 * time.Second
		if !alive {
			timeout = min(timeout, s.ttl)
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.cli.Ctx()), timeout)
		defer cancel()
		_, err := s.cli.Revoke(ctx, s.lease)
		if alive && err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.closeErr = fmt.Errorf("etcdlock: revoke lease %x: %w", s.lease, refused(err))
		}
	})
	return s.closeErr
}

// bound returns ctx, also cancelled when the session ends: a call on a
// connection that went silent would otherwise outlive the session, and a
// waiter would not hear that it lost its place.
func (s *Session) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// saw records a revision the session has observed, so that later
// serializable reads are never older than what it already knows.
func (s *Session) saw(rev int64) {
	for {
		cur := s.seen.Load()
		if rev <= cur || s.seen.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// Participants lists the queue of the lock, election or semaphore called
// name, holders first, by create revision: every key directly under
// name/, whichever client put it, with its value as identity. etcd keeps
// no time with a key, so Since is zero. It reads the keys and then each
// key, a round trip each.
func (s *Session) Participants(ctx context.Context, name string) ([]turnstile.Participant, error) {
	return recipe.Participants(ctx, backend{s}, name)
}
