package zklock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/recipe"
	"github.com/turnstile-go/turnstile/internal/session"
)

// DefaultSessionTimeout is the session timeout asked of the server when
// no WithSessionTimeout option is given. The server may clamp it to its
// own bounds (2 to 20 ticks by default).
const DefaultSessionTimeout = 10 * time.Second

// Option configures a Session.
type Option func(*options)

type options struct {
	timeout time.Duration
	acl     []zk.ACL
	auth    []auth
	log     *slog.Logger
	dialer  zk.Dialer
	ctx     context.Context
	err     error // an option that cannot work
}

type auth struct {
	scheme string
	cred   []byte
}

// WithSessionTimeout sets the session timeout asked of the server: how
// long a silent client keeps its session, and so its holds.
func WithSessionTimeout(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.invalid("session timeout %v: want more than 0", d)
		}
		o.timeout = d
	}
}

// WithACL sets the ACL of the nodes the session creates: contenders, and
// the lock directory (the znode name) with whichever of its ancestors
// are missing. Existing nodes keep their ACLs, and the session needs
// CREATE only on the nearest existing ancestor, so an operator may hand a
// team a subtree of its own. The default is ZooKeeper's open ACL,
// zk.WorldACL(zk.PermAll): anyone who can reach the servers may join,
// and delete any contender.
//
// ZooKeeper checks a create and a delete against the parent's ACL, so the
// lock directory's ACL decides who may queue and who may remove a
// contender: it must grant READ, CREATE and DELETE to every client of the
// name. A contender's own ACL guards its data (an election candidate's
// id, which every observer reads). zk.AuthACL(zk.PermAll) with
// WithDigestAuth (Connect refuses it without) limits both to clients
// with the same credentials;
// zk.DigestACL gives several users access. Every client of a name must
// use the same ACL: the server removes an empty directory, and the next
// client to use the name creates it again with its own.
//
// The ACL keeps out clients without credentials; it cannot tell one
// authorised client from another, any of which may delete the others'
// contenders. Fencing tokens protect the resource against that too.
func WithACL(acl ...zk.ACL) Option {
	return func(o *options) { o.acl = acl }
}

// WithDigestAuth adds digest credentials to the session, sent again on
// every reconnection, before any other request. ZooKeeper accepts any
// digest credentials: wrong ones are only refused access, by the ACLs
// that name the right ones, with an error matching
// turnstile.ErrNotAuthorized. A user containing ':' makes Connect and
// NewSession fail, since ZooKeeper would split the credentials there.
// The password appears in no error and no log.
func WithDigestAuth(user, password string) Option {
	return func(o *options) {
		if strings.Contains(user, ":") {
			o.invalid("digest user %q contains ':'", user)
		}
		o.auth = append(o.auth, auth{"digest", []byte(user + ":" + password)})
	}
}

// WithContext bounds Connect and NewSession: if ctx ends before a server
// has granted the session, they give up and return ctx's error. Without
// it they wait up to the session timeout, or 5 seconds if that is
// shorter. The session, once granted, does not end with ctx.
func WithContext(ctx context.Context) Option {
	return func(o *options) {
		if ctx == nil {
			o.invalid("nil context")
		}
		o.ctx = ctx
	}
}

// WithLogger sets where the session and its ZooKeeper client log. The
// default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l == nil {
			o.invalid("nil logger")
		}
		o.log = l
	}
}

// WithDialer sets how Connect opens connections to the servers, for
// example through a proxy.
func WithDialer(d zk.Dialer) Option {
	return func(o *options) {
		if d == nil {
			o.invalid("nil dialer")
		}
		o.dialer = d
	}
}

// invalid records an option that cannot work, for Connect and NewSession
// to refuse before they reach a server.
func (o *options) invalid(format string, args ...any) {
	if o.err == nil {
		o.err = fmt.Errorf("zklock: %w: "+format, append([]any{turnstile.ErrInvalidOption}, args...)...)
	}
}

// check returns why the options cannot work, or nil.
func (o *options) check() error {
	if len(o.auth) == 0 && slices.ContainsFunc(o.acl, func(a zk.ACL) bool { return a.Scheme == "auth" }) {
		// The server would refuse every create as an invalid ACL.
		o.invalid(`the ACL scheme "auth" stands for the session's credentials, and there are none (WithDigestAuth)`)
	}
	return o.err
}

