// Package session opens a session on whichever service an example is
// given.
package session

import (
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
func Open(etcdAddr, zkAddr string, lifetime time.Duration) (s turnstile.Session, closeAll func(), err error) {
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
