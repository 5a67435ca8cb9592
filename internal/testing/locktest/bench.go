package locktest

import (
	"context"
	"fmt"
	"testing"

	"github.com/turnstile-go/turnstile/internal/testing/bench"
)

// Bench runs the scenarios of package bench on srv as sub-benchmarks
// (Uncontended, Contended/N=n, Drain/N=n), each contestant on the same
// server in alternating rounds, and reports each one's figures and ours
// over the baseline's. An op is a Lock+Unlock pair, a hand-off, or a
// whole drain. The scenarios are sized by rounds, windows and queue
// lengths rather than by b.N, so each runs once: see `go run
// ./benchmarks` for the whole matrix in one table.
func Bench(b *testing.B, srv *bench.Server, err error) {
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	ctx := context.Background()
	o := bench.Defaults()
	names := srv.Contestants
	b.Run("Uncontended", func(b *testing.B) {
		o := o
		o.Pairs = max(b.N, o.Pairs)
		u, err := srv.Uncontended(ctx, o)
		reportFigures(b, names, "pairs/s", u, err)
	})
	each := func(scenario string, ns []int, f func(b *testing.B, n int)) {
		b.Run(scenario, func(b *testing.B) {
			for _, n := range ns {
				b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) { f(b, n) })
			}
		})
	}
	each("Contended", o.Ns, func(b *testing.B, n int) {
		c, err := srv.Contended(ctx, o, n)
		reportFigures(b, names, "handoffs/s", c.Figures, err)
	})
	each("Drain", o.Drains, func(b *testing.B, n int) {
		d, err := srv.Drain(ctx, o, n)
		if err != nil {
			b.Fatal(err)
		}
		report(b, names, "ms", d.Millis)
		reportWork(b, names, d.Work)
	})
}

// report reports each contestant's figure in unit, as "zk.Lock-p99-ms",
// and ours over the baseline's, as "ratio-p99-ms".
func report(b *testing.B, c [3]bench.Contestant, unit string, v [3]float64) {
	b.ReportMetric(0, "ns/op") // the time of the whole benchmark, which says nothing
	for i := range c {
		b.ReportMetric(v[i], c[i].Name+"-"+unit)
	}
	if v[bench.Baseline] != 0 {
		b.ReportMetric(v[bench.Ours]/v[bench.Baseline], "ratio-"+unit)
	}
}

// reportFigures reports f, the rate in unit, or fails b with err.
func reportFigures(b *testing.B, c [3]bench.Contestant, unit string, f bench.Figures, err error) {
	if err != nil {
		b.Fatal(err)
	}
	report(b, c, unit, f.PerSec)
	report(b, c, "p50-ms", f.P50)
	report(b, c, "p99-ms", f.P99)
	reportWork(b, c, f.Work)
}

// reportWork reports the server's requests and watch notifications
// (events) per op.
func reportWork(b *testing.B, c [3]bench.Contestant, w [3]bench.Counters) {
	var requests, events [3]float64
	for i := range w {
		requests[i], events[i] = w[i].Requests, w[i].Notifications
	}
	report(b, c, "requests/op", requests)
	report(b, c, "events/op", events)
}
