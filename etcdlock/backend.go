package etcdlock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
	"github.com/turnstile-go/turnstile/internal/recipe"
	"github.com/turnstile-go/turnstile/internal/session"
)

// The recipe.Backend methods. A name's contenders are the keys directly
// under name/, ordered by create revision, which is also their fencing
// token: ours, name/kind-id attached to the session's lease, and any other
// client's, such as etcd's concurrency.Mutex and Election and etcdctl lock
// and elect, which name theirs by lease and wait for ours in turn. A put is
// conditional on the key being absent, so a retried put cannot land twice,
// and a delete is guarded by the key's create revision, so it cannot
// remove a later contender.
//
// A session puts the same keys again (keySlots): etcd keeps every key
// ever put under a name in its index until it compacts, and each queue
// read visits them all, so a key per Lock made a lock's every Lock slower
// on an etcd that never compacts, and the server's apply loop with it.

// backend is the Session as the recipes see it: its queue operations
// stay out of the Session's own method set, which is what users call.
type backend struct{ *Session }

func init() { recipe.Register(func(s *Session) recipe.Backend { return backend{s} }) }

// writeTimeout bounds a write that carries on after its caller stopped
// waiting, so that its outcome is known before it is undone.
const writeTimeout = 30 * time.Second

// writeWindow is how long writes share one context (writeContexts).
const writeWindow = time.Second

// writeContexts gives every write a context that ends with the session or
// between writeTimeout and writeTimeout+writeWindow after the write began.
// Writes begun within one writeWindow share a context: a context, timer
// and deadline of its own for each write made 19 of an uncontended
// Lock+Unlock's 330 allocations, and a deadline travels to the server as
// a timeout that it sets a timer for too.
type writeContexts struct{ current atomic.Pointer[writeContext] }

type writeContext struct {
	ctx   context.Context
	until time.Time // when writes stop taking this one
}

func (w *writeContexts) context(session context.Context) context.Context {
	now := time.Now()
	if c := w.current.Load(); c != nil && now.Before(c.until) {
		return c.ctx
	}
	// Writes that race here make one each: each still ends in time.
	ctx, cancel := context.WithCancel(session)
	time.AfterFunc(writeTimeout+writeWindow, cancel)
	w.current.Store(&writeContext{ctx: ctx, until: now.Add(writeWindow)})
	return ctx
}

// Join puts the contender key and reads what the queue rules need in one
// transaction: one round trip. The put is conditional on the key being
// new, so that a retry after a lost reply finds the first put instead of
// making a second key.
func (s backend) Join(ctx context.Context, name string, kind turnstile.Kind, label string, value []byte) (queue.Contender, []queue.Contender, error) {
	prefix := name + "/"
	word := queue.Word(kind, 0)
	if kind == turnstile.Permit {
		word = strings.TrimSuffix(label, "-") // PermitLabel's
	}
	key := s.keys.take(prefix, word)
	// A shared contender must see every exclusive one ahead of it; the
	// others need only their predecessor, and are first without one. The
	// newest two, with etcd's word on whether there are more, tell also
	// whether the predecessor is the last one ahead (joinedQueue).
	// Each read visits every key under the prefix that etcd has not yet
	// compacted away, so one read is worth saving.
	var read clientv3.Op
	if kind == turnstile.Shared {
		read = clientv3.OpGet(prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	} else {
		read = clientv3.OpGet(prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(2))
	}
	then := []clientv3.Op{clientv3.OpPut(key, string(value), clientv3.WithLease(s.lease)), read}
	// The write runs on the session's context (retry), so ctx needs no
	// binding to the session.
	resp, err := retry(ctx, s.Session, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(then...).Else(clientv3.OpGet(key)).Commit()
	}, func() { s.discard(key) })
	if err != nil {
		return queue.Contender{}, nil, fmt.Errorf("etcdlock: join %s: %w", name, err)
	}
	s.saw(resp.Header.Revision)
	self := queue.Contender{Key: key, Kind: kind, Seq: resp.Header.Revision}
	var q []queue.Contender
	if resp.Succeeded {
		q = joinedQueue(kind, prefix, resp.Responses[1])
	} else {
		// An earlier attempt put the key and its reply was lost.
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 || clientv3.LeaseID(kvs[0].Lease) != s.lease {
			return queue.Contender{}, nil, fmt.Errorf("etcdlock: join %s: %s is not this session's", name, key)
		}
		s.log.Debug("etcdlock: found its key after a lost reply", "key", key)
		self.Seq = kvs[0].CreateRevision
	}
	self.Token = self.Seq
	return self, q, nil
}

