package zklock

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
	"github.com/turnstile-go/turnstile/internal/recipe"
	"github.com/turnstile-go/turnstile/internal/session"
	"github.com/turnstile-go/turnstile/zklock/internal/znode"
)

// The recipe.Backend methods. A name is a znode whose children are the
// contenders, ours and other clients': ephemeral sequential nodes, ours
// named _c_<id>-<label><sequence> (package znode), where id is fresh for
// every join. The id makes each node's path unique for good, so deleting by
// path can never remove a later contender, and it lets a join whose reply
// was lost find its node again.

// backend is the Session as the recipes see it: its queue operations
// stay out of the Session's own method set, which is what users call.
type backend struct{ *Session }

func init() { recipe.Register(func(s *Session) recipe.Backend { return backend{s} }) }

// Join creates the contender node, learning its czxid in the same
// request, and reads the queue in the same round trip: the read is sent
// as soon as the create has been, and the server answers a session's
// requests in the order they arrive, so the read shows the new node. The
// client cannot tell when a request has gone out, only when it is about
// to, so a read that overtakes the create (1–2% of joins on this
// project's machines) misses the node, and the caller reads again. The
// parents' creation, the first time a name is used, adds round trips.
func (s backend) Join(ctx context.Context, name string, kind turnstile.Kind, label string, value []byte) (queue.Contender, []queue.Contender, error) {
	id := queue.NewID()
	r := s.readAfter(ctx, name)
	if r == nil {
		return queue.Contender{}, nil, s.Err()
	}
	node, err := s.create(ctx, name, id, label, value, r)
	q := r.result()
	if err != nil {
		return queue.Contender{}, nil, fmt.Errorf("zklock: join %s: %w", name, err)
	}
	self, _ := s.contender(name, node.path[len(name)+1:])
	self.Kind = kind // a label alone may not tell (a candidate named lock-)
	q = showing(q, self)
	if self.Token, err = s.czxid(ctx, node); err != nil {
		go s.discard(name, id, node.path, nil)
		return queue.Contender{}, nil, fmt.Errorf("zklock: join %s: %w", name, err)
	}
	return self, q, nil
}

// pipelinedRead is a read of a name's queue that goes out right after
// another request, in the same round trip: the server answers a
// session's requests in the order they arrive.
type pipelinedRead struct {
	ctx     context.Context
	sending chan struct{} // closed just before the other request
	sent    sync.Once
	answer  chan []queue.Contender
	got     sync.Once
	q       []queue.Contender
}

// readAfter starts a read of name's queue that goes out right after the
// request before which its send is called. It returns nil if the session
// has ended.
func (s *Session) readAfter(ctx context.Context, name string) *pipelinedRead {
	r := &pipelinedRead{ctx: ctx, sending: make(chan struct{}), answer: make(chan []queue.Contender, 1)}
	if !s.ending.Go(func() {
		<-r.sending
		if ctx.Err() != nil {
			r.answer <- nil // no one waits for it
			return
		}
		// Sent once, on the goroutine it already has: on any error the
		// caller reads again under its own ctx, so that a read no one
		// waits for is not sent again while the server is overloaded or
		// out of reach. A request the client has taken ends with the
		// connection, so the goroutine does not outlive the session.
		var q []queue.Contender
		if children, _, err := s.conn.Children(name); err == nil {
			q = s.queue(name, children)
		}
		r.answer <- q
	}) {
		return nil
	}
	return r
}

// send lets the read go; the request it follows is about to.
func (r *pipelinedRead) send() { r.sent.Do(func() { close(r.sending) }) }

// result returns the read's result, nil on error or once ctx ends,
// however often it is called.
func (r *pipelinedRead) result() []queue.Contender {
	r.got.Do(func() {
		r.send() // if the request was given up before it went
		select {
		case r.q = <-r.answer:
		case <-r.ctx.Done():
		}
	})
	return r.q
}

