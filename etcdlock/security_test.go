package etcdlock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/internal/testing/etcdtest"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
)

const (
	alicePassword = "alice-pw-41d9c2"
	wrongPassword = "wrong-pw-b83a5e"
)

// secured is a server that admits only clients with a certificate from
// its CA, with authentication enabled: root and carol are known by their
// certificates, alice by her password, and alice and carol (team a) may
// read and write under /team-a/, mallory (team b) under /team-b/.
type secured struct {
	ca   *etcdtest.CA
	e    *etcdtest.Server
	root *clientv3.Client
}

func startSecured(t *testing.T) *secured {
	t.Helper()
	ca := etcdtest.NewCA(t)
	// Every login checks a bcrypt hash; etcd's default cost takes seconds
	// under the race detector.
	fast := etcdtest.WithFlags("--bcrypt-cost", "4")
	s := &secured{ca: ca, e: etcdtest.StartServer(t, ca.Serve(t), fast)}
	s.root = s.client(t, "root", "")
	ctx := context.Background()
	byCert := &clientv3.UserAddOptions{NoPassword: true}
	steps := []func() error{
		func() error { _, err := s.root.UserAddWithOptions(ctx, "root", "", byCert); return err },
		func() error { _, err := s.root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := s.root.UserAdd(ctx, "alice", alicePassword); return err },
		func() error { _, err := s.root.UserAddWithOptions(ctx, "carol", "", byCert); return err },
		func() error { _, err := s.root.UserAddWithOptions(ctx, "mallory", "", byCert); return err },
	}
	for role, users := range map[string][]string{"team-a": {"alice", "carol"}, "team-b": {"mallory"}} {
		prefix := "/" + role + "/"
		steps = append(steps,
			func() error { _, err := s.root.RoleAdd(ctx, role); return err },
			func() error {
				_, err := s.root.RoleGrantPermission(ctx, role, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
				return err
			})
		for _, u := range users {
			steps = append(steps, func() error { _, err := s.root.UserGrantRole(ctx, u, role); return err })
		}
	}
	steps = append(steps, func() error { _, err := s.root.AuthEnable(ctx); return err })
	for _, step := range steps {
		require.NoError(t, step())
	}
	return s
}

// client connects with a certificate for commonName and, with a
// password, as the user commonName: a password outranks the certificate.
func (s *secured) client(tb testing.TB, commonName, password string) *clientv3.Client {
	tb.Helper()
	cli, err := s.dial(tb, commonName, password)
	require.NoError(tb, err)
	return cli
}

func (s *secured) dial(tb testing.TB, commonName, password string) (*clientv3.Client, error) {
	cfg := etcdtest.ClientConfig(s.e.Endpoints()...)
	cfg.TLS = s.ca.ClientTLS(tb, commonName)
	if password != "" {
		cfg.Username, cfg.Password = commonName, password
	}
	cli, err := clientv3.New(cfg)
	if err == nil {
		tb.Cleanup(func() { _ = cli.Close() })
	}
	return cli, err
}

// team runs mutexes of alice (by password) and carol (by certificate)
// in turn, and reads the queue as root.
func (s *secured) team() locktest.Env {
	turn := 0
	return locktest.Env{
		NewMutex: func(tb testing.TB, name string) locktest.Locker {
			turn++
			if turn%2 == 0 {
				return etcdlock.NewMutex(session(tb, s.client(tb, "carol", "")), name)
			}
			return etcdlock.NewMutex(session(tb, s.client(tb, "alice", alicePassword)), name)
		},
		Queued: func(tb testing.TB, name string) int {
			resp, err := s.root.Get(context.Background(), name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			require.NoError(tb, err)
			return int(resp.Count)
		},
	}
}

// On a cluster with TLS client certificates and authentication, the
// users with a role on the prefix queue and hand over as anywhere else.
// A user of another prefix, or a certificate naming no user, is refused
// at once with ErrNotAuthorized and can neither read the queue, nor
// queue a forged contender, nor delete the holder's key or revoke its
// lease; a client without a certificate cannot even connect.
func TestProtected(t *testing.T) {
	s := startSecured(t)
	name := "/team-a" + locktest.Name()
	mallory := s.client(t, "mallory", "")
	nobody := s.client(t, "nobody", "")
	outsiders := map[string]locktest.Locker{
		"another team's user":          etcdlock.NewMutex(session(t, mallory), name),
		"a certificate naming no user": etcdlock.NewMutex(session(t, nobody), name),
	}
	locktest.Protected(t, s.team(), name, outsiders, func(tb testing.TB, key string) {
		ctx := context.Background()
		held, err := s.root.Get(ctx, key)
		require.NoError(tb, err)
		require.Len(tb, held.Kvs, 1)
		for who, cli := range map[string]*clientv3.Client{"mallory": mallory, "nobody": nobody} {
			_, getErr := cli.Get(ctx, name+"/", clientv3.WithPrefix())
			_, putErr := cli.Put(ctx, name+"/lock-forged", "")
			_, deleteErr := cli.Delete(ctx, key)
			_, revokeErr := cli.Revoke(ctx, clientv3.LeaseID(held.Kvs[0].Lease))
			for what, err := range map[string]error{
				"list the queue":            getErr,
				"queue a forged contender":  putErr,
				"delete the holder's key":   deleteErr,
				"revoke the holder's lease": revokeErr,
			} {
				if !errors.Is(err, rpctypes.ErrPermissionDenied) {
					tb.Errorf("%s tried to %s: %v, want %v", who, what, err, rpctypes.ErrPermissionDenied)
				}
			}
		}
		// Without a certificate the handshake fails, and the client
		// waits for a connection until its deadline.
		anonymous := etcdtest.ClientConfig(s.e.Endpoints()...)
		anonymous.TLS = s.ca.ClientTLS(tb, "")
		cli, err := clientv3.New(anonymous)
		require.NoError(tb, err)
		defer cli.Close()
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := cli.Delete(dctx, key); err == nil {
			tb.Errorf("a client without a certificate deleted the holder's key")
		}
	})
}

// A wrong password is refused when the client starts, and a password
// changed under a running session makes its calls fail with
// ErrNotAuthorized as soon as its client must log in again. Neither the
// wrong password nor the stale one the client logs in with shows in an
// error or in the session's log.
func TestWrongPassword(t *testing.T) {
	s := startSecured(t)
	_, err := s.dial(t, "alice", wrongPassword)
	require.ErrorIs(t, err, rpctypes.ErrAuthFailed)
	require.NotContains(t, err.Error(), wrongPassword)

	ctx := context.Background()
	name := "/team-a" + locktest.Name()
	secret := locktest.NewSecret(alicePassword)
	sess := session(t, s.client(t, "alice", alicePassword), etcdlock.WithLogger(secret.Logger()))
	m := etcdlock.NewMutex(sess, name)
	require.NoError(t, m.Lock(ctx))
	require.NoError(t, m.Unlock(ctx))

	// The server forgets alice's token with her old password, so her
	// client logs in again with the password it was given.
	_, err = s.root.UserChangePassword(ctx, "alice", "alice-new-pw-0d8e11")
	require.NoError(t, err)
	lockErr := m.Lock(ctx)
	require.ErrorIs(t, lockErr, turnstile.ErrNotAuthorized)
	require.ErrorIs(t, lockErr, rpctypes.ErrAuthFailed)
	closeErr := sess.Close()
	secret.Check(t, lockErr, closeErr)
}
