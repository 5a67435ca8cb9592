package recipe

import "sync"

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
}

// NewEnding returns an Ending not yet ended.
func NewEnding() *Ending { return &Ending{done: make(chan struct{})} }

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
func (e *Ending) Go(f func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended {
		return false
	}
	e.active.Add(1)
	go func() {
		defer e.active.Done()
		f()
	}()
	return true
}

// Wait waits, once it has ended, for every goroutine Go started.
func (e *Ending) Wait() {
	<-e.done
	e.active.Wait()
}
