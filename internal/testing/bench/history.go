package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Depth is an uncontended Lock+Unlock on one name after Holds earlier
// holds of that name by the same kind of lock (ours for ours, the
// baseline's for the baseline), on a server that never compacts, and
// what an unrelated client's writes take meanwhile.
type Depth struct {
	Holds   int
	P50     [2]float64 // Lock+Unlock p50 (ms), every pair of every round
	CPU     [2]float64 // the client's CPU per Lock+Unlock (µs), median of rounds
	PutP50  [2]float64 // an unrelated Put's p50 (ms) while the lock loops
	PutP99  [2]float64 // its p99 (ms)
	IdleP50 float64    // the same Put's p50 (ms) with no lock traffic
	IdleP99 float64    // its p99 (ms)
}

// idle is the slot of a history round without lock traffic.
const idle = Herd

// History measures, at each depth in o.Depths, Lock+Unlock pairs of ours
// and the baseline's, each on a name of its own whose every past hold
// was made through Lock and Unlock of the same kind of lock. Each round
// loops o.HistoryPairs pairs alone, for latency and CPU, then as many
// again while another client Puts an unrelated key; rounds alternate
// with one that times the Puts alone. A depth's measurement adds its own
// holds to the name, 2·o.HistoryPairs+1 per round, so that a depth below
// the holds made already is measured at those.
func (s *Server) History(ctx context.Context, o Options, progress func(string)) ([]Depth, error) {
	if s.Put == nil {
		return nil, fmt.Errorf("no history scenario on %s", s.Name)
	}
	names := [2]string{Name(), Name()}
	var holds [2]int
	unrelated := Name() + "-unrelated"
	var depths []Depth
	for _, depth := range slices.Sorted(slices.Values(o.Depths)) {
		for i := range 2 {
			start := time.Now()
			n := depth - holds[i]
			if err := s.seed(ctx, s.Contestants[i], names[i], n, o.Seeders); err != nil {
				return depths, fmt.Errorf("%s: %d past holds: %w", s.Contestants[i].Name, depth, err)
			}
			holds[i] += max(n, 0)
			progress(fmt.Sprintf("%s history: %s seeded to %d holds (%d more) in %v", s.Name, s.Contestants[i].Name, holds[i], max(n, 0), time.Since(start).Round(time.Millisecond)))
		}
		// Both have made the same holds, the past ones and those of the
		// measurements so far.
		d := Depth{Holds: holds[Ours]}
		var took, cpus [2][]float64
		var puts [3][]float64 // [idle]: with no lock traffic
		start := time.Now()
		err := alternateAmong([]int{Ours, Baseline, idle}, o.Rounds, func(i int) error {
			if i == idle {
				n := 0
				p, err := s.puts(ctx, unrelated, func() bool { n++; return n > 2*o.HistoryPairs })
				puts[idle] = append(puts[idle], p...)
				return err
			}
			pairs, cpu, put, err := s.loop(ctx, s.Contestants[i], names[i], o.HistoryPairs, unrelated)
			holds[i] += 2*o.HistoryPairs + 1
			took[i] = append(took[i], pairs...)
			cpus[i] = append(cpus[i], cpu)
			puts[i] = append(puts[i], put...)
			if err != nil {
				return fmt.Errorf("%s, %d past holds: %w", s.Contestants[i].Name, depth, err)
			}
			return nil
		})
		for i := range 2 {
			d.P50[i], d.CPU[i] = Quantile(took[i], 0.5), Quantile(cpus[i], 0.5)
			d.PutP50[i], d.PutP99[i] = Quantile(puts[i], 0.5), Quantile(puts[i], 0.99)
		}
		d.IdleP50, d.IdleP99 = Quantile(puts[idle], 0.5), Quantile(puts[idle], 0.99)
		depths = append(depths, d)
		progress(fmt.Sprintf("%s history: measured at %d holds in %v", s.Name, depth, time.Since(start).Round(time.Millisecond)))
		if err != nil {
			return depths, err
		}
	}
	return depths, nil
}

// seed makes n holds of name, Lock then Unlock, by sessions contenders
// of c taking turns.
func (s *Server) seed(ctx context.Context, c Contestant, name string, n, sessions int) error {
	if n <= 0 {
		return nil
	}
	ls, closeAll, err := c.Open(ctx, name, sessions)
	if err != nil {
		return err
	}
	defer closeAll()
	var left atomic.Int64
	left.Store(int64(n))
	errs := make([]error, len(ls))
	var wg sync.WaitGroup
	for i, l := range ls {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if errs[i] = l.Lock(ctx); errs[i] == nil {
					errs[i] = l.Unlock(ctx)
				}
				if errs[i] != nil {
					left.Store(0)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// loop opens a session of c, takes one Lock+Unlock pair to start, then
// times n pairs alone and measures the client's CPU over them, and takes
// n more while an unrelated client puts key in a loop, whose latencies it
// returns.
func (s *Server) loop(ctx context.Context, c Contestant, name string, n int, key string) (alone []float64, cpuMicros float64, puts []float64, err error) {
	lock, closeSession, err := c.Session(ctx)
	if err != nil {
		return nil, 0, nil, err
	}
	defer closeSession()
	pair := lockUnlock(ctx, lock(name))
	// The first pair starts whatever a session starts on first use.
	if err := pair(); err != nil {
		return nil, 0, nil, err
	}
	cpu0 := cpuTime()
	for range n {
		t0 := time.Now()
		if err := pair(); err != nil {
			return alone, 0, nil, err
		}
		alone = append(alone, ms(time.Since(t0)))
	}
	cpuMicros = float64((cpuTime() - cpu0).Microseconds()) / float64(n)
	var done atomic.Bool
	var putErr error
	var wg sync.WaitGroup
	wg.Go(func() { puts, putErr = s.puts(ctx, key, done.Load) })
	for i := 0; i < n && err == nil; i++ {
		err = pair()
	}
	done.Store(true)
	wg.Wait()
	return alone, cpuMicros, puts, errors.Join(err, putErr)
}

// puts puts key in a loop until stop returns true, and returns each
// Put's latency (ms).
func (s *Server) puts(ctx context.Context, key string, stop func() bool) (took []float64, err error) {
	for !stop() {
		t0 := time.Now()
		if err := s.Put(ctx, key); err != nil {
			return took, err
		}
		took = append(took, ms(time.Since(t0)))
	}
	return took, nil
}
