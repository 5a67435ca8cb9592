package queue

import (
	"errors"
	"strings"
	"testing"

	"github.com/turnstile-go/turnstile"
)

const (
	x = turnstile.Exclusive
	s = turnstile.Shared
	c = turnstile.Candidate
)

// q builds a queue in server order from "w1 r1 r2" style words: the
// first letter gives the kind (w/x exclusive, r shared, c candidate) and
// the word is the key.
func q(words string) []Contender {
	var cs []Contender
	for i, w := range strings.Fields(words) {
		k := map[byte]turnstile.Kind{'w': x, 'x': x, 'r': s, 'c': c, 'p': turnstile.Permit}[w[0]]
		cs = append(cs, Contender{Key: w, Kind: k, Seq: int64(i + 1)})
	}
	return cs
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		rule, queue, self string
		admitted          bool
		wait              string // key waited for when not admitted
		last              bool
	}{
		// mutex / write lock: admitted when first, else waits for its immediate predecessor.
		{"exclusive alone", "x1", "x1", true, "", false},
		{"exclusive first", "x1 x2 x3", "x1", true, "", false},
		{"exclusive second waits first", "x1 x2 x3", "x2", false, "x1", true},
		{"exclusive third waits predecessor", "x1 x2 x3", "x3", false, "x2", false},
		{"writer behind one reader", "r1 w1", "w1", false, "r1", true},
		{"writer behind readers waits the last", "r1 r2 r3 w1", "w1", false, "r3", false},
		{"writer behind writer and reader", "w1 r1 w2", "w2", false, "r1", false},
		// read lock: admitted when no writer is ahead, else waits for the nearest writer ahead.
		{"reader alone", "r1", "r1", true, "", false},
		{"readers share", "r1 r2 r3", "r3", true, "", false},
		{"reader behind holding writer", "w1 r1", "r1", false, "w1", true},
		{"reader behind writer behind reader", "r1 w1 r2", "r2", false, "w1", true},
		{"reader behind several writers waits the nearest", "w1 w2 w3 r1", "r1", false, "w3", false},
		{"reader behind writers and readers", "w1 r1 w2 r2 r3", "r3", false, "w2", false},
		{"reader ahead of a writer is not blocked by it", "r1 r2 w1 r3", "r2", true, "", false},
		{"reader behind a waiting writer is blocked (no starvation)", "r1 r2 w1 r3", "r3", false, "w1", true},
		// election: the first leads, the others wait for their predecessor.
		{"candidate leads", "c1 c2", "c1", true, "", false},
		{"candidate waits predecessor who leads", "c1 c2", "c2", false, "c1", true},
		{"candidate waits predecessor", "c1 c2 c3", "c3", false, "c2", false},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			d, err := Decide(q(tc.queue), tc.self)
			if err != nil {
				t.Fatal(err)
			}
			if d.Admitted != tc.admitted || d.Wait.Key != tc.wait || d.Last != tc.last {
				t.Errorf("Decide(%q, %s) = admitted %v, wait %q, last %v; want %v, %q, %v",
					tc.queue, tc.self, d.Admitted, d.Wait.Key, d.Last, tc.admitted, tc.wait, tc.last)
			}
		})
	}
}

// The read-write queue of the design: W1(holding) R1 R2 R3 W2 R4. A
// release of W1 must wake exactly R1–R3; each watches one distinct node.
func TestDecideReadWriteQueue(t *testing.T) {
	queue := q("w1 r1 r2 r3 w2 r4")
	want := map[string]struct {
		wait string
		last bool
	}{"r1": {"w1", true}, "r2": {"w1", true}, "r3": {"w1", true}, "w2": {"r3", false}, "r4": {"w2", false}}
	for self, w := range want {
		d, err := Decide(queue, self)
		if err != nil || d.Admitted || d.Wait.Key != w.wait || d.Last != w.last {
			t.Errorf("%s: %+v, %v; want wait %s, last %v", self, d, err, w.wait, w.last)
		}
	}
	after := queue[1:] // W1 released
	for _, self := range []string{"r1", "r2", "r3"} {
		if d, _ := Decide(after, self); !d.Admitted {
			t.Errorf("%s not admitted after w1 left", self)
		}
	}
	for _, self := range []string{"w2", "r4"} {
		if d, _ := Decide(after, self); d.Admitted {
			t.Errorf("%s admitted after w1 left", self)
		}
	}
}

