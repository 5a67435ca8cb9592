// Package session is what a backend session's lifetime needs: one end,
// with its cause, and the goroutines that must stop with it.
package session

import (
	"context"
	"sync"
	"time"
)

// Ending is how a backend session ends: once, for good, with a cause
// that every later call reports. It also keeps count of the session's
// goroutines, so that closing the session can wait for them.
type Ending struct {
	once  sync.Once
	done  chan struct{}
	cause error // written once, before done closes

	mu     sync.Mutex // orders Go's check against End
	ended  bool
	active sync.WaitGroup
	idle   chan func() // a goroutine waiting here runs the next f
}

// idleTime is how long a goroutine of Go's waits for more work.
const idleTime = 10 * time.Second

// NewEnding returns an Ending not yet ended.
func NewEnding() *Ending { return &Ending{done: make(chan struct{}), idle: make(chan func())} }

// End ends it with cause, unless it has ended already; it reports
// whether this call ended it.
func (e *Ending) End(cause error) bool {
	ended := false
	e.once.Do(func() {
		// Under mu, so that a Go refused for the end finds its cause.
		e.mu.Lock()
		defer e.mu.Unlock()
		e.ended = true
		e.cause = cause
		close(e.done)
		ended = true
	})
	return ended
}

// Done is closed once it has ended.
func (e *Ending) Done() <-chan struct{} { return e.done }

// Err returns nil until it has ended, then the cause.
func (e *Ending) Err() error {
	select {
	case <-e.done:
		return e.cause
	default:
		return nil
	}
}

// Go runs f in a goroutine that Wait waits for, and reports true, unless
// it has ended: a session that has ended starts nothing more.
//
// The goroutines are reused: one whose f has returned waits a while for
// the next. The backends run a server call the caller may stop waiting
// for on a goroutine of its own (Await), and a new goroutine grows its
// stack again through the client's deep call chain every time, which cost
// more client CPU than the call itself on etcd.
func (e *Ending) Go(f func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended {
		return false
	}
	e.active.Add(1)
	select {
	case e.idle <- f:
	default:
		go e.work(f)
	}
	return true
}

// work runs f, then whatever Go hands it, until it has waited idleTime
// for more or it has ended.
func (e *Ending) work(f func()) {
	var wait *time.Timer
	for {
		f()
		e.active.Done()
		if wait == nil {
			wait = time.NewTimer(idleTime)
		} else {
			wait.Reset(idleTime)
		}
		select {
		case f = <-e.idle:
		case <-wait.C:
			return
		case <-e.done:
			wait.Stop()
			return
		}
	}
}

// Wait waits, once it has ended, for every goroutine Go started.
func (e *Ending) Wait() {
	<-e.done
	e.active.Wait()
}

// Await runs call and waits for its result, ctx's end or e's. call runs
// on the caller's goroutine when nothing can stop the caller waiting (a
// call must then end with e, as the backends' calls do), and otherwise on
// one of e's. If the caller stops waiting, late, if any, receives call's
// eventual result on one of e's goroutines, so that it can undo what call
// did: a write the caller no longer wants must not be left behind. A ctx
// that has already ended runs nothing: an Unlock under it would otherwise
// release on the server and report that it had not.
func Await[T any](ctx context.Context, e *Ending, call func() (T, error), late func(T, error)) (T, error) {
	var zero T
	if err := e.Err(); err != nil {
		return zero, err
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if ctx.Done() == nil {
		return call()
	}
	type result struct {
		v   T
		err error
	}
	answer := make(chan result, 1)
	if !e.Go(func() {
		v, err := call()
		answer <- result{v, err}
	}) {
		return zero, e.Err()
	}
	select {
	case r := <-answer:
		return r.v, r.err
	case <-ctx.Done():
		if err := e.Err(); err != nil {
			return zero, err // the end, which may be what ended ctx
		}
		if late != nil {
			e.Go(func() {
				r := <-answer
				late(r.v, r.err)
			})
		}
		return zero, ctx.Err()
	case <-e.Done():
		return zero, e.Err()
	}
}

// CleanupTimeout bounds each attempt of Cleanup. It does not come from
// a caller's context, which is often the reason for the cleanup and
// already done.
const CleanupTimeout = 2 * time.Second

// Cleanup is the one way a session removes a contender that no caller
// waits for any more: a failed acquisition's, or one whose create or put
// landed after its caller left. It calls try, which reports whether the
// contender is gone, once now and then in the background after pauses
// that double from 100 ms to 2 s, until try reports true or done (the
// session's end, which removes the contender anyway) closes. Each
// attempt gets CleanupTimeout.
func Cleanup(done <-chan struct{}, try func(ctx context.Context) bool) {
	attempt := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout)
		defer cancel()
		return try(ctx)
	}
	if attempt() {
		return
	}
	go func() {
		for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
			select {
			case <-done:
				return
			case <-time.After(delay):
			}
			if attempt() {
				return
			}
		}
	}()
}
