package recipe

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
)

// SweepPeriod is how often a session with contenders checks that they
// are all still queued. A contender deleted by someone else (an
// operator's act, or another program's) is noticed within about that
// long; the end of the session is noticed at once.
const SweepPeriod = time.Second

// Tracker notices that one of a session's holds has ended other than by
// its own Release: its contender deleted by someone else, or its session
// ended. A hold costs it a map entry, not a goroutine nor a watch of its
// own: one goroutine per session checks every hold older than
// SweepPeriod with one Backend.Gone request a period, and tells all of
// them at once when the session ends. The goroutine runs only while the
// session holds something. Waiters are not tracked: a waiter whose
// contender is deleted learns it when it is next admitted, by the queue
// read or Backend.Check that admission takes, and a waiter's calls end
// with its session. The zero Tracker is ready for use.
type Tracker struct {
	mu       sync.Mutex
	entries  map[string]*entry
	sweeping bool
}

// entry is one tracked contender.
type entry struct {
	self queue.Contender
	lose func(error) // called at most once, outside the Tracker's lock
	old  bool        // there at the previous sweep: due for a check
	// leaving is set while a Leave whose outcome is unknown may have
	// removed the contender: its absence is then no loss, but the end
	// of the session still is.
	leaving bool
}

// add tracks self: lose is called, once, if self leaves the queue other
// than by Leave, or the session ends, while tracked.
func (t *Tracker) add(b Backend, self queue.Contender, lose func(error)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries == nil {
		t.entries = make(map[string]*entry)
	}
	t.entries[self.Key] = &entry{self: self, lose: lose}
	if !t.sweeping {
		t.sweeping = true
		go t.sweep(b)
	}
}

// remove stops tracking key. With leaving set it goes on telling only of
// the session's end, for a Leave that may or may not have landed.
func (t *Tracker) remove(key string, leaving bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[key]; ok && leaving {
		e.leaving = true
	} else {
		delete(t.entries, key)
	}
}

// sweep runs while the session has contenders.
func (t *Tracker) sweep(b Backend) {
	tick := time.NewTicker(SweepPeriod)
	defer tick.Stop()
	for {
		select {
		case <-b.Done():
			t.endAll(b)
			return
		case <-tick.C:
		}
		due := t.due()
		if due == nil {
			return
		}
		if len(due) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), SweepPeriod)
		gone, err := b.Gone(ctx, due)
		cancel()
		if err == nil {
			t.lose(gone)
		}
	}
}

// due returns the contenders that were there at the previous sweep, and
// marks the rest for the next; nil, once there are none left, ends the
// sweep.
func (t *Tracker) due() []queue.Contender {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.entries) == 0 {
		t.sweeping = false
		return nil
	}
	due := []queue.Contender{}
	for _, e := range t.entries {
		if e.old {
			due = append(due, e.self)
		}
		e.old = true
	}
	return due
}

// lose tells the contenders found gone, if they are still tracked.
func (t *Tracker) lose(gone []queue.Contender) {
	var lost []*entry
	t.mu.Lock()
	for _, c := range gone {
		if e, ok := t.entries[c.Key]; ok && e.self.Seq == c.Seq {
			delete(t.entries, c.Key)
			if !e.leaving {
				lost = append(lost, e)
			}
		}
	}
	t.mu.Unlock()
	for _, e := range lost {
		e.lose(fmt.Errorf("%w: %s was deleted by someone else", turnstile.ErrLost, e.self.Key))
	}
}

// endAll tells every contender that the session has ended.
func (t *Tracker) endAll(b Backend) {
	t.mu.Lock()
	entries := t.entries
	t.entries = nil
	t.sweeping = false
	t.mu.Unlock()
	for _, e := range entries {
		e.lose(b.Err())
	}
}
