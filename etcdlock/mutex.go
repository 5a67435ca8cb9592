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

// NewMutex returns the Mutex named name on s. It makes no server call: a
// nil s or an invalid name (see turnstile.ValidateName) is reported by
// every method, with an error matching turnstile.ErrNilSession or
// turnstile.ErrInvalidName.
func NewMutex(s *Session, name string) *Mutex { return mutex.New(s, name) }
