package recipe

import (
	"testing"

	"github.com/turnstile-go/turnstile/internal/queue"
)

// A hold's loss channel is made only when asked for, so it must tell the
// same story whenever it is asked: before the loss, after it, or never.
func TestHoldLost(t *testing.T) {
	var tr Tracker
	early := &Hold{Self: queue.Contender{Key: "early"}}
	late := &Hold{Self: queue.Contender{Key: "late"}}
	released := &Hold{Self: queue.Contender{Key: "released"}}
	tr.holds = map[*Hold]struct{}{early: {}, late: {}, released: {}}

	lost := tr.Lost(early)
	if Closed(lost) || tr.ended(early) {
		t.Fatal("a hold not lost reads as lost")
	}
	if tr.Lost(early) != lost {
		t.Fatal("a hold's loss channel changed between two calls")
	}
	tr.remove(released, false)
	tr.endAll()
	if !Closed(lost) || !tr.ended(early) {
		t.Fatal("the session's end did not close the channel asked for before it")
	}
	if !Closed(tr.Lost(late)) || !tr.ended(late) {
		t.Fatal("a hold lost before its channel was asked for reads as held")
	}
	if Closed(tr.Lost(released)) || tr.ended(released) {
		t.Fatal("a released hold was told of the session's end")
	}

	// A hold found lost at its Release is told so then.
	found := &Hold{}
	lost = tr.Lost(found)
	tr.remove(found, true)
	if !Closed(lost) {
		t.Fatal("a hold found lost at its Release was not told")
	}
}
