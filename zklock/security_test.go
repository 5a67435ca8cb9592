package zklock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
	"github.com/turnstile-go/turnstile/internal/testing/zktest"
	"github.com/turnstile-go/turnstile/mutex"
	"github.com/turnstile-go/turnstile/zklock"
)

// Two users share a lock directory; everyone else is kept out.
const (
	alicePassword = "alice-pw-5c1e0d"
	carolPassword = "carol-pw-9a27b4"
	wrongPassword = "wrong-pw-7f3e21"
)

var teamACL = append(zk.DigestACL(zk.PermAll, "alice", alicePassword), zk.DigestACL(zk.PermAll, "carol", carolPassword)...)

func alice(tb testing.TB, opts ...zklock.Option) *zklock.Session {
	return connect(tb, shared.Get(tb), append([]zklock.Option{zklock.WithDigestAuth("alice", alicePassword), zklock.WithACL(teamACL...)}, opts...)...)
}

func carol(tb testing.TB) *zklock.Session {
	return connect(tb, shared.Get(tb), zklock.WithDigestAuth("carol", carolPassword), zklock.WithACL(teamACL...))
}

// team runs mutexes of alice and carol in turn, and reads the queue as
// alice: the directory's ACL hides it from anyone else.
func team(tb testing.TB) locktest.Env {
	reader := alice(tb)
	turn := 0
	return locktest.Env{
		NewMutex: func(tb testing.TB, name string) locktest.Locker {
			turn++
			if turn%2 == 0 {
				return zklock.NewMutex(carol(tb), name)
			}
			return zklock.NewMutex(alice(tb), name)
		},
		Queued: func(tb testing.TB, name string) int {
			children, _, err := reader.Conn().Children(name)
			if errors.Is(err, zk.ErrNoNode) {
				return 0
			}
			require.NoError(tb, err)
			return len(children)
		},
	}
}

// A protected lock directory works as any other for alice and carol,
// while a client without credentials, or with a wrong password, can
// neither queue, nor read the queue, nor touch the holder's node, and
// learns so at once. The wrong password shows in no error and no log.
func TestProtected(t *testing.T) {
	ctx := context.Background()
	top := locktest.Top()
	name := top + "/locks/orders"
	env := team(t)
	secret := locktest.NewSecret(wrongPassword)
	stranger := connect(t, shared.Get(t))
	intruder := connect(t, shared.Get(t), zklock.WithDigestAuth("alice", wrongPassword), zklock.WithLogger(secret.Logger()))
	outsiders := map[string]locktest.Locker{
		"a client without credentials":                   zklock.NewMutex(stranger, name),
		"a client with a wrong password":                 zklock.NewMutex(intruder, name),
		"a client without credentials, on a new name":    zklock.NewMutex(stranger, top+"/locks/new"),
		"a client with a wrong password, on a new name":  zklock.NewMutex(intruder, top+"/locks/new"),
		"a client without credentials, on a new subtree": zklock.NewMutex(stranger, top+"/more/locks"),
	}
	var refusals []error
	locktest.Protected(t, env, name, outsiders, func(tb testing.TB, key string) {
		// Every node the sessions created carries the team's ACL, the
		// ancestors they had to create too.
		reader := alice(tb).Conn()
		for _, p := range []string{top, top + "/locks", name, key} {
			acl, _, err := reader.GetACL(p)
			require.NoError(tb, err)
			require.ElementsMatch(tb, teamACL, acl, p)
		}
		for who, conn := range map[string]*zk.Conn{"stranger": stranger.Conn(), "intruder": intruder.Conn()} {
			_, _, childrenErr := conn.Children(name)
			_, createErr := conn.Create(name+"/lock-forged-", nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
			_, setErr := conn.Set(key, []byte("x"), -1)
			_, aclErr := conn.SetACL(key, zk.WorldACL(zk.PermAll), -1)
			for what, err := range map[string]error{
				"list the queue":            childrenErr,
				"queue a forged contender":  createErr,
				"delete the holder's node":  conn.Delete(key, -1),
				"write the holder's node":   setErr,
				"open the holder's node":    aclErr,
				"delete the lock directory": conn.Delete(name, -1),
			} {
				if !errors.Is(err, zk.ErrNoAuth) {
					tb.Errorf("the %s tried to %s: %v, want %v", who, what, err, zk.ErrNoAuth)
				}
				refusals = append(refusals, err)
			}
		}
	})

	err := zklock.NewMutex(intruder, name).Lock(ctx)
	require.ErrorIs(t, err, turnstile.ErrNotAuthorized)
	require.ErrorIs(t, err, zk.ErrNoAuth)
	intruder.Close()
	secret.Check(t, append(refusals, err)...)
}

// The ACL keeps out clients without credentials, not one authorised
// client from another: carol can delete alice's node, and alice learns
// she lost her hold. Only fencing protects the resource from that.
func TestAuthorisedCanDelete(t *testing.T) {
	ctx := context.Background()
	name := locktest.Top() + "/orders"
	m := zklock.NewMutex(alice(t), name)
	require.NoError(t, m.Lock(ctx))
	require.NoError(t, carol(t).Conn().Delete(m.Sequencer().Key, -1))
	<-m.Lost()
	require.ErrorIs(t, m.Unlock(ctx), turnstile.ErrLost)
}

// operator returns a connection with the operator's credentials, who
// lays out the tree and its rights.
func operator(t *testing.T) *zk.Conn {
	op, _, err := zk.Connect(shared.Get(t).Servers(), 10*time.Second, zk.WithLogger(zktest.Logger(t)))
	require.NoError(t, err)
	t.Cleanup(op.Close)
	require.NoError(t, op.AddAuth("digest", []byte("operator:operator-pw")))
	return op
}

// An operator may keep the upper tree and give a team a subtree of its
// own: the team's clients create their lock directories in it without
// any right on the nodes above.
func TestOwnSubtree(t *testing.T) {
	ctx := context.Background()
	top := locktest.Top()
	op := operator(t)
	opACL := append(zk.WorldACL(zk.PermRead), zk.DigestACL(zk.PermAll, "operator", "operator-pw")...)
	_, err := op.Create(top, nil, 0, opACL)
	require.NoError(t, err)
	_, err = op.Create(top+"/team", nil, 0, teamACL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = op.Delete(top+"/team", -1); _ = op.Delete(top, -1) })

	m := zklock.NewMutex(alice(t), top+"/team/locks/orders")
	require.NoError(t, m.Lock(ctx))
	require.NoError(t, m.Unlock(ctx))
	_, err = alice(t).Conn().Create(top+"/other", nil, 0, teamACL)
	require.ErrorIs(t, err, zk.ErrNoAuth, "the team created outside its subtree")
}