// joinedQueue turns the join's read into the queue, in create order, when
// the read holds the whole queue: every key under the prefix, each a
// contender. Otherwise it returns nil, for the caller to read the whole
// queue: a predecessor with more keys before it does not tell whether it
// is the last one ahead, nor does a read holding a key that is not a
// contender. Two contenders taking turns join behind the holder alone,
// and so wait with no read of their own.
func joinedQueue(kind turnstile.Kind, prefix string, read *pb.ResponseOp) []queue.Contender {
	r := read.GetResponseRange()
	if r.GetMore() {
		return nil
	}
	q := make([]queue.Contender, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		c, ok := parse(kv, prefix)
		if !ok {
			return nil
		}
		q = append(q, c)
	}
	if kind != turnstile.Shared {
		slices.Reverse(q) // read newest first
	}
	return q
}

// parse reads a contender from a key under prefix: every key directly
// under it is one, whoever put it there, exclusive unless it is a
// turnstile reader's or candidate's, and unless it is a turnstile key a
// marked Leave has released. Keys of nested names (prefix a/b)
// are other queues.
func parse(kv *mvccpb.KeyValue, prefix string) (queue.Contender, bool) {
	key := string(kv.Key)
	node, ok := strings.CutPrefix(key, prefix)
	if !ok || strings.Contains(node, "/") {
		return queue.Contender{}, false
	}
	kind, permits, _, ours := queue.ParseNode(node)
	if ours && kv.Version > 1 {
		// Put again: marked by its Leave, released, its delete on the
		// way (see marked).
		return queue.Contender{}, false
	}
	if !ours {
		kind = turnstile.Exclusive
	}
	return queue.Contender{Key: key, Kind: kind, Permits: int32(permits), Seq: kv.CreateRevision, Token: kv.CreateRevision}, true
}

// client tells which client put key, a contender's.
func client(key string) string {
	node := key[strings.LastIndexByte(key, '/')+1:]
	if _, _, _, ours := queue.ParseNode(node); ours {
		return queue.Turnstile
	}
	// etcd's concurrency package, and etcdctl through it, name a key by
	// its lease's id in hex.
	if node != "" && strings.Trim(node, "0123456789abcdef") == "" {
		return queue.EtcdConcurrency
	}
	return ""
}

// Queue reads the name's keys in create order: one round trip. The read
// is serializable, served by whichever member the client reaches without
// a consensus round: a contender only needs a view no older than what it
// has already seen (its own key, the exit it was told of), since later
// changes can only remove contenders ahead of it or add ones behind. A
// view older than that is read again, linearizably.
func (s backend) Queue(ctx context.Context, name string) ([]queue.Contender, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.Err(); err != nil {
		return nil, err
	}
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)}
	resp, err := s.get(ctx, name+"/", append(opts, clientv3.WithSerializable())...)
	if err == nil && resp.Header.Revision < s.seen.Load() {
		resp, err = s.get(ctx, name+"/", opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("etcdlock: read queue %s: %w", name, err)
	}
	s.saw(resp.Header.Revision)
	q := make([]queue.Contender, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if c, ok := parse(kv, name+"/"); ok {
			q = append(q, c)
		}
	}
	return q, nil
}

// AwaitRoom reads name's keys, first without a watch; then, while they
// leave no room, it watches their deletes from the current revision, all
// but the waiting room's, so that arrivals there wake no one, and reads
// them again after each.
func (s backend) AwaitRoom(ctx context.Context, name string, fits func([]queue.Contender) bool, wait bool) (bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	prefix := name + "/"
	var w *roomWatch
	defer func() {
		if w != nil {
			w.cancel()
		}
	}()
	// The holders, without the waiters, in one read.
	read := holdersRead(prefix)
	for {
		resp, err := ask(ctx, s.Session, func(ctx context.Context) (*clientv3.TxnResponse, error) {
			return s.cli.Txn(ctx).Then(read...).Commit()
		})
		if err != nil {
			return false, fmt.Errorf("etcdlock: read queue %s: %w", name, err)
		}
		s.saw(resp.Header.Revision)
		var holders []queue.Contender
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				if c, ok := parse(kv, prefix); ok {
					holders = append(holders, c)
				}
			}
		}
		if fits(holders) {
			return true, nil
		}
		if !wait {
			return false, nil
		}
		if w == nil {
			// Watches started at an older revision would be caught up
			// only every 100 ms. These start now, and the read that
			// follows their creation shows any change before.
			w = s.watchRoom(ctx, prefix)
		}
		if err := w.next(ctx, s.Session); err != nil {
			return false, err
		}
		if w.ended {
			w.cancel()
			w = nil
		}
	}
}

