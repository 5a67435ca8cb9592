// Package zklock is turnstile's ZooKeeper backend: a Session, and on it a
// fair, herd-free Mutex whose every hold carries a fencing token.
//
// A lock named /locks/orders is the znode /locks/orders (a container,
// removed by the server once empty); each contender is an ephemeral
// sequential child of it, visible with `zkCli ls /locks/orders`, named as
// Apache Curator names its own (_c_<random>-lock-<sequence>). Every child
// whose name ends in a sequence number is a contender, whichever client
// created it: a name can be shared with Curator, go-zookeeper's zk.Lock
// and kazoo (see the README for the settings each needs). turnstile
// writes only its own nodes, and the lock znode when it creates it.
package zklock

import "github.com/turnstile-go/turnstile/mutex"

// Mutex is the lock NewMutex returns: a mutex.Mutex, the same type on
// either backend.
type Mutex = mutex.Mutex

// NewMutex returns the Mutex named name on s, configured by opts, such as
// mutex.WithLockDelay. It makes no server call: a nil s, an invalid name
// (see turnstile.ValidateName) or an option out of range is reported by
// every method, with an error matching turnstile.ErrNilSession,
// turnstile.ErrInvalidName or turnstile.ErrInvalidOption.
func NewMutex(s *Session, name string, opts ...mutex.Option) *Mutex {
	return mutex.New(s, name, opts...)
}
