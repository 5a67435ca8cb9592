// Package chaos checks the promise users cannot test themselves: under
// pauses, partitions, crashes and leader fail-overs, a fenced resource is
// never written out of order by two holders, and every lost hold is
// noticed. Clients loop over a recipe (mutex, read-write lock, election,
// semaphore) and read-modify-write a shared register through a guard with
// their hold's token, or only read it where holds share, while a nemesis
// injects faults; the history they record is then checked.
//
// The checker tests invariants rather than linearizability: the register
// lives in one process and every access to it is serialised by its guard,
// so any history of it is linearizable, whoever writes. What can go wrong
// is who writes: a former holder's late write accepted, two live holders
// at once, a loss that is never noticed. Those are what it looks for.
package chaos

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/turnstile-go/turnstile"
)

// Op is one hold in the history, as its client saw it.
type Op struct {
	Recipe string
	Client string
	Kind   turnstile.Kind // Exclusive (writes) or Shared (reads)
	Token  int64
	// Granted is when the acquisition returned; Released, when the
	// client let go (before its Unlock, Resign or return). The real hold
	// lies outside these bounds, so holds whose bounds overlap did
	// overlap.
	Granted, Released time.Time
	// LostAt is when the hold's Lost() closed before Released; zero if it
	// did not.
	LostAt time.Time
	// Lost reports that the hold ended without its release: Unlock said
	// ErrLost, or Run cancelled the work.
	Lost bool
	// Paused reports that the nemesis stalled the client between its read
	// and its write, unable to look at Lost().
	Paused bool

	Read    Version // what the hold read, if Refused is false
	Wrote   bool    // its write was accepted
	Skipped bool    // it saw Lost() closed and did not write
	Refused bool    // the guard refused its read or write as stale
}

// Version is the register's content: a counter and the token of the
// hold that wrote it.
type Version struct {
	Value, Token int64
}

// Write is one write the register's guard accepted.
type Write struct {
	Client string
	Token  int64
	Value  int64
}

// Guard admits operations on the register; a *turnstile.Fence is one.
type Guard interface {
	Do(seq turnstile.Sequencer, op func() error) error
}

// Unguarded admits everything: the broken variant the checker must catch.
type Unguarded struct{}

// Do runs op.
func (Unguarded) Do(_ turnstile.Sequencer, op func() error) error { return op() }

// Register is the protected resource: a counter that holds increment by
// reading it and writing one more, each step through the guard.
type Register struct {
	guard Guard
	mu    sync.Mutex
	cur   Version
	log   []Write
}

// NewRegister returns a register at zero behind guard.
func NewRegister(guard Guard) *Register { return &Register{guard: guard} }

// Read returns the register's content, if seq is admitted.
func (r *Register) Read(seq turnstile.Sequencer) (Version, error) {
	var v Version
	err := r.guard.Do(seq, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		v = r.cur
		return nil
	})
	return v, err
}

// Write sets the register to value, if seq is admitted.
func (r *Register) Write(seq turnstile.Sequencer, client string, value int64) error {
	return r.guard.Do(seq, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.cur = Version{Value: value, Token: seq.Token}
		r.log = append(r.log, Write{Client: client, Token: seq.Token, Value: value})
		return nil
	})
}