// roomWatch watches a semaphore's holders: the keys under its name's
// prefix on either side of its waiting room's.
type roomWatch struct {
	chans   [2]clientv3.WatchChan
	created int
	ended   bool // a watch ended without a verdict: start again
	cancel  context.CancelFunc
}

func (s *Session) watchRoom(ctx context.Context, prefix string) *roomWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &roomWatch{cancel: cancel}
	// Only a delete makes room: a put is the first waiter's own move, or
	// a contender of another recipe joining.
	for i, r := range holderRanges(prefix) {
		w.chans[i] = s.cli.Watch(ctx, r[0], clientv3.WithRange(r[1]), clientv3.WithCreatedNotify(), clientv3.WithFilterPut())
	}
	return w
}

// next waits until both watches are created, or for the next change
// after that, or for a watch's end.
func (w *roomWatch) next(ctx context.Context, s *Session) error {
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case resp, ok = <-w.chans[0]:
		case resp, ok = <-w.chans[1]:
		case <-s.Done():
			return s.Err()
		case <-ctx.Done():
			return s.errOr(ctx, nil)
		}
		if err := s.errOr(ctx, nil); err != nil {
			return err
		}
		if !ok || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			w.ended = true
			return nil
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("etcdlock: watch queue: %w", refused(err))
		}
		if resp.Created {
			if w.created++; w.created == len(w.chans) {
				return nil
			}
			continue
		}
		if len(resp.Events) > 0 && w.created == len(w.chans) {
			return nil
		}
	}
}

// Promote puts self's key among name's keys and deletes it from the
// waiting room in one transaction, guarded by self's create revision and
// by self's key never having been put again (every reader then takes it
// for released, see parse, and the waiter behind for the first), which
// reads name's keys after the move too: one round trip. The new key's
// create revision is its token.
func (s backend) Promote(ctx context.Context, self queue.Contender, name string, value []byte) (queue.Contender, []queue.Contender, error) {
	prefix := name + "/"
	key := s.keys.take(prefix, queue.Word(turnstile.Permit, int(self.Permits)))
	then := append([]clientv3.Op{
		clientv3.OpPut(key, string(value), clientv3.WithLease(s.lease)),
		clientv3.OpDelete(self.Key),
	}, holdersRead(prefix, clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))...)
	resp, err := retry(ctx, s.Session, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(self.Key), "=", self.Seq),
			clientv3.Compare(clientv3.Version(self.Key), "=", 1),
			clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
		).Then(then...).Else(clientv3.OpGet(key)).Commit()
	}, func() { s.discard(key) })
	if err != nil {
		return queue.Contender{}, nil, fmt.Errorf("etcdlock: take a permit of %s: %w", name, err)
	}
	s.saw(resp.Header.Revision)
	held := queue.Contender{Key: key, Kind: turnstile.Permit, Permits: self.Permits, Seq: resp.Header.Revision}
	var q []queue.Contender
	if resp.Succeeded {
		// Two ranges, each in create order: merged, the queue.
		for _, r := range resp.Responses[2:] {
			for _, kv := range r.GetResponseRange().Kvs {
				if c, ok := parse(kv, prefix); ok {
					q = append(q, c)
				}
			}
		}
		slices.SortFunc(q, func(a, b queue.Contender) int { return cmp.Compare(a.Seq, b.Seq) })
	} else {
		// An earlier attempt moved self and its reply was lost, or self
		// is gone.
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 || clientv3.LeaseID(kvs[0].Lease) != s.lease {
			s.keys.give(key)
			return queue.Contender{}, nil, fmt.Errorf("%w: %s is no longer queued", turnstile.ErrLost, self.Key)
		}
		held.Seq = kvs[0].CreateRevision
	}
	s.keys.give(self.Key) // surely gone
	held.Token = held.Seq
	return held, q, nil
}