// A team may be allowed to queue in a lock directory without the right
// to write the directory itself, which a Lock does to learn its token in
// the create's own request: it then reads the token apart, and it is
// still the node's czxid.
func TestDirectoryNotWritable(t *testing.T) {
	ctx := context.Background()
	top := locktest.Top()
	op := operator(t)
	queueOnly := append(zk.DigestACL(zk.PermCreate|zk.PermDelete|zk.PermRead, "alice", alicePassword),
		zk.DigestACL(zk.PermAll, "operator", "operator-pw")...)
	_, err := op.Create(top, nil, 0, queueOnly)
	require.NoError(t, err)
	t.Cleanup(func() { _ = op.Delete(top, -1) })

	s := alice(t)
	m := zklock.NewMutex(s, top)
	for range 2 {
		require.NoError(t, m.Lock(ctx))
		_, st, err := s.Conn().Exists(m.Sequencer().Key)
		require.NoError(t, err)
		require.Equal(t, st.Czxid, m.Token())
		require.NoError(t, s.Check(ctx, m.Sequencer()))
		require.NoError(t, m.Unlock(ctx))
	}
	_, st, err := op.Exists(top)
	require.NoError(t, err)
	require.Zero(t, st.Version, "the directory was written")
}

// Credentials that ZooKeeper would split otherwise than meant are
// refused before any connection, and the password is not repeated.
func TestBadCredentials(t *testing.T) {
	_, err := zklock.Connect(shared.Get(t).Servers(), zklock.WithDigestAuth("ali:ce", wrongPassword))
	require.ErrorIs(t, err, turnstile.ErrInvalidOption)
	require.NotContains(t, err.Error(), wrongPassword)
	_, err = zklock.Connect(shared.Get(t).Servers(), zklock.WithACL(zk.AuthACL(zk.PermAll)...))
	require.ErrorIs(t, err, turnstile.ErrInvalidOption)
	require.ErrorContains(t, err, "WithDigestAuth")
}

// A session whose nodes it may not write (an ACL without WRITE) cannot
// mark a release for a lock-delay: its Unlock deletes unmarked, and
// succeeds.
func TestLockDelayNodesNotWritable(t *testing.T) {
	ctx := context.Background()
	s := connect(t, shared.Get(t), zklock.WithDigestAuth("alice", alicePassword),
		zklock.WithACL(zk.DigestACL(zk.PermCreate|zk.PermDelete|zk.PermRead, "alice", alicePassword)...))
	// Under a tree of its own: the parents it makes carry its ACL.
	m := zklock.NewMutex(s, locktest.Top()+"/lock", mutex.WithLockDelay(time.Second))
	for range 2 {
		require.NoError(t, m.Lock(ctx))
		require.NoError(t, m.Unlock(ctx))
	}
}
