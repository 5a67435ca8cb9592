package locktest

import (
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The benchmark drivers run turnstile beside a baseline on the same
// server in the same run, alternating between them, and report each
// one's figures and the gain: baseline over ours where less is better,
// ours over baseline where more is.

// Contestant is one lock implementation under benchmark.
type Contestant struct {
	Name string
	// Lockers returns n lock and unlock pairs on one name, each over a
	// session of its own.
	Lockers func(b *testing.B, name string, n int) []BenchLocker
}

// BenchLocker is one contender's lock and unlock.
type BenchLocker struct {
	Lock, Unlock func() error
}

// Meter reads a counter the server keeps, such as requests handled or
// watch events sent, to report the server's work per operation.
type Meter struct {
	Unit string // per operation, as "requests"
	Read func(b *testing.B) float64
}

// Uncontended measures one Lock and Unlock with nobody else around: the
// median and 99th percentile in ms, and each meter per pair.
func Uncontended(b *testing.B, contestants [2]Contestant, meters []Meter) {
	var took [2][]float64
	work := make([][2]float64, len(meters))
	var lockers [2]BenchLocker
	for i, c := range contestants {
		lockers[i] = c.Lockers(b, Name(), 1)[0]
	}
	for range b.N {
		for i := range contestants {
			before := read(b, meters)
			t0 := time.Now()
			if err := lockers[i].Lock(); err != nil {
				b.Fatal(err)
			}
			if err := lockers[i].Unlock(); err != nil {
				b.Fatal(err)
			}
			took[i] = append(took[i], float64(time.Since(t0).Microseconds())/1000)
			for m, v := range read(b, meters) {
				work[m][i] += v - before[m]
			}
		}
	}
	report(b, contestants, "ms/lock", [2]float64{Quantile(took[0], 0.5), Quantile(took[1], 0.5)}, true)
	report(b, contestants, "p99-ms/lock", [2]float64{Quantile(took[0], 0.99), Quantile(took[1], 0.99)}, true)
	for m, meter := range meters {
		report(b, contestants, meter.Unit+"/lock", [2]float64{work[m][0] / float64(b.N), work[m][1] / float64(b.N)}, true)
	}
}

// Contended measures hand-offs per second among n contenders for each n,
// each contender on its own session, looping Lock and Unlock, and each
// meter per hand-off. The contestants run in rounds A B, B A, so that
// neither gains from when it runs; each figure is the median of rounds.
func Contended(b *testing.B, contestants [2]Contestant, meters []Meter, ns ...int) {
	const rounds = 8
	for _, n := range ns {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var rate [2][]float64
			work := make([][2][]float64, len(meters))
			for r := range rounds {
				for _, i := range [][]int{{0, 1}, {1, 0}}[r%2] {
					lockers := contestants[i].Lockers(b, Name(), n)
					handoffs := max(b.N/rounds, n)
					before := read(b, meters)
					t0 := time.Now()
					cycle(b, lockers, handoffs)
					rate[i] = append(rate[i], float64(handoffs)/time.Since(t0).Seconds())
					for m, v := range read(b, meters) {
						work[m][i] = append(work[m][i], (v-before[m])/float64(handoffs))
					}
				}
			}
			report(b, contestants, "handoffs/s", [2]float64{Quantile(rate[0], 0.5), Quantile(rate[1], 0.5)}, false)
			for m, meter := range meters {
				report(b, contestants, meter.Unit+"/handoff", [2]float64{Quantile(work[m][0], 0.5), Quantile(work[m][1], 0.5)}, true)
			}
		})
	}
}

func read(b *testing.B, meters []Meter) []float64 {
	v := make([]float64, len(meters))
	for i, m := range meters {
		v[i] = m.Read(b)
	}
	return v
}

// cycle has every locker take and release the lock until the grants
// reach handoffs.
func cycle(b *testing.B, lockers []BenchLocker, handoffs int) {
	var mu sync.Mutex
	left := handoffs
	var wg sync.WaitGroup
	for _, l := range lockers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := l.Lock(); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				left--
				done := left <= 0
				mu.Unlock()
				if err := l.Unlock(); err != nil {
					b.Error(err)
					return
				}
				if done {
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Quantile returns the q-quantile of v, by the nearest rank below.
func Quantile(v []float64, q float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

func report(b *testing.B, contestants [2]Contestant, unit string, v [2]float64, lessIsBetter bool) {
	b.ReportMetric(0, "ns/op")
	for i, c := range contestants {
		b.ReportMetric(v[i], c.Name+"-"+unit)
	}
	gain := v[0] / v[1]
	switch {
	case v[0] == v[1]:
		gain = 1 // both zero, as no watch events for either
	case lessIsBetter:
		gain = v[1] / v[0]
	}
	b.ReportMetric(gain, "gain-"+unit)
}
