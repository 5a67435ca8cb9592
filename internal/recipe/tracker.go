package recipe

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
)

// SweepPeriod is how often a session that holds anything checks that its
// holds are all still queued. A hold whose contender someone else
// deleted (an operator's act, or another program's) is told within two
// periods and a round trip; the end of the session is told at once.
const SweepPeriod = time.Second

// Tracker notices that one of a session's holds has ended other than by
// its own Release: its contender deleted by someone else, or its session
// ended. A hold costs it a map entry, not a goroutine nor a watch of its
// own: one goroutine per session checks every hold older than
// SweepPeriod with one Backend.Gone call a period, and tells all of them
// at once when the session ends. The goroutine runs only while the
// session holds something. Waiters are not tracked: a waiter whose
// contender is deleted learns it when it is next admitted, by the queue
// read or Backend.Check that admission takes, and a waiter's calls end
// with its session. The zero Tracker is ready for use.
type Tracker struct {
	mu       sync.Mutex
	entries  map[held]*entry
	sweeping bool
}

// held names one hold: a backend may put a key again for a later
// contender, with a new Seq.
type held struct {
	key string
	seq int64
}

// entry is one tracked hold.
type entry struct {
	self queue.Contender
	lose func(error) // called at most once, outside the Tracker's lock
	old  bool        // there at the previous sweep: due for a check
	// leaving is set while a Release may have removed the contender: its
	// absence is then no loss, and it is not checked, but the end of the
	// session still is a loss.
	leaving bool
}

func heldBy(c queue.Contender) held { return held{c.Key, c.Seq} }

// add tracks self: lose is called, once, if self leaves the queue other
// than by Release, or the session ends, while tracked.
func (t *Tracker) add(b Backend, self queue.Contender, lose func(error)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries == nil {
		t.entries = make(map[held]*entry)
	}
	t.entries[heldBy(self)] = &entry{self: self, lose: lose}
	if !t.sweeping {
		t.sweeping = true
		go t.sweep(b)
	}
}

// leaving marks self as being released: from now on only the end of the
// session is a loss.
func (t *Tracker) leaving(self queue.Contender) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[heldBy(self)]; ok {
		e.leaving = true
	}
}

// remove stops tracking self, released. With err, self was found lost
// instead, and is told so now if it has not been.
func (t *Tracker) remove(self queue.Contender, err error) {
	t.mu.Lock()
	e, ok := t.entries[heldBy(self)]
	delete(t.entries, heldBy(self))
	t.mu.Unlock()
	if ok && err != nil {
		e.lose(err)
	}
}

// sweep runs while the session holds something.
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

// due returns the holds that were there at the previous sweep and are not
// being released, and marks the rest for the next; nil, once there are
// none left, ends the sweep.
func (t *Tracker) due() []queue.Contender {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.entries) == 0 {
		t.sweeping = false
		return nil
	}
	due := []queue.Contender{}
	for _, e := range t.entries {
		if e.old && !e.leaving {
			due = append(due, e.self)
		}
		e.old = true
	}
	return due
}

// lose tells the holds found gone, if they are still tracked and not
// being released.
func (t *Tracker) lose(gone []queue.Contender) {
	var lost []*entry
	t.mu.Lock()
	for _, c := range gone {
		if e, ok := t.entries[heldBy(c)]; ok && !e.leaving {
			delete(t.entries, heldBy(c))
			lost = append(lost, e)
		}
	}
	t.mu.Unlock()
	for _, e := range lost {
		e.lose(fmt.Errorf("%w: %s was deleted by someone else", turnstile.ErrLost, e.self.Key))
	}
}

// endAll tells every hold that the session has ended.
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