// Session is one ZooKeeper session, the lifetime of every hold and queued
// contender made through it. It is safe for use by several goroutines and
// several recipes at once.
//
// A session ends for good when the server expires it, when no request
// the client sent in the last session timeout has been answered (the
// server may have expired it by then, whether or not the client has
// heard, even if the connection looks up), or when Close is called. It
// is never replaced by a new one behind a caller's back: an ended
// session fails every call.
type Session struct {
	conn    *zk.Conn
	acl     []zk.ACL
	log     *slog.Logger
	id      int64        // the session the server granted; any other is not ours
	timeout atomic.Int64 // negotiated session timeout, in nanoseconds
	born    time.Time
	heard   atomic.Int64 // the send time of the newest answered request, as time since born
	tracked bool         // heard is kept: Connect dialled the connection
	events  eventQueue   // session events, none dropped

	ending   *session.Ending
	quit     chan struct{}
	quitOnce sync.Once

	tracker      recipe.Tracker
	swept        string       // the last key Gone read; only the tracker's one sweep calls Gone
	stampRefused sync.Map     // names under which this session may not write its own nodes
	joinWatches  sync.Map     // name → <-chan zk.Event: AwaitJoin's watch on it, until it fires
	exitWatches  sync.Map     // node path → *exitWatch: AwaitExit's watch on it, until it fires
	exitCount    atomic.Int64 // the watches in exitWatches
	exitPrune    atomic.Int64 // when exitCount reaches it, pruneExits runs
}

// Connect opens a session on the ZooKeeper ensemble at servers
// ("host:port" each) and waits until the server has granted it.
// A server that has not answered a new connection within the session
// timeout divided by len(servers) is left for the next one.
func Connect(servers []string, opts ...Option) (*Session, error) {
	o := options{timeout: DefaultSessionTimeout, dialer: net.DialTimeout, ctx: context.Background()}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	s := newSession(o)
	s.tracked = true
	dial := o.dialer
	// The client drops events when its channel is full, and watch events
	// share it; a callback sees every session event.
	conn, _, err := zk.Connect(servers, o.timeout,
		zk.WithLogger(zkLogger{s}),
		zk.WithEventCallback(s.events.push),
		zk.WithDialer(func(network, addr string, timeout time.Duration) (net.Conn, error) {
			c, err := dial(network, addr, timeout)
			if err != nil {
				return nil, err
			}
			share := time.Duration(s.timeout.Load()) / time.Duration(max(len(servers), 1))
			return &heardConn{Conn: c, s: s, handshake: share}, nil
		}))
	if err != nil {
		return nil, fmt.Errorf("zklock: connect: %w", err)
	}
	if err := s.start(conn, o); err != nil {
		return nil, err
	}
	return s, nil
}

