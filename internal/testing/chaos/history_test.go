package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile"
)

func TestCheck(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	x, r := turnstile.Exclusive, turnstile.Shared
	clean := []Op{
		{Client: "a", Kind: x, Token: 10, Granted: at(0), Released: at(100), Wrote: true},
		{Client: "b", Kind: r, Token: 12, Granted: at(110), Released: at(300), Read: Version{1, 10}},
		{Client: "c", Kind: r, Token: 13, Granted: at(120), Released: at(200), Read: Version{1, 10}},
		// a lost at 900 while paused, overtaken by d at 1000
		{Client: "a", Kind: x, Token: 14, Granted: at(310), Released: at(1500), Lost: true, LostAt: at(900), Paused: true, Refused: true, Read: Version{1, 10}},
		{Client: "d", Kind: x, Token: 15, Granted: at(1000), Released: at(1100), Wrote: true, Read: Version{1, 10}},
	}
	writes := []Write{{"a", 10, 1}, {"d", 15, 2}}
	if bad := Check(clean, writes, time.Second); len(bad) != 0 {
		t.Fatalf("clean history: %v", bad)
	}
	for _, c := range []struct {
		what   string
		ops    []Op
		writes []Write
		want   string
	}{
		{"late write", clean, []Write{{"a", 10, 1}, {"d", 15, 2}, {"a", 14, 2}}, "write 2 by a"},
		{"lost update", clean, []Write{{"a", 10, 1}, {"d", 15, 1}}, "write 1 by d"},
		{"two live holders", replace(clean, 3, func(op *Op) { op.Lost = false }), writes, "two live holders"},
		{"smaller token overtakes", replace(clean, 4, func(op *Op) { op.Token = 11 }), writes, "not larger"},
		{"loss not noticed", replace(clean, 3, func(op *Op) { op.LostAt = time.Time{} }), writes, "Lost() closed at"},
		{"loss noticed late", replace(clean, 3, func(op *Op) { op.LostAt = at(2100) }), writes, "Lost() closed at"},
		{"reader sees a later write", replace(clean, 1, func(op *Op) { op.Read = Version{2, 15} }), writes, "read a write by token 15"},
		{"writer overlaps readers", replace(clean, 2, func(op *Op) { op.Kind = x }), writes, "two live holders"},
	} {
		bad := Check(c.ops, c.writes, time.Second)
		if !strings.Contains(strings.Join(bad, "\n"), c.want) {
			t.Errorf("%s: violations %q, want one with %q", c.what, bad, c.want)
		}
	}
}

func replace(ops []Op, i int, f func(*Op)) []Op {
	out := append([]Op(nil), ops...)
	f(&out[i])
	return out
}

func TestCheckPermits(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r := turnstile.Shared
	clean := []Op{
		{Client: "a", Kind: r, Token: 10, Granted: at(0), Released: at(300)},
		{Client: "b", Kind: r, Token: 11, Granted: at(100), Released: at(200)},
		// c takes b's permit, d a's
		{Client: "c", Kind: r, Token: 12, Granted: at(250), Released: at(2000), Lost: true, LostAt: at(900)},
		{Client: "d", Kind: r, Token: 13, Granted: at(310), Released: at(1100)},
		// c lost its permit at 900, and e takes it
		{Client: "e", Kind: r, Token: 14, Granted: at(1000), Released: at(1100)},
	}
	if bad := CheckPermits(clean, 2, time.Second); len(bad) != 0 {
		t.Fatalf("clean history: %v", bad)
	}
	for _, c := range []struct {
		what string
		ops  []Op
		want string
	}{
		{"three holders", replace(clean, 1, func(op *Op) { op.Released = at(260) }), "c (token 12) granted"},
		{"loss not noticed", replace(clean, 2, func(op *Op) { op.LostAt = time.Time{} }), "e (token 14) granted"},
		{"loss noticed late", replace(clean, 2, func(op *Op) { op.LostAt = at(2100) }), "e (token 14) granted"},
		{"not lost", replace(clean, 2, func(op *Op) { op.Lost = false }), "e (token 14) granted"},
	} {
		bad := CheckPermits(c.ops, 2, time.Second)
		if !strings.Contains(strings.Join(bad, "\n"), c.want) {
			t.Errorf("%s: violations %q, want one with %q", c.what, bad, c.want)
		}
	}
}

// Foreign holds have no token: Check finds their overlaps with
// turnstile's holds and with each other, and lets pass only those where
// one side's session had ended.
func TestCheckForeign(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	x := turnstile.Exclusive
	clean := []Op{
		{Client: "a", Kind: x, Token: 10, Granted: at(0), Released: at(100), Wrote: true},
		{Client: "f", Kind: x, Foreign: true, Granted: at(110), Released: at(200)},
		{Client: "b", Kind: x, Token: 11, Granted: at(210), Released: at(300), Wrote: true, Read: Version{1, 10}},
		// c lost at 900 while paused, overtaken by g at 1000 and h at 1200
		{Client: "c", Kind: x, Token: 12, Granted: at(310), Released: at(1500), Lost: true, LostAt: at(900), Paused: true, Refused: true},
		{Client: "g", Kind: x, Foreign: true, Granted: at(1000), Released: at(1100)},
		// h's session ended while it was paused; it learned so only after
		// letting go, and d and i were granted meanwhile
		{Client: "h", Kind: x, Foreign: true, Granted: at(1200), Released: at(2500), Lost: true, LostAt: at(2600), Paused: true},
		{Client: "d", Kind: x, Token: 13, Granted: at(1800), Released: at(1900), Wrote: true, Read: Version{2, 11}},
		// i's session ended at 1700, while it waited: its grant is void
		{Client: "i", Kind: x, Foreign: true, Granted: at(1850), Released: at(1950), Lost: true, LostAt: at(1700)},
	}
	writes := []Write{{"a", 10, 1}, {"b", 11, 2}, {"d", 13, 3}}
	if bad := Check(clean, writes, time.Second); len(bad) != 0 {
		t.Fatalf("clean history: %v", bad)
	}
	if got := Excused(clean, time.Second); len(got) != 5 {
		t.Errorf("excused overlaps %q, want 5: c-g, c-h, h-d, h-i, d-i", got)
	}
	for _, c := range []struct {
		what string
		ops  []Op
		want string
	}{
		{"foreign granted while turnstile holds", replace(clean, 1, func(op *Op) { op.Granted = at(50) }), "f (foreign) granted at 00:00:00.050 while a (token 10) held"},
		{"turnstile granted while foreign holds", replace(clean, 5, func(op *Op) { op.Lost, op.LostAt = false, time.Time{} }), "d (token 13) granted at 00:00:01.800 while h (foreign) held"},
		{"two live foreign holders", replace(clean, 4, func(op *Op) { op.Released = at(1250) }), "h (foreign) granted at 00:00:01.200 while g (foreign) held"},
		{"foreign overlaps a hold lost unnoticed", replace(clean, 3, func(op *Op) { op.LostAt = at(2100) }), "c (token 12) overtaken by g at 00:00:01.000, but its Lost() closed at"},
		{"foreign grant on a live session", replace(clean, 7, func(op *Op) { op.Lost, op.LostAt = false, time.Time{} }), "i (foreign) granted at 00:00:01.850 while d (token 13) held"},
	} {
		bad := Check(c.ops, writes, time.Second)
		if !strings.Contains(strings.Join(bad, "\n"), c.want) {
			t.Errorf("%s: violations %q, want one with %q", c.what, bad, c.want)
		}
	}
}
