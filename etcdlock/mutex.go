// Package etcdlock is turnstile's etcd backend: a Session, and on it a
// fair, herd-free Mutex whose every hold carries a fencing token.
//
// A lock named /locks/orders is the keys under /locks/orders/, one per
// contender, ordered by create revision: `etcdctl get --prefix
// /locks/orders/` shows the queue. Every key directly under it is a
// contender, whichever client put it there: a name can be shared with
// etcd's concurrency.Mutex and etcdctl lock, whose prefix is the name.
package etcdlock

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