// NewSession makes a Session of a connection the caller opened, with the
// event channel zk.Connect returned, which the Session then reads alone.
// The Session owns conn from then on: it closes conn when it ends. Pass
// WithSessionTimeout with the timeout conn was opened with: it bounds how
// long a disconnection is tolerated before holds are presumed lost.
// WithDialer does not apply, and the connection keeps its own logger.
func NewSession(conn *zk.Conn, events <-chan zk.Event, opts ...Option) (*Session, error) {
	if conn == nil {
		return nil, fmt.Errorf("zklock: %w: nil *zk.Conn", turnstile.ErrNilSession)
	}
	o := options{timeout: DefaultSessionTimeout, ctx: context.Background()}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.check(); err != nil {
		conn.Close()
		return nil, err
	}
	// The client's SetLogger races with its own goroutines, so the
	// connection keeps the logger it was opened with.
	s := newSession(o)
	s.ending.Go(func() {
		for {
			select {
			case ev, ok := <-events:
				if !ok { // the connection was closed
					s.end(fmt.Errorf("%w: its ZooKeeper connection was closed", turnstile.ErrSessionClosed))
					return
				}
				s.events.push(ev)
			case <-s.quit:
				return
			}
		}
	})
	if err := s.start(conn, o); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func newSession(o options) *Session {
	s := &Session{
		acl:    o.acl,
		log:    o.log,
		ending: session.NewEnding(),
		quit:   make(chan struct{}),
		born:   time.Now(),
		events: eventQueue{signal: make(chan struct{}, 1)},
	}
	if s.acl == nil {
		s.acl = zk.WorldACL(zk.PermAll)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.timeout.Store(int64(o.timeout))
	return s
}

// start waits for the session to be granted, then follows it.
func (s *Session) start(conn *zk.Conn, o options) error {
	s.conn = conn
	wait := max(o.timeout, 5*time.Second)
	ready := time.NewTimer(wait)
	defer ready.Stop()
	for granted := false; !granted; {
		select {
		case <-s.events.signal:
			for _, ev := range s.events.peek() {
				granted = granted || ev.State == zk.StateHasSession
				if ev.State == zk.StateAuthFailed {
					conn.Close()
					return fmt.Errorf("zklock: connect: %w", refused(zk.ErrAuthFailed))
				}
			}
		case <-ready.C:
			conn.Close()
			return fmt.Errorf("zklock: connect: no server granted a session within %v", wait)
		case <-o.ctx.Done():
			conn.Close()
			return fmt.Errorf("zklock: connect: %w", o.ctx.Err())
		}
	}
	s.id = conn.SessionID()
	for _, a := range o.auth {
		if err := conn.AddAuth(a.scheme, a.cred); err != nil {
			conn.Close()
			return fmt.Errorf("zklock: authenticate (%s): %w", a.scheme, refused(err))
		}
	}
	s.events.kick() // what start read, follow takes
	s.ending.Go(s.follow)
	return nil
}

// errUnheard ends a session whose requests went unanswered for longer
// than its timeout.
var errUnheard = fmt.Errorf("%w: no answer from ZooKeeper for longer than the session timeout", turnstile.ErrLost)

// follow tracks the session. The server expires it a session timeout
// after it last heard from the client, and a connection that looks up
// is no sign that it still hears: so when heard is kept, the session is
// presumed lost once no request sent in the last session timeout has
// been answered, connected or not. Without heard, a disconnection is
// tolerated for what may remain of the timeout when the client notices.
func (s *Session) follow() {
	expiry := time.NewTimer(0)
	<-expiry.C
	defer expiry.Stop()
	if s.tracked {
		expiry.Reset(s.untilExpiry())
	}
	armed := false // the client reports each failed reconnection anew
	for {
		select {
		case <-s.events.signal:
			for _, ev := range s.events.take() {
				switch ev.State {
				case zk.StateExpired:
					s.end(fmt.Errorf("%w: ZooKeeper session expired", turnstile.ErrLost))
				case zk.StateHasSession:
					if s.tracked {
						// A new connection may have been granted another
						// timeout; heardConn has read it by now.
						expiry.Reset(s.untilExpiry())
					} else {
						expiry.Stop()
						armed = false
					}
				case zk.StateDisconnected:
					if !s.tracked && !armed {
						// The client notices silence after two thirds of
						// the timeout, so a third is what may remain.
						expiry.Reset(time.Duration(s.timeout.Load()) / 3)
						armed = true
					}
				}
			}
		case <-expiry.C:
			if s.tracked {
				if left := s.untilExpiry(); left > 0 {
					expiry.Reset(left)
					continue
				}
			}
			s.end(errUnheard)
		case <-s.quit:
			return
		}
	}
}

// eventQueue keeps the connection's session events in order, however
// many arrive before they are read; push never blocks the client.
type eventQueue struct {
	mu     sync.Mutex
	evs    []zk.Event
	signal chan struct{} // holds a token while evs is not empty
}

func (q *eventQueue) push(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	q.mu.Lock()
	q.evs = append(q.evs, ev)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// take returns the events queued so far and empties the queue.
func (q *eventQueue) take() []zk.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	evs := q.evs
	q.evs = nil
	return evs
}

// peek returns the events queued so far and leaves them for take. It
// does not signal again, or a reader waiting for the next event would
// spin; the caller signals with kick when it hands the queue on.
func (q *eventQueue) peek() []zk.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.evs)
}

// kick signals if events are queued, for the next reader to take them.
func (q *eventQueue) kick() {
	q.mu.Lock()
	queued := len(q.evs) > 0
	q.mu.Unlock()
	if queued {
		select {
		case q.signal <- struct{}{}:
		default:
		}
	}
}

// untilExpiry is how long the session may still be alive on the server,
// by what heard says.
func (s *Session) untilExpiry() time.Duration {
	return time.Duration(s.timeout.Load()) - (time.Since(s.born) - time.Duration(s.heard.Load()))
}

// end makes the session dead with cause, once, and closes the
// connection so that the client cannot open a new session in its place.
func (s *Session) end(cause error) {
	if s.ending.End(cause) {
		s.log.Info("zklock: session ended", "session", fmt.Sprintf("%#x", s.id), "cause", cause)
		if s.conn != nil {
			go s.conn.Close()
		}
	}
}

// Done returns a channel closed when the session ends: expired, presumed
// expired because no request sent in the last session timeout has been
// answered, or closed. Every hold made through the session is lost by then.
func (s *Session) Done() <-chan struct{} { return s.ending.Done() }

// Err returns nil while the session lives, then why it ended: an error
// matching turnstile.ErrLost, or turnstile.ErrSessionClosed after Close.
func (s *Session) Err() error {
	// The clock is read here too, not only by the session's goroutine: a
	// process woken from a pause runs some goroutine first, and one that
	// asks for its token must not get it from a session that may have
	// expired meanwhile.
	if s.tracked && s.ending.Err() == nil && s.untilExpiry() <= 0 {
		s.end(errUnheard)
	}
	return s.ending.Err()
}

// ID returns the ZooKeeper session id.
func (s *Session) ID() int64 { return s.id }