// holdersRead reads the keys of a semaphore's name on either side of its
// waiting room's: its holders, and any other contender, not its waiters.
func holdersRead(prefix string, opts ...clientv3.OpOption) []clientv3.Op {
	var read []clientv3.Op
	for _, r := range holderRanges(prefix) {
		read = append(read, clientv3.OpGet(r[0], append([]clientv3.OpOption{clientv3.WithRange(r[1]), clientv3.WithKeysOnly()}, opts...)...))
	}
	return read
}

// holderRanges are the key ranges, [start, end), of a semaphore's name
// on either side of its waiting room's, which its holders' reads and
// watches share.
func holderRanges(prefix string) [2][2]string {
	room := prefix + recipe.WaitingRoom
	return [2][2]string{{prefix, room + "/"}, {room + "0", clientv3.GetPrefixRangeEnd(prefix)}}
}

// Value reads c's key: one round trip.
func (s backend) Value(ctx context.Context, c queue.Contender) (recipe.Entry, bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	g, err := s.get(ctx, c.Key)
	if err != nil {
		return recipe.Entry{}, false, fmt.Errorf("etcdlock: read %s: %w", c.Key, err)
	}
	s.saw(g.Header.Revision)
	if len(g.Kvs) == 0 || g.Kvs[0].CreateRevision != c.Seq {
		return recipe.Entry{}, false, nil
	}
	return recipe.Entry{Value: g.Kvs[0].Value, Token: c.Seq, Client: client(c.Key)}, true, nil
}

// AwaitJoin reads name's keys, and if none is a contender watches the
// prefix from the revision after that read for the next put.
func (s backend) AwaitJoin(ctx context.Context, name string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	prefix := name + "/"
	for {
		g, err := s.get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return fmt.Errorf("etcdlock: read queue %s: %w", name, err)
		}
		s.saw(g.Header.Revision)
		for _, kv := range g.Kvs {
			if _, ok := parse(kv, prefix); ok {
				return nil
			}
		}
		if err := s.awaitPut(ctx, prefix, g.Header.Revision+1); err != nil {
			return err
		}
	}
}

// awaitPut returns once a key under prefix is put at rev or later, or
// the watch ends without a verdict.
func (s *Session) awaitPut(ctx context.Context, prefix string, rev int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithFilterDelete())
	select {
	case <-events: // a put, or a watch that ended: read again
		return s.errOr(ctx, nil)
	case <-s.Done():
		return s.Err()
	case <-ctx.Done():
		return s.errOr(ctx, nil)
	}
}

// AwaitExit watches c's key alone. The watch starts at the current
// revision, once created, and then a read checks that c is still there:
// a watch started at an older revision would join the server's unsynced
// watchers, which are caught up only every 100 ms, and that delay would
// fall on every hand-off. A marked Leave writes a turnstile key once more
// before it deletes it, which the deleted key's last version shows.
func (s backend) AwaitExit(ctx context.Context, c queue.Contender) (recipe.Exit, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	for first := true; ; first = false {
		exit, err := s.awaitDelete(ctx, c, 0)
		if exit == recipe.Gone && !first {
			exit = recipe.Deleted // gone while watched, between two watches
		}
		if exit != 0 || err != nil {
			return exit, err
		}
		// The watch ended without a verdict, as after a reconnection
		// past a compaction: watch again.
	}
}

