package recipe

import (
	"context"
	"sync"
	"time"

	"github.com/turnstile-go/turnstile/internal/queue"
)

// SweepPeriod is how often a session that holds anything checks that its
// holds are all still queued. A hold whose contender someone else
// deleted (an operator's act, or another program's) is told within two
// periods and a round trip where the backend checks them all at once
// (etcd), and within a period more than the backend takes to go round
// them where it reads them a few at a time (ZooKeeper, 64 a period); the
// end of the session is told at once.
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
	mu       sync.Mutex // guards the holds' loss state too
	holds    map[*Hold]struct{}
	sweeping bool
}

// Hold is a granted place at the head of a queue.
type Hold struct {
	Self queue.Contender

	// lost is closed once the hold is lost, made only when asked for
	// (Tracker.Lost): thousands of holds on a session need not each
	// carry a channel.
	lost  chan struct{}
	ended bool // lost, whether or not lost has been made

	// releasing is set once a Release has begun: the contender's
	// absence is then no loss, though the end of the session still is.
	releasing bool
	// leaving is set once a Release has failed, whose delete may yet
	// land: the next Release is a retry.
	leaving bool
	// old is set at the first sweep that sees the hold: it is checked
	// from the next one on.
	old bool
}

// closed is the loss channel of every hold lost before anyone asked.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// add tracks h, which has not been lost: it is told, once, if its
// contender leaves the queue other than by Release, or the session ends.
func (t *Tracker) add(b Backend, h *Hold) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.holds == nil {
		t.holds = make(map[*Hold]struct{})
	}
	t.holds[h] = struct{}{}
	if !t.sweeping {
		t.sweeping = true
		go t.sweep(b)
	}
}

// Lost returns the channel that closes when h is lost.
func (t *Tracker) Lost(h *Hold) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case h.lost != nil:
	case h.ended:
		h.lost = closed
	default:
		h.lost = make(chan struct{})
	}
	return h.lost
}

// ended reports whether h has been lost.
func (t *Tracker) ended(h *Hold) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return h.ended
}

// end marks h lost, with t.mu held.
func (h *Hold) end() {
	if !h.ended {
		h.ended = true
		if h.lost != nil {
			close(h.lost)
		}
	}
}

// releasing marks h as being released: from now on only the end of the
// session is a loss.
func (t *Tracker) releasing(h *Hold) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h.releasing = true
}

// remove stops tracking h, released. With lost set, h was found lost
// instead, and is told so now if it has not been.
func (t *Tracker) remove(h *Hold, lost bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.holds, h)
	if lost {
		h.end()
	}
}

// sweep runs while the session holds something.
func (t *Tracker) sweep(b Backend) {
	tick := time.NewTicker(SweepPeriod)
	defer tick.Stop()
	for {
		select {
		case <-b.Done():
			t.endAll()
			return
		case <-tick.C:
		}
		due, ok := t.due()
		if !ok {
			return
		}
		if len(due) == 0 {
			continue
		}
		cs := make([]queue.Contender, len(due))
		for i, h := range due {
			cs[i] = h.Self
		}
		ctx, cancel := context.WithTimeout(context.Background(), SweepPeriod)
		gone, err := b.Gone(ctx, cs)
		cancel()
		if err == nil {
			t.lose(due, gone)
		}
	}
}

// due returns the holds that were there at the previous sweep and are not
// being released, and marks the rest for the next; ok false, once there
// are none left, ends the sweep.
func (t *Tracker) due() (due []*Hold, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.holds) == 0 {
		t.sweeping = false
		return nil, false
	}
	for h := range t.holds {
		if h.old && !h.releasing {
			due = append(due, h)
		}
		h.old = true
	}
	return due, true
}

// lose tells those of due that Backend.Gone found gone, if they are
// still tracked and not being released.
func (t *Tracker) lose(due []*Hold, gone []queue.Contender) {
	if len(gone) == 0 {
		return
	}
	byKey := make(map[queue.Contender]*Hold, len(due))
	for _, h := range due {
		byKey[h.Self] = h
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range gone {
		if h := byKey[c]; h != nil && !h.releasing {
			if _, tracked := t.holds[h]; tracked {
				delete(t.holds, h)
				h.end()
			}
		}
	}
}

// endAll tells every hold that the session has ended.
func (t *Tracker) endAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for h := range t.holds {
		h.end()
	}
	t.holds = nil
	t.sweeping = false
}