// Writes returns the accepted writes, in the order they landed.
func (r *Register) Writes() []Write {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// Check returns every violation in one recipe's history: ops are its
// holds, writes its register's accepted writes, and notice the bound on
// how long after a successor's grant a lost hold's Lost() may close.
//
//   - Accepted writes are in token order and each one increments the
//     last (no write from a former holder, no lost update).
//   - Of two holds that overlap, one of them a writer, the later one has
//     the larger token, and the earlier one was lost: never two live
//     holders.
//   - A hold overtaken by a later grant saw Lost() close, within notice
//     of that grant.
//   - A hold never read what a later holder wrote.
func Check(ops []Op, writes []Write, notice time.Duration) []string {
	var bad []string
	for i, w := range writes {
		prev := Write{}
		if i > 0 {
			prev = writes[i-1]
		}
		if w.Token <= prev.Token || w.Value != prev.Value+1 {
			bad = append(bad, fmt.Sprintf("write %d by %s: token %d value %d after token %d value %d", i, w.Client, w.Token, w.Value, prev.Token, prev.Value))
		}
	}
	ops = slices.SortedFunc(slices.Values(ops), func(a, b Op) int { return a.Granted.Compare(b.Granted) })
	for i, e := range ops {
		for _, l := range ops[i+1:] {
			if !l.Granted.Before(e.Released) {
				break
			}
			if e.Kind == turnstile.Shared && l.Kind == turnstile.Shared {
				continue
			}
			switch {
			case l.Token <= e.Token:
				bad = append(bad, fmt.Sprintf("%s (token %d) granted while %s (token %d) held, with a token not larger", l.Client, l.Token, e.Client, e.Token))
			case !e.Lost:
				bad = append(bad, fmt.Sprintf("%s (token %d) granted at %s while %s (token %d) held from %s to %s, a hold it released normally: two live holders",
					l.Client, l.Token, l.Granted.Format(stamp), e.Client, e.Token, e.Granted.Format(stamp), e.Released.Format(stamp)))
			case e.LostAt.IsZero() || e.LostAt.After(l.Granted.Add(notice)):
				bad = append(bad, fmt.Sprintf("%s (token %d) overtaken by %s at %s, but its Lost() closed at %s", e.Client, e.Token, l.Client, l.Granted.Format(stamp), e.LostAt.Format(stamp)))
			}
		}
		if !e.Refused && e.Read.Token >= e.Token {
			bad = append(bad, fmt.Sprintf("%s (token %d) read a write by token %d", e.Client, e.Token, e.Read.Token))
		}
	}
	return bad
}

// CheckPermits returns a violation for every hold of a semaphore with
// permits that was granted while permits others held: a hold counts
// until the client let go, unless it was lost and its Lost() closed
// within notice of the grant. Holds of a semaphore share, so Check finds
// nothing wrong between them.
func CheckPermits(ops []Op, permits int, notice time.Duration) []string {
	var bad []string
	ops = slices.SortedFunc(slices.Values(ops), func(a, b Op) int { return a.Granted.Compare(b.Granted) })
	for i, l := range ops {
		var held []string
		for _, e := range ops[:i] {
			gone := e.Lost && !e.LostAt.IsZero() && !e.LostAt.After(l.Granted.Add(notice))
			if e.Released.After(l.Granted) && !gone {
				held = append(held, fmt.Sprintf("%s (token %d) from %s", e.Client, e.Token, e.Granted.Format(stamp)))
			}
		}
		if len(held) >= permits {
			bad = append(bad, fmt.Sprintf("%s (token %d) granted at %s while %d of %d permits were held: %s",
				l.Client, l.Token, l.Granted.Format(stamp), len(held), permits, strings.Join(held, ", ")))
		}
	}
	return bad
}

const stamp = "15:04:05.000"

// Summary is one line on a run of one recipe; reopened counts the
// sessions its clients opened after losing one.
func Summary(recipe string, ops []Op, faults map[string]int, reopened, violations int) string {
	var wrote, read, skipped, refused, lost, noticed, paused int
	for _, op := range ops {
		switch {
		case op.Wrote:
			wrote++
		case op.Refused:
			refused++
		case op.Skipped:
			skipped++
		case op.Kind == turnstile.Shared:
			read++
		}
		if op.Lost {
			lost++
			if !op.LostAt.IsZero() && !op.LostAt.After(op.Released) {
				noticed++ // before the client let go
			}
		}
		if op.Paused {
			paused++
		}
	}
	var f []string
	for _, k := range slices.Sorted(maps.Keys(faults)) {
		f = append(f, fmt.Sprintf("%s %d", k, faults[k]))
	}
	return fmt.Sprintf("%s: %d holds (%d writes, %d reads, %d stale refused, %d skipped after Lost); faults: %s; sessions lost %d; holds lost %d (noticed while held %d), paused %d; violations %d",
		recipe, len(ops), wrote, read, refused, skipped, strings.Join(f, ", "), reopened, lost, noticed, paused, violations)
}