// awaitDelete runs one watch for c's deletion, and reports how c left,
// or 0 with no error if the watch ends first. It watches from revision
// from, or, if from is 0, from the current one, and then reads c to see
// whether it had already gone.
func (s *Session) awaitDelete(ctx context.Context, c queue.Contender, from int64) (recipe.Exit, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Puts too: a marked Leave's put is its release.
	opts := []clientv3.OpOption{clientv3.WithCreatedNotify(), clientv3.WithPrevKV()}
	if from > 0 {
		opts = append(opts, clientv3.WithRev(from))
	}
	events := s.cli.Watch(wctx, c.Key, opts...)
	for created := from > 0; ; {
		select {
		case resp, ok := <-events:
			if err := s.errOr(ctx, nil); err != nil {
				return 0, err
			}
			if !ok || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				return 0, nil
			}
			if err := resp.Err(); err != nil {
				return 0, fmt.Errorf("etcdlock: watch %s: %w", c.Key, refused(err))
			}
			if resp.Created && !created {
				created = true
				// Every delete after this revision will be seen; one
				// before it shows in this read.
				g, err := s.get(ctx, c.Key)
				if err != nil {
					return 0, err
				}
				s.saw(g.Header.Revision)
				if len(g.Kvs) == 0 || g.Kvs[0].CreateRevision != c.Seq {
					return recipe.Gone, nil
				}
				if marked(g.Kvs[0], c.Key) {
					return recipe.Released, nil
				}
			}
			for _, ev := range resp.Events {
				switch {
				case ev.Type == clientv3.EventTypeDelete:
					s.saw(ev.Kv.ModRevision)
					if marked(ev.PrevKv, c.Key) {
						return recipe.Released, nil
					}
					return recipe.Deleted, nil
				case marked(ev.Kv, c.Key):
					s.saw(ev.Kv.ModRevision)
					return recipe.Released, nil
				}
			}
		case <-s.Done():
			return 0, s.Err()
		case <-ctx.Done():
			return 0, s.errOr(ctx, nil)
		}
	}
}

// HowLeft watches c's key from the revision after its creation: the
// first delete since is c's, with its last state. A watch from the past
// is caught up within 100 ms; one past a compaction cannot tell.
func (s backend) HowLeft(ctx context.Context, c queue.Contender) (recipe.Exit, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	exit, err := s.awaitDelete(ctx, c, c.Seq+1)
	if exit == 0 && err == nil {
		exit = recipe.Gone
	}
	return exit, err
}

// marked reports whether kv, a key's state (the last, of a deleted key),
// shows the write of a marked Leave: a turnstile key is put once when it
// joins, and again only by that write, which is the release; its delete
// follows.
func marked(prev *mvccpb.KeyValue, key string) bool {
	if prev == nil || prev.Version < 2 {
		return false
	}
	_, _, _, ours := queue.ParseNode(key[strings.LastIndexByte(key, '/')+1:])
	return ours
}

// errOr returns the reason a call failed: the session's end, ctx's end,
// or err.
func (s *Session) errOr(ctx context.Context, err error) error {
	if cause := s.Err(); cause != nil {
		return cause
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return refused(err)
}

// refused marks the server's refusals for want of credentials or of
// permission on a key, keeping etcd's error for errors.Is. A client
// whose password no longer works is refused when it renews its token.
func refused(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrPermissionDenied), errors.Is(err, rpctypes.ErrUserEmpty),
		errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrInvalidAuthToken):
		return fmt.Errorf("%w: %w", turnstile.ErrNotAuthorized, err)
	}
	return err
}

// Check reads self's key: one round trip.
func (s backend) Check(ctx context.Context, self queue.Contender) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	g, err := s.get(ctx, self.Key)
	if err != nil {
		return err
	}
	s.saw(g.Header.Revision)
	if len(g.Kvs) == 0 || g.Kvs[0].CreateRevision != self.Seq {
		return fmt.Errorf("%w: %s was deleted", turnstile.ErrLost, self.Key)
	}
	return nil
}

// Gone reads the keys attached to the session's lease: one round trip.
func (s backend) Gone(ctx context.Context, cs []queue.Contender) ([]queue.Contender, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := ask(ctx, s.Session, func(ctx context.Context) (*clientv3.LeaseTimeToLiveResponse, error) {
		return s.cli.TimeToLive(ctx, s.lease, clientv3.WithAttachedKeys())
	})
	if err != nil {
		return nil, err
	}
	if resp.TTL <= 0 {
		return nil, nil // the lease has expired: the session's end, which keepAlive tells
	}
	attached := make(map[string]bool, len(resp.Keys))
	for _, k := range resp.Keys {
		attached[string(k)] = true
	}
	var gone []queue.Contender
	for _, c := range cs {
		if !attached[c.Key] {
			gone = append(gone, c)
		}
	}
	return gone, nil
}

// Tracker returns the session's tracker of its keys.
func (s backend) Tracker() *recipe.Tracker { return &s.tracker }