// showing returns q if it shows c, and nil otherwise: a read that
// overtook the request that made c, for the caller to read again.
func showing(q []queue.Contender, c queue.Contender) []queue.Contender {
	if !slices.ContainsFunc(q, func(o queue.Contender) bool { return o.Key == c.Key }) {
		return nil
	}
	return q
}

// czxid returns the czxid of a node made by createIn, reading it if the
// create did not tell it.
func (s *Session) czxid(ctx context.Context, node created) (int64, error) {
	if node.czxid != 0 {
		return node.czxid, nil
	}
	stat, err := s.stat(ctx, node.path)
	if err == nil && stat == nil {
		err = fmt.Errorf("%w: %s is no longer queued", turnstile.ErrLost, node.path)
	}
	if err != nil {
		return 0, err
	}
	return stat.Czxid, nil
}

// Promote creates self's node in name's queue, and deletes it from the
// waiting room, in one transaction whose stamp tells the new node's
// czxid (see createIn), and reads name's queue in the same round trip,
// as Join does. After a lost reply the new node is found by its id, as a
// join's is.
func (s backend) Promote(ctx context.Context, self queue.Contender, name string, value []byte) (queue.Contender, []queue.Contender, error) {
	id := znode.ID(path.Base(self.Key))
	own := name + "/" + znode.Own(id)
	leave := &zk.DeleteRequest{Path: self.Key, Version: -1}
	r := s.readAfter(ctx, name)
	if r == nil {
		return queue.Contender{}, nil, s.Err()
	}
	defer r.result() // on failure, the read is not needed, but must end
	for {
		node, err := callOr(ctx, s.Session, func() (created, error) {
			r.send()
			return s.createIn(name, own, queue.PermitLabel(int(self.Permits)), value, leave)
		}, func(c created, err error) { s.discard(name, id, c.path, err) })
		if isLostReply(err) {
			lostReply := err
			node.path, err = s.find(ctx, name, id)
			if err == nil && node.path == "" {
				if err = s.Check(ctx, self); err == nil {
					continue // the move never reached the server
				}
			}
			if err != nil {
				go s.discard(name, id, "", lostReply)
			}
		}
		if errors.Is(err, zk.ErrNoNode) {
			err = fmt.Errorf("%w: %s is no longer queued", turnstile.ErrLost, self.Key)
		}
		if err == nil {
			self, _ = s.contender(name, node.path[len(name)+1:])
			self.Kind = turnstile.Permit
			if self.Token, err = s.czxid(ctx, node); err != nil {
				go s.discard(name, id, node.path, nil)
			}
		}
		if err != nil {
			return queue.Contender{}, nil, fmt.Errorf("zklock: take a permit of %s: %w", name, err)
		}
		return self, showing(r.result(), self), nil
	}
}

// created is a contender node, with its czxid when the create told it.
type created struct {
	path  string
	czxid int64
}

// create makes the contender node, finding it again if the reply is lost,
// and makes the lock's parents if they are missing. It lets r go just
// before each create request.
func (s *Session) create(ctx context.Context, name, id, label string, value []byte, r *pipelinedRead) (created, error) {
	own := name + "/" + znode.Own(id)
	for {
		c, err := callOr(ctx, s, func() (created, error) { r.send(); return s.createIn(name, own, label, value) },
			func(c created, err error) { s.discard(name, id, c.path, err) })
		if isLostReply(err) {
			lostReply := err
			if c.path, err = s.find(ctx, name, id); err != nil {
				go s.discard(name, id, "", lostReply) // look again once it can
			} else if c.path == "" {
				continue // the create never reached the server
			} else {
				s.log.Debug("zklock: found its node after a lost reply", "node", c.path)
			}
		}
		if !errors.Is(err, zk.ErrNoNode) {
			return c, err
		}
		if err := s.makeParents(ctx, name); err != nil {
			return created{}, err
		}
	}
}

