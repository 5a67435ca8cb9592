package recipe

import "sync"

// Ending is how a backend session ends: once, for good, with a cause
// that every later call reports.
type Ending struct {
	once  sync.Once
	done  chan struct{}
	cause error // written once, before done closes
}

// NewEnding returns an Ending not yet ended.
func NewEnding() *Ending { return &Ending{done: make(chan struct{})} }

// End ends it with cause, unless it has ended already; it reports
// whether this call ended it.
func (e *Ending) End(cause error) bool {
	ended := false
	e.once.Do(func() {
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