// Conn returns the session's connection, for the caller's own requests
// on the same session, such as a Multi fenced by Guard. Closing it ends
// the session, as Close does; on a session made by NewSession, the
// session's holds hear of it only once the server may have ended it, so
// Close is the way to end one.
func (s *Session) Conn() *zk.Conn { return s.conn }

// Close ends the session: the server deletes its nodes at once, so every
// hold and queued contender made through it ends too. Close is
// idempotent.
func (s *Session) Close() error {
	s.end(turnstile.ErrSessionClosed)
	if s.conn != nil {
		s.conn.Close() // waits for the server to end the session
	}
	s.quitOnce.Do(func() { close(s.quit) })
	s.ending.Wait()
	return nil
}

// zkLogger sends the ZooKeeper client's log to the session's logger.
type zkLogger struct{ s *Session }

func (l zkLogger) Printf(format string, args ...any) {
	l.s.log.Debug(fmt.Sprintf(format, args...), "component", "zk")
}

// call runs a ZooKeeper request under ctx. The client's requests take no
// context, so a request left behind on ctx's end still completes, or
// fails when the connection closes, in its own goroutine. A request the
// client never sent, for want of a server, is sent again, and so is one
// the server's throttler refused, after a backoff.
func call[T any](ctx context.Context, s *Session, f func() (T, error)) (T, error) {
	return callOr(ctx, s, f, nil)
}

// read is call for a request that changes nothing, which is also sent
// again when its reply is lost, after a pause: a connection closed under
// the session fails every request at once.
func read[T any](ctx context.Context, s *Session, f func() (T, error)) (T, error) {
	for {
		v, err := call(ctx, s, f)
		if !isLostReply(err) {
			return v, err
		}
		if err := pause(ctx, s); err != nil {
			return v, err
		}
	}
}

// callOr is call for a request that changes the server: if the caller
// stops waiting, late receives the request's eventual result, so that it
// can undo what the request did.
func callOr[T any](ctx context.Context, s *Session, f func() (T, error), late func(T, error)) (T, error) {
	var undo func(T, error)
	if late != nil {
		undo = func(v T, err error) { late(v, s.wrap(err)) }
	}
	backoff := 50 * time.Millisecond
	for {
		v, err := session.Await(ctx, s.ending, f, undo)
		if errors.Is(err, zk.ErrNoServer) {
			if err := pause(ctx, s); err != nil {
				return v, err
			}
			continue
		}
		if id := s.conn.SessionID(); id != s.id {
			// After an expiry the client opens a new session on its
			// own, and this request may have run on it.
			s.end(fmt.Errorf("%w: ZooKeeper session %#x expired (the client is on %#x)", turnstile.ErrLost, s.id, id))
			return v, s.Err()
		}
		if throttled(err) {
			// Refused before it was applied, for the server's load: sent
			// again after pauses that double up to a second, so that
			// load passes rather than fails a Lock or leaves a hold.
			if err := wait(ctx, s, backoff); err != nil {
				return v, err
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		return v, s.wrap(err)
	}
}

// throttled reports whether the server's request throttler refused a
// request (ZooKeeper's ZTHROTTLEDOP), which it does before applying it.
// The client knows no such error and reports the bare code.
func throttled(err error) bool {
	return err != nil && strings.HasSuffix(err.Error(), "unknown error: -127")
}

// pause waits a moment before a request is sent again, while the client
// looks for a server.
func pause(ctx context.Context, s *Session) error {
	return wait(ctx, s, 50*time.Millisecond)
}

// wait waits d, or until ctx or the session ends.
func wait(ctx context.Context, s *Session, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.Done():
		return s.Err()
	}
}

// wrap turns the client's session errors into turnstile's.
func (s *Session) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrSessionExpired):
		s.end(fmt.Errorf("%w: ZooKeeper session expired", turnstile.ErrLost))
		return s.Err()
	case errors.Is(err, zk.ErrClosing) && s.Err() != nil:
		return s.Err()
	}
	return refused(err)
}

// refused marks the server's refusals for want of credentials or of
// permission, keeping ZooKeeper's error for errors.Is.
func refused(err error) error {
	if errors.Is(err, zk.ErrNoAuth) || errors.Is(err, zk.ErrAuthFailed) {
		return fmt.Errorf("%w: %w", turnstile.ErrNotAuthorized, err)
	}
	return err
}

// Participants lists the queue of the lock, election or semaphore called
// name, holders first, in the server's order: every child node that is a
// contender, whichever client created it, with the identity it stored as
// its data, its czxid and its creation time. It reads the children and
// then each node, a request each.
func (s *Session) Participants(ctx context.Context, name string) ([]turnstile.Participant, error) {
	return recipe.Participants(ctx, backend{s}, name)
}
