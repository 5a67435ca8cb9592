// Package backends opens a session on whichever service a program is
// given, for the examples and the fault tests that run on either.
package backends

import (
	"context"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/zklock"
)

// Open opens one session with the given lifetime on the ZooKeeper
// servers zkAddr, if given, or else on the etcd endpoints etcdAddr, each
// a comma-separated list. closeAll closes the session and its client.
func Open(etcdAddr, zkAddr string, lifetime time.Duration) (s turnstile.Backend, closeAll func(), err error) {
	if zkAddr != "" {
		s, err := zklock.Connect(strings.Split(zkAddr, ","), zklock.WithSessionTimeout(lifetime))
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(etcdAddr, ","), DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, nil, err
	}
	es, err := etcdlock.NewSession(cli, etcdlock.WithTTL(lifetime))
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	return es, func() { es.Close(); cli.Close() }, nil
}

// Mutex is what zklock.Mutex and etcdlock.Mutex have in common.
type Mutex interface {
	Lock(ctx context.Context) error
	TryLock(ctx context.Context) error
	Unlock(ctx context.Context) error
	Token() int64
	Sequencer() turnstile.Sequencer
	Lost() <-chan struct{}
}

// NewMutex returns s's own Mutex on name: a zklock.Mutex on a
// *zklock.Session, an etcdlock.Mutex on an *etcdlock.Session, and nil on
// any other Backend.
func NewMutex(s turnstile.Backend, name string) Mutex {
	switch s := s.(type) {
	case *zklock.Session:
		return zklock.NewMutex(s, name)
	case *etcdlock.Session:
		return etcdlock.NewMutex(s, name)
	}
	return nil
}