// Leave deletes self's key in a transaction guarded by its create
// revision: one round trip, and one more before it if marked, to put the
// key again as it is. A key found gone after an attempt whose outcome is
// unknown (a lost reply, an earlier Leave that failed) counts as deleted,
// since that attempt may have deleted it. A marked Leave that fails
// once it may have marked the key succeeds, and its delete goes on in
// the background: the mark already told the contender behind that the
// hold was released.
func (s backend) Leave(ctx context.Context, self queue.Contender, retried, marked bool) error {
	if err := s.Err(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err // nothing sent, and so nothing to finish
	}
	if marked {
		_, err := retry(ctx, s.Session, func(ctx context.Context) (*clientv3.TxnResponse, error) {
			return s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(self.Key), "=", self.Seq)).
				Then(clientv3.OpPut(self.Key, "", clientv3.WithIgnoreValue(), clientv3.WithIgnoreLease())).Commit()
		}, nil)
		var deleted bool
		if err == nil {
			deleted, err = s.remove(ctx, self.Key, self.Seq)
		}
		if err != nil && s.Err() == nil {
			// The mark may have landed, and a contender behind would
			// take the key's end, whenever it comes, for a release: the
			// release has begun, and the session finishes it.
			s.ending.Go(func() { s.discard(self.Key) })
			return nil
		}
		return s.left(self, deleted, retried, err)
	}
	deleted, err := s.remove(ctx, self.Key, self.Seq)
	return s.left(self, deleted, retried, err)
}

// left reports the outcome of a Leave's delete.
func (s backend) left(self queue.Contender, deleted, retried bool, err error) error {
	if err != nil {
		return fmt.Errorf("etcdlock: delete %s: %w", self.Key, err)
	}
	s.keys.give(self.Key)
	if !deleted && !retried {
		return fmt.Errorf("%w: %s was deleted by someone else", turnstile.ErrLost, self.Key)
	}
	return nil
}

// remove deletes key if it is still the one created at rev. It reports
// whether the key was deleted by this call, counting an earlier attempt
// whose reply was lost.
func (s *Session) remove(ctx context.Context, key string, rev int64) (bool, error) {
	var attempts atomic.Int32
	resp, err := retry(ctx, s, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		attempts.Add(1)
		return s.delete(ctx, key, rev)
	}, nil)
	if err != nil {
		return false, err
	}
	return resp.Succeeded || attempts.Load() > 1, nil
}

// delete deletes key if it is still the one created at rev: one attempt.
func (s *Session) delete(ctx context.Context, key string, rev int64) (*clientv3.TxnResponse, error) {
	return s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).Then(clientv3.OpDelete(key)).Commit()
}

// keySlots hands out the session's keys under each name: the same ones
// again, so that a name's history of keys grows with the sessions that
// used it, not with its Locks. A key is taken by a join and given back
// once it is surely gone; until then no other join of the session puts
// it, so a late put or delete of one contender never meets the next.
type keySlots struct {
	salt uint64 // random per session, so that no two sessions share a key
	mu   sync.Mutex
	// taken holds the taken keys' hashes, a few bytes a key beside the
	// key itself. A key whose hash is taken counts as taken, so no two
	// taken keys share a hash (a slot skipped at worst), and a key given
	// back frees its own hash alone, unless a key never taken shares a
	// 64-bit hash with a taken one.
	taken map[uint64]struct{}
	seed  maphash.Seed
	ids   []string // each slot's id, by slot
}

// take returns the first key under prefix, of the form queue.Node
// writes with word, that the session does not hold, and takes it.
func (k *keySlots) take(prefix, word string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.taken == nil {
		k.taken = make(map[uint64]struct{})
		k.seed = maphash.MakeSeed()
	}
	for slot := uint64(0); ; slot++ {
		// Slots spread over the id space, as random ids would be.
		key := prefix + queue.Node(word, k.id(slot))
		h := maphash.String(k.seed, key)
		if _, taken := k.taken[h]; !taken {
			k.taken[h] = struct{}{}
			return key
		}
	}
}

// id returns slot's id, made once per session: a value that locks again
// mostly takes the same slot, and formatting its id each time was a
// take's only allocations besides the key. Called with mu held.
func (k *keySlots) id(slot uint64) string {
	for uint64(len(k.ids)) <= slot {
		k.ids = append(k.ids, fmt.Sprintf("%016x", k.salt^(uint64(len(k.ids))*0x9e3779b97f4a7c15)))
	}
	return k.ids[slot]
}

