// Package chaos checks the promise users cannot test themselves: under
// pauses, partitions, crashes and leader fail-overs, a fenced resource is
// never written out of order by two holders, and every lost hold is
// noticed. Clients loop over a recipe (mutex, read-write lock, election,
// semaphore) and read-modify-write a shared register through a guard with
// their hold's token, or only read it where holds share, while a nemesis
// injects faults; the history they record is then checked. Clients of
// other libraries may contend on the mutex's name beside turnstile's:
// their holds carry no token, and are checked for overlap only.
//
// The checker tests invariants rather than linearizability: the register
// lives in one process and every access to it is serialised by its guard,
// so any history of it is linearizable, whoever writes. What can go wrong
// is who writes: a former holder's late write accepted, two live holders
// at once, a loss that is never noticed. Those are what it looks for.
package chaos

import (
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

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

	// Foreign marks a hold of another library's lock on the mutex's
	// name: it has no token and does not touch the register, and is
	// checked only for overlap. Its LostAt is when the client learned
	// that the session ended, which may be before Granted (a grant on a
	// session already ended) or after Released.
	Foreign bool
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

// held is how many bytes the log of accepted writes holds.
func (r *Register) held() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return uint64(cap(r.log)) * uint64(unsafe.Sizeof(Write{}))
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
	for e, l := range overlaps(ops) {
		if e.Foreign || l.Foreign {
			if v := foreignOverlap(e, l, notice); v != "" {
				bad = append(bad, v)
			}
			continue
		}
		switch {
		case l.Token <= e.Token:
			bad = append(bad, fmt.Sprintf("%s (token %d) granted while %s (token %d) held, with a token not larger", l.Client, l.Token, e.Client, e.Token))
		case !e.Lost:
			bad = append(bad, twoLive(e, l))
		case lateNotice(e, l, notice):
			bad = append(bad, fmt.Sprintf("%s (token %d) overtaken by %s at %s, but its Lost() closed at %s", e.Client, e.Token, l.Client, l.Granted.Format(stamp), e.LostAt.Format(stamp)))
		}
	}
	for _, e := range ops {
		if !e.Foreign && !e.Refused && e.Read.Token >= e.Token {
			bad = append(bad, fmt.Sprintf("%s (token %d) read a write by token %d", e.Client, e.Token, e.Read.Token))
		}
	}
	return bad
}

// overlaps yields every pair of holds whose recorded intervals overlap,
// one of them exclusive, the earlier granted first.
func overlaps(ops []Op) iter.Seq2[Op, Op] {
	return func(yield func(Op, Op) bool) {
		ops = slices.SortedFunc(slices.Values(ops), func(a, b Op) int { return a.Granted.Compare(b.Granted) })
		for i, e := range ops {
			for _, l := range ops[i+1:] {
				if !l.Granted.Before(e.Released) {
					break
				}
				if e.Kind == turnstile.Shared && l.Kind == turnstile.Shared {
					continue
				}
				if !yield(e, l) {
					return
				}
			}
		}
	}
}

// foreignOverlap judges an overlap in which a foreign hold takes part,
// and returns the violation, or "" when the overlap is a paused holder's:
//
//   - l is foreign and was granted on a session that had already ended;
//   - or e was lost: if e is turnstile's, its Lost() must have closed
//     within notice of l's grant, as between turnstile holds; a foreign
//     client promises no such thing, and its loss may be learned late.
//
// Either way the lock did not hand the hold to two live sessions.
func foreignOverlap(e, l Op, notice time.Duration) string {
	switch {
	case l.Foreign && l.Lost && !l.LostAt.After(l.Granted):
		return ""
	case !e.Lost:
		return twoLive(e, l)
	case !e.Foreign && lateNotice(e, l, notice):
		return fmt.Sprintf("%s (token %d) overtaken by %s at %s, but its Lost() closed at %s", e.Client, e.Token, l.Client, l.Granted.Format(stamp), e.LostAt.Format(stamp))
	}
	return ""
}

// lateNotice reports that e, overtaken by l, did not see Lost() close
// within notice of l's grant.
func lateNotice(e, l Op, notice time.Duration) bool {
	return e.LostAt.IsZero() || e.LostAt.After(l.Granted.Add(notice))
}

func twoLive(e, l Op) string {
	return fmt.Sprintf("%s (%s) granted at %s while %s (%s) held from %s to %s, a hold it released normally: two live holders",
		l.Client, holdName(l), l.Granted.Format(stamp), e.Client, holdName(e), e.Granted.Format(stamp), e.Released.Format(stamp))
}

// holdName names a hold in a message: its token, or "foreign".
func holdName(op Op) string {
	if op.Foreign {
		return "foreign"
	}
	return fmt.Sprintf("token %d", op.Token)
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

// Excused returns the overlaps in which a foreign hold takes part that
// Check lets pass because one side's session had ended, one line each.
func Excused(ops []Op, notice time.Duration) []string {
	var lines []string
	for e, l := range overlaps(ops) {
		if !e.Foreign && !l.Foreign || foreignOverlap(e, l, notice) != "" {
			continue
		}
		why := fmt.Sprintf("%s's session had ended; it learned so %s", e.Client, relative(e.LostAt, l.Granted))
		if l.Foreign && l.Lost && !l.LostAt.After(l.Granted) {
			why = fmt.Sprintf("%s was granted on a session that had ended at %s", l.Client, l.LostAt.Format(stamp))
		}
		lines = append(lines, fmt.Sprintf("%s (%s) granted at %s while %s (%s) held from %s: %s",
			l.Client, holdName(l), l.Granted.Format(stamp), e.Client, holdName(e), e.Granted.Format(stamp), why))
	}
	return lines
}

// relative says when t was, before or after the grant at g.
func relative(t, g time.Time) string {
	if d := t.Sub(g).Round(time.Millisecond); d >= 0 {
		return fmt.Sprintf("%v after the grant", d)
	}
	return fmt.Sprintf("%v before the grant", g.Sub(t).Round(time.Millisecond))
}

// Clients is one line on the holds of each client, in the order of
// their names, with the lost and paused ones of foreign clients.
func Clients(recipe string, ops []Op) string {
	type count struct{ holds, lost, late, paused int }
	counts := map[string]*count{}
	foreign := map[string]bool{}
	for _, op := range ops {
		c := counts[op.Client]
		if c == nil {
			c = &count{}
			counts[op.Client] = c
		}
		c.holds++
		foreign[op.Client] = op.Foreign
		if op.Lost {
			c.lost++
			if op.LostAt.After(op.Released) {
				c.late++
			}
		}
		if op.Paused {
			c.paused++
		}
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		c := counts[name]
		if !foreign[name] {
			parts = append(parts, fmt.Sprintf("%s %d", name, c.holds))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %d (lost %d, learned after letting go %d; paused %d)", name, c.holds, c.lost, c.late, c.paused))
	}
	return fmt.Sprintf("%s holds by client: %s", recipe, strings.Join(parts, ", "))
}

const stamp = "15:04:05.000"

// Summary is one line on a run of one recipe, its foreign holds left
// out; reopened counts the sessions its clients opened after losing one.
func Summary(recipe string, ops []Op, faults map[string]int, reopened, violations int) string {
	var holds, wrote, read, skipped, refused, lost, noticed, paused int
	for _, op := range ops {
		if op.Foreign {
			continue // see Clients
		}
		holds++
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
		recipe, holds, wrote, read, refused, skipped, strings.Join(f, ", "), reopened, lost, noticed, paused, violations)
}
