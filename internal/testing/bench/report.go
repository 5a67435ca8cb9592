package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Markdown writes each server's results as tables: every figure beside
// the baseline's (and the herd's, where it runs), and the ratio of ours
// to the baseline's.
func Markdown(w io.Writer, results []Result) {
	for _, r := range results {
		fmt.Fprintf(w, "### %s %s\n\n", r.Server, r.Version)
		if r.Matrix {
			matrix(w, r)
		}
		if r.Cost != nil {
			cost(w, r)
		}
		if r.ManyNames != nil {
			manyNames(w, r)
		}
		if r.History != nil {
			history(w, r)
		}
		if r.Semaphores != nil {
			semaphores(w, r)
		}
		if r.LockDelays != nil {
			lockDelays(w, r)
		}
	}
}

// matrix writes the uncontended, contended and drain tables.
func matrix(w io.Writer, r Result) {
	head := []string{"", r.Names[Ours], r.Names[Baseline], r.Names[Herd], r.Names[Ours] + " ÷ " + r.Names[Baseline]}
	fmt.Fprintf(w, "Uncontended: one contender, Lock then Unlock.\n\n")
	u := r.Uncontended
	table(w, head, [][]string{
		row("Lock+Unlock per second", u.PerSec),
		row("latency p50 (ms)", u.P50),
		row("latency p99 (ms)", u.P99),
		row("server requests per Lock+Unlock", pick(u.Work, requests)),
		row("watch notifications per Lock+Unlock", pick(u.Work, notifications)),
	})

	head[0] = "N"
	contended := func(title string, f func(Contended) [3]float64) {
		var rows [][]string
		for _, c := range r.Contended {
			// No row where nothing happened, as no hand-off
			// latency with one contender.
			if v := f(c); v != [3]float64{} {
				rows = append(rows, row(strconv.Itoa(c.N), v))
			}
		}
		if rows != nil {
			fmt.Fprintf(w, "%s\n\n", title)
			table(w, head, rows)
		}
	}
	contended("Contended: hand-offs per second among N contenders, each on a session of its own.",
		func(c Contended) [3]float64 { return c.PerSec })
	contended("Hand-off latency p50 (ms), from the holder's Unlock call to the next holder's Lock returning.",
		func(c Contended) [3]float64 { return c.P50 })
	contended("Hand-off latency p99 (ms).",
		func(c Contended) [3]float64 { return c.P99 })
	contended("Server requests per hand-off.",
		func(c Contended) [3]float64 { return pick(c.Work, requests) })
	contended("Watch notifications the server sent per hand-off.",
		func(c Contended) [3]float64 { return pick(c.Work, notifications) })

	fmt.Fprintf(w, "Drain: N waiters queued behind a holder; from the holder's Unlock until each waiter has held the lock once and released it.\n\n")
	var rows [][]string
	for _, d := range r.Drains {
		n := strconv.Itoa(d.N)
		rows = append(rows,
			row(n+": time (ms)", d.Millis),
			row(n+": server requests", pick(d.Work, requests)),
			row(n+": watch notifications", pick(d.Work, notifications)))
	}
	table(w, head, rows)
}

// cost writes what a lock costs the client and the server's watches.
func cost(w io.Writer, r Result) {
	c := r.Cost
	fmt.Fprintf(w, "Cost: per uncontended Lock+Unlock on one session, and per lock held with %d held at once on %d names over one session. "+
		"Client figures are this process's, the server running in another.\n\n", c.Held, c.Held)
	table(w, head2(r, ""), [][]string{
		row2("allocations per Lock+Unlock", c.Mallocs),
		row2("bytes allocated per Lock+Unlock", c.Bytes),
		row2("goroutines started per Lock+Unlock", c.Goroutines),
		row2("client CPU per Lock+Unlock (µs)", c.CPU),
		row2("goroutines per held lock", c.HeldGoroutines),
		row2("heap and stack bytes per held lock", c.HeldBytes),
		row2("server watches per held lock", c.HeldWatches),
		row2("server requests per second per held lock", c.HeldRequests),
	})
}