// give returns a key that is surely gone.
func (k *keySlots) give(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.taken != nil {
		delete(k.taken, maphash.String(k.seed, key))
	}
}

// discard removes key, put by a join whose caller left or failed, if it
// is there and the session's, so that an abandoned Lock leaves nothing.
// The delete is guarded by the create revision it read, so that a
// delete that lands late, after the key was given back and put again,
// changes nothing.
func (s *Session) discard(key string) {
	session.Cleanup(s.Done(), func(ctx context.Context) bool {
		g, err := s.cli.Get(ctx, key)
		if err != nil {
			return false
		}
		if len(g.Kvs) > 0 && clientv3.LeaseID(g.Kvs[0].Lease) == s.lease {
			if _, err := s.delete(ctx, key, g.Kvs[0].CreateRevision); err != nil {
				return false
			}
		}
		s.keys.give(key)
		return true
	})
}

// retry runs a write that is safe to repeat until it has an answer: a
// transient error (a lost connection, a leader change) may hide a write
// that was applied, which the repeat then finds. The write runs on the
// session's context rather than ctx, so that its outcome is always known.
// late, if any, undoes the write once it is done, if it failed (an
// attempt may have landed before a later one failed) or if ctx ended
// first, in which case retry returns ctx's error. It runs once, and never
// while an attempt may still land: a join's late undo gives its key back
// for the next join of the session to put, and a put landing after that
// would meet the next join's key. The session's end stops the write,
// and its lease then takes the key.
func retry[T any](ctx context.Context, s *Session, write func(context.Context) (T, error), late func()) (T, error) {
	var undo func(T, error)
	if late != nil {
		undo = func(_ T, err error) {
			if err == nil { // a failed write has begun its own undo
				late()
			}
		}
	}
	return session.Await(ctx, s.ending, func() (T, error) {
		v, err := repeat(s, write)
		if err != nil && late != nil {
			s.ending.Go(late)
		}
		return v, err
	}, undo)
}

// repeat runs write until it has an answer, the session ends or
// writeTimeout passes.
func repeat[T any](s *Session, write func(context.Context) (T, error)) (T, error) {
	v, err := persist(s.writes.context(s.ctx), write)
	if cause := s.Err(); cause != nil {
		return v, cause // the lease takes any key the write made
	}
	return v, refused(err)
}

// ask runs a read until it has an answer, or ctx or the session ends,
// and returns why it failed as errOr does. clientv3 repeats a failed
// Range only so many times, and a read-only Txn not at all, so that a
// waiter cut off from its server would otherwise give up before its
// session is judged lost.
func ask[T any](ctx context.Context, s *Session, read func(context.Context) (T, error)) (T, error) {
	v, err := persist(ctx, read)
	if err != nil {
		return v, s.errOr(ctx, err)
	}
	return v, nil
}

// get is ask for one Get.
func (s *Session) get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	return ask(ctx, s, func(ctx context.Context) (*clientv3.GetResponse, error) { return s.cli.Get(ctx, key, opts...) })
}

// persist runs call until it has an answer, fails for good, or ctx
// ends. A call refused for overload is repeated too, after pauses that
// double up to a second: overload passes, and a Lock must not fail, nor
// an Unlock leave a hold behind, for a refusal.
func persist[T any](ctx context.Context, call func(context.Context) (T, error)) (T, error) {
	backoff := 50 * time.Millisecond
	for {
		v, err := call(ctx)
		if err == nil || !unsettled(err) || ctx.Err() != nil {
			return v, err
		}
		pause := 50 * time.Millisecond
		if overloaded(err) {
			pause, backoff = backoff, min(2*backoff, time.Second)
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
		}
	}
}

// unsettled reports whether a write that failed may yet succeed when
// repeated: it failed on the way, or for overload.
func unsettled(err error) bool { return transient(err) || overloaded(err) }

// overloaded reports whether the server refused a request it had no room
// for ("too many requests"): it refuses before applying.
func overloaded(err error) bool { return errors.Is(err, rpctypes.ErrTooManyRequests) }

// transient reports whether a request failed on the way rather than by
// the server's decision, so that it may have been applied or not.
func transient(err error) bool {
	if status.Code(err) == codes.Unavailable {
		return true
	}
	for _, e := range []error{rpctypes.ErrLeaderChanged, rpctypes.ErrNoLeader, rpctypes.ErrTimeout,
		rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