// createIn creates the ephemeral sequential node own+label under name, in
// one transaction with a stamp: a node of the session's own, created,
// written and deleted again. A transaction has one zxid, so the stamp's
// mzxid, which the write returns, is the contender's czxid: the fencing
// token comes without a request of its own. (The client drops the zxid
// of a create's reply, and cannot send ZooKeeper's create2, which returns
// it.) No one ever sees the stamp, and no other program's node is
// written; the parent's sequence counter moves by two per join instead
// of one. Where the session may not write its own nodes (an ACL that
// does not grant it WRITE), the node is created alone, and Join reads
// its czxid.
//
// Any further ops are applied in the same transaction.
func (s *Session) createIn(name, own, label string, value []byte, also ...any) (created, error) {
	const flags = zk.FlagEphemeral | zk.FlagSequence
	create := &zk.CreateRequest{Path: own + label, Data: value, Acl: s.acl, Flags: flags}
	if _, refused := s.stampRefused.Load(name); !refused {
		stamp := own + "stamp"
		res, err := s.conn.Multi(append([]any{create,
			&zk.CreateRequest{Path: stamp, Acl: s.acl, Flags: zk.FlagEphemeral},
			&zk.SetDataRequest{Path: stamp, Version: -1},
			&zk.DeleteRequest{Path: stamp, Version: -1}}, also...)...)
		if !errors.Is(err, zk.ErrNoAuth) {
			if err != nil {
				return created{}, err
			}
			return created{res[0].String, res[2].Stat.Mzxid}, nil
		}
		s.stampRefused.Store(name, true)
	}
	if len(also) == 0 {
		path, err := s.conn.Create(create.Path, value, flags, s.acl)
		return created{path: path}, err
	}
	res, err := s.conn.Multi(append([]any{create}, also...)...)
	if err != nil {
		return created{}, err
	}
	return created{path: res[0].String}, nil
}

// isLostReply reports whether a request may or may not have been applied:
// the connection went down with the request in flight.
func isLostReply(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrSessionMoved)
}

// find looks for the node a lost create may have made, and returns ""
// if there is none. The node must belong to this session: another
// session's node with the same id cannot exist, but a lookup that trusts
// only names would adopt one.
func (s *Session) find(ctx context.Context, name, id string) (string, error) {
	// The server the client reconnected to may not have applied the
	// create yet; a sync makes it catch up with the leader first.
	if _, err := read(ctx, s, func() (string, error) { return s.conn.Sync(name) }); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return "", err
	}
	children, err := read(ctx, s, func() ([]string, error) {
		c, _, err := s.conn.Children(name)
		return c, err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return "", nil
	}
	for _, child := range children {
		if _, ok := znode.Parse(child); !ok || !strings.HasPrefix(child, znode.Own(id)) {
			continue
		}
		path := name + "/" + child
		stat, err := s.stat(ctx, path)
		if err != nil || stat == nil || stat.EphemeralOwner != s.conn.SessionID() {
			return "", err
		}
		return path, nil
	}
	return "", err
}

// stat reads path's metadata, or nil if there is no such node.
func (s *Session) stat(ctx context.Context, path string) (*zk.Stat, error) {
	return read(ctx, s, func() (*zk.Stat, error) {
		ok, st, err := s.conn.Exists(path)
		if !ok {
			st = nil
		}
		return st, err
	})
}

// discard removes the node of a create whose caller stopped waiting for
// it, once its fate is known, so that an abandoned Lock leaves nothing:
// the node at path, or, after a lost reply, whichever the create made.
func (s *Session) discard(name, id, path string, err error) {
	lost := isLostReply(err)
	if err != nil && !lost {
		return // the create failed: there is nothing to remove
	}
	session.Cleanup(s.Done(), func(ctx context.Context) bool {
		node := path
		if lost {
			var err error
			if node, err = s.find(ctx, name, id); err != nil {
				return false
			}
		}
		if node == "" {
			return true
		}
		err := s.remove(ctx, node, false)
		return err == nil || errors.Is(err, turnstile.ErrLost)
	})
}