// A queue as a backend may return it after a join: only the first
// contender, the predecessor and self. The decision must be the one the
// full queue gives.
func TestDecidePartialQueue(t *testing.T) {
	full := q("x1 x2 x3 x4")
	for i := range full {
		self := full[i].Key
		partial := []Contender{full[0]}
		if i > 1 {
			partial = append(partial, full[i-1])
		}
		if i > 0 {
			partial = append(partial, full[i])
		}
		dp, _ := Decide(partial, self)
		df, _ := Decide(full, self)
		if dp != df {
			t.Errorf("%s: partial %+v, full %+v", self, dp, df)
		}
	}
}

func TestDecideSelfGone(t *testing.T) {
	_, err := Decide(q("x1 x2"), "x9")
	if !errors.Is(err, turnstile.ErrLost) {
		t.Fatalf("err = %v, want ErrLost", err)
	}
}

func TestParseNode(t *testing.T) {
	id := NewID()
	if len(id) != idLen || id == NewID() {
		t.Fatalf("NewID() = %q: want %d hex chars, unique", id, idLen)
	}
	for _, k := range []turnstile.Kind{x, s, c, turnstile.Permit} {
		for _, n := range []int{1, 3, MaxPermits} {
			if k != turnstile.Permit {
				n = 0
			}
			gk, gn, gid, ok := ParseNode(Node(Word(k, n), id))
			if !ok || gk != k || gn != n || gid != id {
				t.Errorf("ParseNode(Node(%v, %d)) = %v %d %q %v", k, n, gk, gn, gid, ok)
			}
		}
	}
	for _, foreign := range []string{
		"", "lock", "lock-", "config", "lock-xyz", "lock-0123456789abcdeg", "lock-0123456789ABCDEF",
		"write-0123456789abcdef", "lock-0123456789abcdef0", "_c_0123-lock-0000000001",
		"sem-0123456789abcdef", "sem0-0123456789abcdef", "sem03-0123456789abcdef", "sem+3-0123456789abcdef",
		"sem1048577-0123456789abcdef", "sem99999999-0123456789abcdef", "semx-0123456789abcdef",
	} {
		if _, _, _, ok := ParseNode(foreign); ok {
			t.Errorf("ParseNode(%q) accepted a foreign entry", foreign)
		}
	}
}

func TestFits(t *testing.T) {
	p := func(n int) Contender { return Contender{Kind: turnstile.Permit, Permits: int32(n)} }
	for _, tc := range []struct {
		holders []Contender
		permits int
		want    bool
	}{
		{nil, 1, true},
		{[]Contender{p(3), p(3)}, 3, true},
		{[]Contender{p(3), p(3), p(3)}, 3, false},
		{[]Contender{p(3), p(3)}, 2, false}, // the one admitted asks for fewer
		{[]Contender{p(1)}, 3, false},       // a holder asked for fewer
		{[]Contender{p(5), p(2)}, 5, false}, // the fewest of all
		{[]Contender{p(5), p(5)}, 9, true},  // more asked, fewer held to
		{[]Contender{{Kind: x}}, 3, false},  // a mutex's contender holds alone
		{[]Contender{{Kind: s}, p(4)}, 4, false},
	} {
		if got := Fits(tc.holders, tc.permits); got != tc.want {
			t.Errorf("Fits(%v, %d) = %v, want %v", tc.holders, tc.permits, got, tc.want)
		}
	}
}

// In a semaphore's own queue, permit holders hold together, and a
// contender of another kind among them holds alone: the permits behind
// it wait for it, and it for the permits ahead.
func TestHolding(t *testing.T) {
	for _, tc := range []struct {
		queue string
		holds string // one letter per contender: h holds, w waits
	}{
		{"p1 p2 p3", "hhh"},
		{"p1 x2 p3", "hww"},
		{"x1 p2 p3", "hww"},
		{"p1 p2 x3 p4", "hhww"},
		{"r1 r2 x3 r4", "hhww"},
		{"x1 x2", "hw"},
	} {
		var got strings.Builder
		for _, h := range Holding(q(tc.queue)) {
			got.WriteByte(map[bool]byte{true: 'h', false: 'w'}[h])
		}
		if got.String() != tc.holds {
			t.Errorf("Holding(%s) = %s, want %s", tc.queue, got.String(), tc.holds)
		}
	}
	for self, want := range map[string]int{"p1": -1, "p3": 2, "p4": 2} {
		if got, err := PermitBlocker(q("p1 x2 x3 p3 p4"), self); err != nil || got != want {
			t.Errorf("PermitBlocker(%s) = %d, %v; want %d", self, got, err, want)
		}
	}
	if _, err := PermitBlocker(q("p1"), "p9"); !errors.Is(err, turnstile.ErrLost) {
		t.Errorf("PermitBlocker of a contender not queued: %v, want ErrLost", err)
	}
}