// manyNames writes the rounds of many names on one session or two.
func manyNames(w io.Writer, r Result) {
	fmt.Fprintf(w, "Many names: every name locked by one value per session, all starting at once, each looping Lock+Unlock. "+
		"A round counts pairs, CPU and requests for a window once every value has held (– where that took over %d windows), "+
		"and counts errors and wedged values (still in a call %v after the round, or failing Unlock %d times) from its start; "+
		"counts are of all rounds together, the rest medians of rounds.\n\n", warmUpWindows, wedgedAfter, unlockTries)
	var rows [][]string
	for _, m := range r.ManyNames {
		n := fmt.Sprintf("%d × %d", m.Names, m.Contenders)
		rows = append(rows,
			row2(n+": Lock+Unlock per second", m.PerSec),
			row2(n+": client CPU per Lock+Unlock (µs)", m.CPU),
			row2(n+": server requests per Lock+Unlock", m.Requests),
			row2(n+": seconds until every value had held", m.FirstHolds),
			row2(n+": values that never held", m.NeverHeld),
			count(n+": errors", m.Errors),
			count(n+": refused as too many requests", m.Overloaded),
			count(n+": wedged values", m.Wedged))
	}
	table(w, head2(r, "names × sessions"), rows)
	for _, m := range r.ManyNames {
		for i, e := range m.FirstError {
			if e != "" {
				fmt.Fprintf(w, "- %s's first error at %d × %d: `%s`\n", r.Names[i], m.Names, m.Contenders, e)
			}
		}
	}
	fmt.Fprintln(w)
}

// history writes the cost of a name's past holds.
func history(w io.Writer, r Result) {
	fmt.Fprintf(w, "History: one contender's Lock+Unlock on a name after earlier holds of it by the same kind of lock, "+
		"on a server that never compacts, and an unrelated client's Put meanwhile.\n\n")
	first := r.History[0]
	at := fmt.Sprintf(" at %d", first.Holds)
	head := append(head2(r, "past holds"), r.Names[Ours]+" ÷ "+r.Names[Ours]+at, r.Names[Baseline]+" ÷ "+r.Names[Baseline]+at)
	put := func(d Depth) [2]float64 { return [2]float64{d.PutP50[0] / d.IdleP50, d.PutP50[1] / d.IdleP50} }
	var rows [][]string
	for _, d := range r.History {
		n := strconv.Itoa(d.Holds)
		grown := func(label string, f func(Depth) [2]float64) []string {
			v, v0 := f(d), f(first)
			return append(row2(n+": "+label, v), ratio(v[0], v0[0]), ratio(v[1], v0[1]))
		}
		rows = append(rows,
			grown("Lock+Unlock p50 (ms)", func(d Depth) [2]float64 { return d.P50 }),
			grown("client CPU per Lock+Unlock (µs)", func(d Depth) [2]float64 { return d.CPU }),
			grown("unrelated Put p50 (ms) meanwhile", func(d Depth) [2]float64 { return d.PutP50 }),
			grown(fmt.Sprintf("unrelated Put p50 ÷ its %s ms with no lock traffic", num(d.IdleP50)), put),
			grown(fmt.Sprintf("unrelated Put p99 (ms) meanwhile (%s with no lock traffic)", num(d.IdleP99)),
				func(d Depth) [2]float64 { return d.PutP99 }))
	}
	table(w, head, rows)
}

// semaphores writes the semaphore rounds, turnstile's beside the naive
// semaphore's, which row2 shows in the baseline's place.
func semaphores(w io.Writer, r Result) {
	fmt.Fprintf(w, "Semaphore: a semaphore of %d permits that N contenders, each on a session of its own, loop Acquire then Release; "+
		"a grant is an Acquire returning, and is released at once, so that a release is counted as a grant. Medians of rounds.\n\n",
		r.Semaphores[0].Permits)
	var rows [][]string
	for _, sem := range r.Semaphores {
		n := strconv.Itoa(sem.N)
		rows = append(rows,
			row2(n+": hand-offs (grants) per second", sem.PerSec),
			row2(n+": server requests per grant", [2]float64{sem.Work[Ours].Requests, sem.Work[naive].Requests}),
			row2(n+": watch notifications per release", [2]float64{sem.Work[Ours].Notifications, sem.Work[naive].Notifications}))
	}
	names := r.SemaphoreNames
	table(w, []string{"N", names[Ours], names[naive], names[Ours] + " ÷ " + names[naive]}, rows)
}