// makeParents creates name and whichever of its ancestors are missing as
// container nodes, which the server deletes once their last child is
// gone. It climbs from name only as far as the nearest existing
// ancestor: ZooKeeper checks a create against the parent's ACL before it
// looks whether the node exists, so creating an existing ancestor could
// be refused where the session has no business (another team's part of
// the tree). One request when only name is missing.
func (s *Session) makeParents(ctx context.Context, name string) error {
	for {
		// Sent again if its reply is lost, as a read is: a second create
		// finds the node there, which is success too.
		_, err := read(ctx, s, func() (string, error) { return s.conn.CreateContainer(name, nil, zk.FlagContainer, s.acl) })
		switch {
		case err == nil || errors.Is(err, zk.ErrNodeExists):
			return nil
		case !errors.Is(err, zk.ErrNoNode):
			return fmt.Errorf("zklock: create lock directory %s: %w", name, err)
		}
		// The root always exists, so a missing parent is not the root.
		if err := s.makeParents(ctx, path.Dir(name)); err != nil {
			return err
		}
	}
}

// Queue reads the children of name: one request.
func (s backend) Queue(ctx context.Context, name string) ([]queue.Contender, error) {
	children, err := read(ctx, s.Session, func() ([]string, error) {
		c, _, err := s.conn.Children(name)
		return c, err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("zklock: read queue %s: %w", name, err)
	}
	return s.queue(name, children), nil
}

// queue reads name's children as its queue, in the server's order.
func (s *Session) queue(name string, children []string) []queue.Contender {
	q := s.contenders(name, children)
	znode.Sort(q)
	return q
}

// contenders reads name's children as contenders, leaving out the others.
func (s *Session) contenders(name string, children []string) []queue.Contender {
	q := make([]queue.Contender, 0, len(children))
	for _, child := range children {
		if c, ok := s.contender(name, child); ok {
			q = append(q, c)
		}
	}
	return q
}

// AwaitRoom reads name's children, first without a watch, so that a
// semaphore with room left leaves no watch behind; then with one, after
// each change, until they leave room.
func (s backend) AwaitRoom(ctx context.Context, name string, fits func([]queue.Contender) bool, wait bool) (bool, error) {
	for watch := false; ; {
		type res struct {
			children []string
			ch       <-chan zk.Event
		}
		r, err := read(ctx, s.Session, func() (res, error) {
			if !watch {
				c, _, err := s.conn.Children(name)
				return res{children: c}, err
			}
			c, _, ch, err := s.conn.ChildrenW(name)
			return res{c, ch}, err
		})
		if errors.Is(err, zk.ErrNoNode) {
			r, err = res{}, nil // no holders; nor, then, a watch
		}
		if err != nil {
			return false, fmt.Errorf("zklock: read queue %s: %w", name, err)
		}
		if fits(s.contenders(name, r.children)) {
			return true, nil
		}
		if !wait {
			return false, nil
		}
		if watch = !watch; watch {
			continue
		}
		select {
		case ev := <-r.ch:
			if ev.Type == zk.EventNotWatching {
				return false, s.wrap(cmpErr(ev.Err, zk.ErrClosing))
			}
		case <-ctx.Done():
			return false, ctx.Err()
		case <-s.Done():
			return false, s.Err()
		}
	}
}

// Value reads c's node data and stat: one request.
func (s backend) Value(ctx context.Context, c queue.Contender) (recipe.Entry, bool, error) {
	type res struct {
		e      recipe.Entry
		queued bool
	}
	r, err := read(ctx, s.Session, func() (res, error) {
		data, stat, err := s.conn.Get(c.Key)
		if errors.Is(err, zk.ErrNoNode) || err != nil {
			return res{}, err
		}
		return res{recipe.Entry{Value: data, Token: stat.Czxid, Since: time.UnixMilli(stat.Ctime), Client: znode.Client(path.Base(c.Key))}, true}, nil
	})
	if errors.Is(err, zk.ErrNoNode) {
		return recipe.Entry{}, false, nil
	}
	if err != nil {
		return recipe.Entry{}, false, fmt.Errorf("zklock: read %s: %w", c.Key, err)
	}
	return r.e, r.queued, nil
}

// AwaitJoin watches name's children, or name's creation while it does
// not exist, until a contender is among them. The watch is the session's,
// shared by every AwaitJoin on name until it fires: the client keeps a
// channel per watch set until its event, and cannot ask the server to
// remove one, so that waits given up on a name no one joins would
// otherwise pile up; shared, they cost one channel and one server watch
// per name, whatever their number. A waiter that finds the watch already
// set reads without setting another: the watch was set before that read,
// so any change the read misses fires it.
func (s backend) AwaitJoin(ctx context.Context, name string) error {
	for {
		type res struct {
			joined bool
			ch     <-chan zk.Event
		}
		pending := s.joinWatch(name)
		r, err := read(ctx, s.Session, func() (res, error) {
			children, ch, err := s.children(name, pending == nil)
			joined := slices.ContainsFunc(children, func(child string) bool {
				_, ok := s.contender(name, child)
				return ok
			})
			return res{joined, ch}, err
		})
		if err != nil {
			return fmt.Errorf("zklock: watch queue %s: %w", name, err)
		}
		if r.ch != nil {
			s.joinWatches.Store(name, r.ch)
		}
		if r.joined {
			return nil
		}
		if pending == nil {
			if pending = r.ch; pending == nil {
				continue // name was created between two reads
			}
		}
		select {
		case <-pending:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.Done():
			return s.Err()
		}
	}
}

// joinWatch returns the session's watch for AwaitJoin on name, or nil if
// there is none, or it has fired.
func (s *Session) joinWatch(name string) <-chan zk.Event {
	v, ok := s.joinWatches.Load(name)
	if !ok {
		return nil
	}
	ch := v.(<-chan zk.Event)
	select {
	case <-ch: // fired: the client closes the channel after its one event
		s.joinWatches.CompareAndDelete(name, v)
		return nil
	default:
		return ch
	}
}

// children reads name's children, and with watch set a watch on them, or
// on name's creation while it does not exist.
func (s *Session) children(name string, watch bool) ([]string, <-chan zk.Event, error) {
	if !watch {
		children, _, err := s.conn.Children(name)
		if errors.Is(err, zk.ErrNoNode) {
			err = nil
		}
		return children, nil, err
	}
	children, _, ch, err := s.conn.ChildrenW(name)
	if errors.Is(err, zk.ErrNoNode) {
		var exists bool
		exists, _, ch, err = s.conn.ExistsW(name)
		if exists {
			return nil, nil, nil // created meanwhile: read its children
		}
	}
	return children, ch, err
}

func (s *Session) contender(name, child string) (queue.Contender, bool) {
	c, ok := znode.Parse(child)
	c.Key = name + "/" + child
	return c, ok
}

// exitWatch is a data watch on a contender's node, the only watch a
// waiter keeps, shared by every AwaitExit of the session on that node
// until it fires. The client keeps a channel for each watch set until it
// fires, and cannot remove one, so that waits given up one after another
// on a long hold would otherwise pile them up. A data watch, unlike an
// exists watch, is not left on the server when the node is gone already:
// a watch for the node's creation would outlive the queue.
type exitWatch struct {
	ch    <-chan zk.Event // the client's: one event, then closed
	fired chan struct{}   // closed once ev is set
	ev    zk.Event
}

// watchExit returns the session's watch on path, setting one if there is
// none, or nil if there is no node at path. A watch already set was set
// while the node was there, so any change since fires it, and reusing it
// takes no request.
func (s *Session) watchExit(ctx context.Context, path string) (*exitWatch, error) {
	if v, ok := s.exitWatches.Load(path); ok {
		select {
		case <-v.(*exitWatch).fired: // dropped by whoever took its event
		default:
			return v.(*exitWatch), nil
		}
	}
	ch, err := read(ctx, s, func() (<-chan zk.Event, error) {
		_, _, ch, err := s.conn.GetW(path)
		if errors.Is(err, zk.ErrNoNode) {
			return nil, nil
		}
		return ch, err
	})
	if err != nil || ch == nil {
		return nil, err
	}
	w := &exitWatch{ch: ch, fired: make(chan struct{})}
	// One set meanwhile stays shared; this one serves this wait.
	if _, shared := s.exitWatches.LoadOrStore(path, w); !shared {
		if n := s.exitCount.Add(1); n >= max(s.exitPrune.Load(), exitPruneAt) {
			s.pruneExits()
		}
	}
	return w, nil
}

// exitPruneAt is the fewest watches at which pruneExits runs.
const exitPruneAt = 16

// pruneExits retires the watches that fired while no one waited on them:
// the waits on them were all given up before their node went, and they
// would otherwise stay for the session's life, one for every hold that
// a given-up Lock waited behind. It runs each time the watches have
// doubled since it last ran, so that its work is a constant per watch.
func (s *Session) pruneExits() {
	s.exitWatches.Range(func(path, v any) bool {
		w := v.(*exitWatch)
		select {
		case ev, ok := <-w.ch:
			w.took(s, path.(string), ev, ok)
		default:
		}
		return true
	})
	s.exitPrune.Store(max(2*s.exitCount.Load(), exitPruneAt))
}

// dropExit removes w, the watch on path, from the session's.
func (s *Session) dropExit(path string, w *exitWatch) {
	if s.exitWatches.CompareAndDelete(path, w) {
		s.exitCount.Add(-1)
	}
}

// took handles a receive from w.ch: whoever gets the event keeps it for
// every waiter and retires the watch; the others find the channel closed.
func (w *exitWatch) took(s *Session, path string, ev zk.Event, ok bool) {
	if ok {
		w.ev = ev
		s.dropExit(path, w)
		close(w.fired)
	}
}

// event waits for w's event, until ctx or the session ends.
func (w *exitWatch) event(ctx context.Context, s *Session, path string) (zk.Event, error) {
	select {
	case ev, ok := <-w.ch:
		w.took(s, path, ev, ok)
	case <-w.fired:
	case <-ctx.Done():
		return zk.Event{}, ctx.Err()
	case <-s.Done():
		return zk.Event{}, s.Err()
	}
	select {
	case <-w.fired:
		return w.ev, nil
	case <-ctx.Done():
		return zk.Event{}, ctx.Err()
	case <-s.Done():
		return zk.Event{}, s.Err()
	}
}

// AwaitExit watches c's node alone: one request, then one notification,
// and no request when the session already watches the node. A marked
// Leave writes the node's data in the transaction that deletes it, so the
// watch sees the write first; a session's end, or another client's
// delete, only the deletion.
func (s backend) AwaitExit(ctx context.Context, c queue.Contender) (recipe.Exit, error) {
	for exit := recipe.Gone; ; exit = recipe.Deleted {
		w, err := s.watchExit(ctx, c.Key)
		if err != nil || w == nil {
			return exit, err
		}
		ev, err := w.event(ctx, s.Session, c.Key)
		if err != nil {
			return 0, err
		}
		switch ev.Type {
		case zk.EventNodeDeleted:
			return recipe.Deleted, nil
		case zk.EventNodeDataChanged:
			return recipe.Released, nil
		case zk.EventNotWatching:
			return 0, s.wrap(cmpErr(ev.Err, zk.ErrClosing))
		}
		// Any other event: look again.
	}
}

// HowLeft cannot tell: ZooKeeper keeps nothing of a deleted node.
func (s backend) HowLeft(context.Context, queue.Contender) (recipe.Exit, error) {
	return recipe.Gone, nil
}

func cmpErr(err, fallback error) error {
	if err == nil {
		return fallback
	}
	return err
}

// Check reads self's node: one request.
func (s backend) Check(ctx context.Context, self queue.Contender) error {
	stat, err := s.stat(ctx, self.Key)
	switch {
	case err != nil:
		return err
	case stat == nil:
		return fmt.Errorf("%w: %s was deleted", turnstile.ErrLost, self.Key)
	case stat.EphemeralOwner != s.id:
		return fmt.Errorf("%w: %s belongs to session %#x", turnstile.ErrLost, self.Key, stat.EphemeralOwner)
	}
	return nil
}

// Gone reads nodes of cs, goneReads at most, a request each: reads that
// the server answers alone. (A multi of version checks would take one
// request, but ZooKeeper logs and replicates it as a write.) The bound
// keeps what a session costs the server per second flat however many
// locks it holds: past it, each call reads the goneReads nodes that
// follow, in key order, the last one the previous call read, so that a
// node is read at least once in every ⌈len(cs)/goneReads⌉ calls.
func (s backend) Gone(ctx context.Context, cs []queue.Contender) ([]queue.Contender, error) {
	if len(cs) > goneReads {
		slices.SortFunc(cs, func(a, b queue.Contender) int { return strings.Compare(a.Key, b.Key) })
		next, _ := slices.BinarySearchFunc(cs, s.swept, func(c queue.Contender, key string) int {
			if c.Key <= key {
				return -1
			}
			return 1
		})
		cs = append(cs[next:len(cs):len(cs)], cs[:next]...)[:goneReads]
	}
	var gone []queue.Contender
	for i, c := range cs {
		stat, err := s.stat(ctx, c.Key)
		if err != nil {
			// What was read counts, and the next call goes on from
			// there: on a slow link ctx ends partway every time.
			if i == 0 {
				return nil, err
			}
			break
		}
		s.swept = c.Key
		if stat == nil || stat.EphemeralOwner != s.id {
			gone = append(gone, c)
		}
	}
	return gone, nil
}

// goneReads is the most reads one Gone makes.
const goneReads = 64

// Tracker returns the session's tracker of its contenders.
func (s backend) Tracker() *recipe.Tracker { return &s.tracker }

// Leave deletes self's node, marked with a write of its data in the
// same transaction: one request either way. A delete that finds the node
// gone after an earlier attempt whose outcome is unknown (a lost reply,
// or a caller that stopped waiting) counts as success, since that
// attempt may have deleted it.
//
// Where the session may not write its own nodes (an ACL without WRITE, as
// createIn finds), the mark is refused, and the node is deleted unmarked:
// a contender behind it with a lock-delay then waits it.
func (s backend) Leave(ctx context.Context, self queue.Contender, retried, marked bool) error {
	name := path.Dir(self.Key)
	if _, refused := s.stampRefused.Load(name); refused || !marked {
		return s.remove(ctx, self.Key, retried)
	}
	return s.removeWith(ctx, self.Key, retried, func() error {
		_, err := s.conn.Multi(&zk.SetDataRequest{Path: self.Key, Version: -1}, &zk.DeleteRequest{Path: self.Key, Version: -1})
		if errors.Is(err, zk.ErrNoAuth) {
			s.stampRefused.Store(name, true)
			err = s.conn.Delete(self.Key, -1)
		}
		return err
	})
}

func (s *Session) remove(ctx context.Context, path string, retried bool) error {
	return s.removeWith(ctx, path, retried, func() error { return s.conn.Delete(path, -1) })
}

// removeWith runs del, which deletes path, until it has an answer.
func (s *Session) removeWith(ctx context.Context, path string, retried bool, del func() error) error {
	for {
		_, err := call(ctx, s, func() (struct{}, error) { return struct{}{}, del() })
		switch {
		case err == nil || retried && errors.Is(err, zk.ErrNoNode):
			return nil
		case errors.Is(err, zk.ErrNoNode):
			return fmt.Errorf("%w: %s was deleted by someone else", turnstile.ErrLost, path)
		case !isLostReply(err):
			return fmt.Errorf("zklock: delete %s: %w", path, err)
		}
		retried = true
		if err := pause(ctx, s); err != nil {
			return err
		}
	}
}
