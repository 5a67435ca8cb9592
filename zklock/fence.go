package zklock

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"

	"github.com/turnstile-go/turnstile"
)

// Check asks the server whether seq's hold is still current, as Chubby's
// CheckSequencer does: whether its node exists, created with seq's token.
// It returns nil if so, an error matching turnstile.ErrStaleToken if the
// hold has ended (released, expired or deleted), one matching
// turnstile.ErrInvalidSequencer, before any server call, for a seq that
// does not Validate, and the server's error if it cannot tell.
//
// Two requests: a sync, so that the server the session is connected to,
// which may lag the leader, has caught up with it, then a read. A hold
// may still end the moment after; a write to ZooKeeper itself is fenced
// with Guard in the same Multi instead.
func (s *Session) Check(ctx context.Context, seq turnstile.Sequencer) error {
	if err := seq.Validate(); err != nil {
		return err
	}
	_, err := read(ctx, s, func() (string, error) { return s.conn.Sync(seq.Name) })
	var st *zk.Stat
	if err == nil || errors.Is(err, zk.ErrNoNode) {
		st, err = s.stat(ctx, seq.Key)
	}
	if err != nil {
		return fmt.Errorf("zklock: check %s: %w", seq.Key, err)
	}
	if st == nil || st.Czxid != seq.Token {
		return fmt.Errorf("%w: %s is no longer held (token %d)", turnstile.ErrStaleToken, seq.Key, seq.Token)
	}
	return nil
}

// Guard returns an operation for zk.Conn.Multi that succeeds only while
// seq's hold is current, so that a write to ZooKeeper itself is fenced in
// the same transaction: the Multi fails with zk.ErrNoNode once the hold's
// node is gone. It checks that the node exists, not its czxid; a node's
// path is unique to its hold, by the random id every acquisition puts in
// it. For a seq that does not Validate it returns an operation the server
// refuses, so the Multi fails.
func Guard(seq turnstile.Sequencer) *zk.CheckVersionRequest {
	path := seq.Key
	if seq.Validate() != nil {
		path = "" // an invalid path: the server fails the Multi
	}
	return &zk.CheckVersionRequest{Path: path, Version: -1}
}