// lockDelays writes the Mutex's hand-offs with a lock-delay beside its
// hand-offs without, which row2 shows in the baseline's place.
func lockDelays(w io.Writer, r Result) {
	fmt.Fprintf(w, "Lock-delay: turnstile's Mutex with a lock-delay of %v and without, N contenders, each on a session of its own, "+
		"loop Lock then Unlock; a round counts once every contender has held. Every hold ends in an Unlock, whose release "+
		"lets the next contender in at once. Medians of rounds, except the hand-offs over %v, counted in all rounds together: "+
		"those counted, and those before, as the contenders joined.\n\n", r.LockDelays[0].Delay, SlowHandOff)
	var rows [][]string
	for _, l := range r.LockDelays {
		n := strconv.Itoa(l.N)
		rows = append(rows,
			row2(n+": hand-offs per second", l.PerSec),
			row2(n+": hand-off latency p50 (ms)", l.P50),
			row2(n+": hand-off latency p99 (ms)", l.P99),
			row2(n+": server requests per hand-off", [2]float64{l.Work[withDelay].Requests, l.Work[withoutDelay].Requests}),
			row2(n+": watch notifications per hand-off", [2]float64{l.Work[withDelay].Notifications, l.Work[withoutDelay].Notifications}),
			count(fmt.Sprintf("%s: hand-offs over %v", n, SlowHandOff), l.Slow),
			count(fmt.Sprintf("%s: hand-offs over %v as the contenders joined", n, SlowHandOff), l.SlowEarly))
	}
	names := lockDelayNames(r.LockDelays[0].Delay)
	table(w, []string{"N", names[withDelay], names[withoutDelay], names[withDelay] + " ÷ " + names[withoutDelay]}, rows)
}

// head2 is the head of a table of ours beside the baseline.
func head2(r Result, first string) []string {
	return []string{first, r.Names[Ours], r.Names[Baseline], r.Names[Ours] + " ÷ " + r.Names[Baseline]}
}

// row2 is a row of ours beside the baseline, and their ratio.
func row2(label string, v [2]float64) []string {
	return []string{label, num(v[Ours]), num(v[Baseline]), ratio(v[Ours], v[Baseline])}
}

// count is a row of counts, which have no ratio.
func count(label string, v [2]int) []string {
	return []string{label, strconv.Itoa(v[Ours]), strconv.Itoa(v[Baseline]), "–"}
}

