package etcdlock

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile"
)

// Check asks the server whether seq's hold is still current, as Chubby's
// CheckSequencer does: whether its key exists with seq's token as create
// revision. It returns nil if so, an error matching
// turnstile.ErrStaleToken if the hold has ended (released, lease lost or
// key deleted), one matching turnstile.ErrInvalidSequencer, before any
// server call, for a seq that does not Validate, and the server's error
// if it cannot tell. One linearizable read; a fenced write to etcd is
// safer still with Guard in the same Txn.
func (s *Session) Check(ctx context.Context, seq turnstile.Sequencer) error {
	if err := seq.Validate(); err != nil {
		return err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	g, err := s.get(ctx, seq.Key)
	if err != nil {
		return fmt.Errorf("etcdlock: check %s: %w", seq.Key, err)
	}
	s.saw(g.Header.Revision)
	if len(g.Kvs) == 0 || g.Kvs[0].CreateRevision != seq.Token {
		return fmt.Errorf("%w: %s is no longer held (token %d)", turnstile.ErrStaleToken, seq.Key, seq.Token)
	}
	return nil
}

// Guard returns a comparison that is true only while seq's hold is
// current, so that a write to etcd itself is fenced in the same Txn:
//
//	cli.Txn(ctx).If(etcdlock.Guard(seq)).Then(clientv3.OpPut(k, v)).Commit()
//
// commits the put only if the hold's key still exists with the hold's
// create revision. For a seq that does not Validate, such as the zero
// Sequencer of a lost hold, the comparison is never true.
func Guard(seq turnstile.Sequencer) clientv3.Cmp {
	if seq.Validate() != nil {
		// No key has a negative create revision.
		return clientv3.Compare(clientv3.CreateRevision(seq.Key+"\x00"), "<", 0)
	}
	return clientv3.Compare(clientv3.CreateRevision(seq.Key), "=", seq.Token)
}
