package chaos

import (
	"context"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"
	"unsafe"
)

// Sample is, at one moment of a run, what must stay bounded however long
// the run lasts.
type Sample struct {
	At         time.Duration // since the faults began
	Goroutines int           // in this process: the clients, their proxies, the servers' peer proxies
	// Heap is the live heap after a collection, less History: the
	// history the checker needs grows with the holds by design.
	Heap, History uint64
	Watches       []int // on each server; -1 where it did not answer
	Nodes         int   // nodes or keys under the run's names; -1 if they could not be read
}

// Tolerance is how much a median may rise from one third of a run to
// the next before the rise counts as growth: the larger of Abs and Rel
// times the earlier median.
type Tolerance struct {
	Abs, Rel float64
}

// minThird is the fewest values each third of a series needs for Grows
// to judge it.
const minThird = 3

// Grows reports whether values, sampled at a steady pace, grow without
// bound, and says why in a line either way. The first third is the
// warm-up, when clients start, queues fill and caches warm, and is left
// out; the series grows if the median of its last third exceeds the
// median of its middle third by more than tol. Medians ignore the
// spikes a fault makes (a client cut off holds its goroutines, a
// restarted server has lost its watches), and a leak shows as a steady
// rise that carries the whole last third above the middle one. NaN
// values, samples that could not be read, are left out. A series too
// short to have minThird values in each third is never judged.
func Grows(values []float64, tol Tolerance) (bool, string) {
	n := len(values)
	middle := known(values[n/3 : 2*n/3])
	last := known(values[2*n/3:])
	if len(middle) < minThird || len(last) < minThird {
		return false, fmt.Sprintf("too few samples to judge (%d and %d in the last two thirds)", len(middle), len(last))
	}
	m, l := median(middle), median(last)
	allowed := max(tol.Abs, tol.Rel*m)
	if l-m > allowed {
		return true, fmt.Sprintf("grew from a median of %.1f in the middle third to %.1f in the last, more than the %.1f allowed", m, l, allowed)
	}
	return false, fmt.Sprintf("median %.1f in the middle third, %.1f in the last (%.1f allowed)", m, l, allowed)
}

func known(values []float64) []float64 {
	return slices.DeleteFunc(slices.Clone(values), math.IsNaN)
}

func median(values []float64) float64 {
	s := slices.Sorted(slices.Values(values))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// The tolerances of a soak, for each sampled quantity, in its unit.
// Goroutines and the heap move with the faults under way; watches with
// how many clients wait; nodes with how many are queued, up to one for
// each client and a session's lifetime of leftovers of the lost ones.
var (
	goroutineTolerance = Tolerance{Abs: 50, Rel: 0.10}
	heapTolerance      = Tolerance{Abs: 16, Rel: 0.25} // MiB
	watchTolerance     = Tolerance{Abs: 20, Rel: 0.25}
)

// sample takes one Sample of the run, started at start.
func (r *run) sample(start time.Time, recipes []*recipeRun) Sample {
	smp := Sample{At: time.Since(start).Round(time.Second), Goroutines: runtime.NumGoroutine()}
	for _, rr := range recipes {
		smp.History += rr.held()
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	smp.Heap = m.HeapAlloc - min(m.HeapAlloc, smp.History)
	for i := range r.s.Servers() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		w, err := r.s.ServerWatches(ctx, i)
		cancel()
		if err != nil {
			w = -1
		}
		smp.Watches = append(smp.Watches, w)
	}
	for _, rr := range recipes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n, err := r.s.Nodes(ctx, rr.name)
		cancel()
		if err != nil {
			smp.Nodes = -1
			break
		}
		smp.Nodes += n
	}
	return smp
}

// held is how many bytes the recipe's history holds.
func (rr *recipeRun) held() uint64 {
	rr.mu.Lock()
	ops := cap(rr.ops)
	rr.mu.Unlock()
	return uint64(ops)*uint64(unsafe.Sizeof(Op{})) + rr.reg.held()
}

// sampler samples the run every interval until stop is closed, and
// returns the samples.
//
// A sample is taken once every server answers, within half an interval:
// while a server is down the clients hold fewer goroutines and less
// heap, and samples taken then and otherwise would make two populations
// whose mix, not a trend, would move the medians.
func (r *run) sampler(interval time.Duration, recipes []*recipeRun, stop <-chan struct{}) []Sample {
	start := time.Now()
	var samples []Sample
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ticked := time.Now()
		smp := r.sample(start, recipes)
		for slices.Contains(smp.Watches, -1) && time.Since(ticked) < interval/2 {
			select {
			case <-stop:
				return append(samples, smp)
			case <-time.After(time.Second):
			}
			smp = r.sample(start, recipes)
		}
		samples = append(samples, smp)
		select {
		case <-stop:
			return samples
		case <-tick.C:
		}
	}
}

// judge logs the samples and returns a violation for each quantity that
// grew without bound, with clients the number of clients, which bounds
// how many nodes may be queued at once.
func (r *run) judge(samples []Sample, clients int) []string {
	const mib = 1 << 20
	var lines []string
	series := map[string][]float64{}
	for i, s := range samples {
		watches := make([]string, len(s.Watches))
		total := 0.0
		for j, w := range s.Watches {
			watches[j] = fmt.Sprint(w)
			total += float64(w)
			if w < 0 {
				total = math.NaN()
			}
		}
		nodes := float64(s.Nodes)
		if s.Nodes < 0 {
			nodes = math.NaN()
		}
		series["goroutines"] = append(series["goroutines"], float64(s.Goroutines))
		series["heap (MiB)"] = append(series["heap (MiB)"], float64(s.Heap)/mib)
		series["server watches"] = append(series["server watches"], total)
		series["nodes"] = append(series["nodes"], nodes)
		lines = append(lines, fmt.Sprintf("sample %2d at %6v: goroutines %5d, heap %6.1f MiB (history %5.1f MiB more), watches %s, nodes %d",
			i+1, s.At, s.Goroutines, float64(s.Heap)/mib, float64(s.History)/mib, strings.Join(watches, "+"), s.Nodes))
	}
	r.t.Logf("%s samples (watches: each server's, -1 where it did not answer; nodes: -1 where they could not be read):\n%s",
		r.s.Name, strings.Join(lines, "\n"))
	tolerances := map[string]Tolerance{
		"goroutines":     goroutineTolerance,
		"heap (MiB)":     heapTolerance,
		"server watches": watchTolerance,
		"nodes":          {Abs: float64(clients)},
	}
	var bad []string
	for _, name := range slices.Sorted(maps.Keys(series)) {
		grew, why := Grows(series[name], tolerances[name])
		r.t.Logf("%s %s: %s", r.s.Name, name, why)
		if grew {
			bad = append(bad, fmt.Sprintf("soak: %s %s", name, why))
		}
	}
	return bad
}