// ratio is a ÷ b, where both are figures a ratio means something for.
func ratio(a, b float64) string {
	if b <= 0 || a < 0 || math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func requests(c Counters) float64      { return c.Requests }
func notifications(c Counters) float64 { return c.Notifications }

func pick(cs [3]Counters, f func(Counters) float64) [3]float64 {
	return [3]float64{f(cs[0]), f(cs[1]), f(cs[2])}
}

// row is a table row: the label, each contestant's figure, and ours
// over the baseline's.
func row(label string, v [3]float64) []string {
	return []string{label, num(v[0]), num(v[1]), num(v[2]), ratio(v[Ours], v[Baseline])}
}

// num shows three significant digits or so, and no decimals where they
// would only be noise.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v), math.IsInf(v, 0):
		return "–"
	case v == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func table(w io.Writer, head []string, rows [][]string) {
	line := func(cells []string) { fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | ")) }
	line(head)
	align := []string{"---"}
	for range head[1:] {
		align = append(align, "---:")
	}
	line(align)
	for _, r := range rows {
		line(r)
	}
	fmt.Fprintln(w)
}

// The chart's geometry, in pixels: two plots side by side, the legend
// below.
const (
	plotW, plotH = 380, 260
	marginL      = 70
	marginT      = 40
	gap          = 110
	legendH      = 70
)

var colors = [3]string{"#1565c0", "#ef6c00", "#9e9e9e"} // ours, baseline, herd

// Chart writes an SVG of hand-offs per second and server requests per
// hand-off against the number of contenders, for every contestant on
// every server, both axes logarithmic.
func Chart(w io.Writer, results []Result) {
	width := marginL + 2*plotW + gap + 30
	height := marginT + plotH + 50 + legendH
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	plots := []struct {
		title string
		f     func(Contended) [3]float64
	}{
		{"hand-offs per second", func(c Contended) [3]float64 { return c.PerSec }},
		{"server requests per hand-off", func(c Contended) [3]float64 { return pick(c.Work, requests) }},
	}
	for p, plot := range plots {
		x0 := marginL + p*(plotW+gap)
		var ns []int
		var all []float64
		for _, r := range results {
			for _, c := range r.Contended {
				ns = append(ns, c.N)
				v := plot.f(c)
				all = append(all, v[:]...)
			}
		}
		xs := newAxis(ns, x0, x0+plotW, 2)
		ys := newAxis(all, marginT+plotH, marginT, 10)
		fmt.Fprintf(w, `<text x="%d" y="%d" font-size="14" text-anchor="middle">%s (log scale)</text>`+"\n", x0+plotW/2, marginT-15, plot.title)
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>`+"\n", x0, marginT, plotW, plotH)
		slices.Sort(ns)
		for _, n := range slices.Compact(ns) {
			x := xs.at(float64(n))
			fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x, marginT, x, marginT+plotH)
			fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x, marginT+plotH+16, n)
		}
		fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle">contenders (N), log scale</text>`+"\n", x0+plotW/2, marginT+plotH+34)
		for _, t := range ys.ticks() {
			y := ys.at(t)
			fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x0+plotW, y)
			fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, y+4, strconv.FormatFloat(t, 'g', -1, 64))
		}
		for s, r := range results {
			for i := range 3 {
				var pts []string
				for _, c := range r.Contended {
					if v := plot.f(c)[i]; v > 0 {
						pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs.at(float64(c.N)), ys.at(v)))
					}
				}
				fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n",
					strings.Join(pts, " "), colors[i], dash(s))
				for _, pt := range pts {
					x, y, _ := strings.Cut(pt, ",")
					fmt.Fprintf(w, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", x, y, colors[i])
				}
			}
		}
	}
	for s, r := range results {
		for i, name := range r.Names {
			x := marginL + i*230
			y := marginT + plotH + 60 + s*22
			fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n",
				x, y-4, x+30, y-4, colors[i], dash(s))
			fmt.Fprintf(w, `<text x="%d" y="%d">%s %s</text>`+"\n", x+36, y, r.Server, name)
		}
	}
	fmt.Fprintln(w, "</svg>")
}

// dash tells the servers apart: solid lines for the first, dashes for
// the second.
func dash(server int) string {
	if server == 0 {
		return "none"
	}
	return "6 4"
}

// axis maps values to pixels on a logarithmic scale whose ends are whole
// powers of base around the values.
type axis struct {
	base     float64
	lo, hi   float64 // exponents
	from, to int     // pixels
}

func newAxis[T int | float64](values []T, from, to int, base float64) axis {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		if v > 0 {
			e := math.Log(float64(v)) / math.Log(base)
			lo, hi = min(lo, math.Floor(e)), max(hi, math.Ceil(e))
		}
	}
	if lo >= hi {
		lo, hi = 0, 1
	}
	return axis{base: base, lo: lo, hi: hi, from: from, to: to}
}

func (a axis) at(v float64) float64 {
	e := math.Log(v) / math.Log(a.base)
	return float64(a.from) + (e-a.lo)/(a.hi-a.lo)*float64(a.to-a.from)
}

func (a axis) ticks() []float64 {
	var t []float64
	for e := a.lo; e <= a.hi; e++ {
		t = append(t, math.Pow(a.base, e))
	}
	return t
}
