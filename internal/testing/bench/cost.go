package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// heldWindow is how long Cost counts the server's requests while the
// locks are held: several of the sessions' periodic checks.
const heldWindow = 5 * time.Second

// Cost is what a lock costs the client, and the server's watches, per
// uncontended Lock+Unlock and per lock held. Every figure is a median of
// rounds.
type Cost struct {
	Held int // locks held at once, on as many names, over one session

	// Per Lock+Unlock pair.
	Mallocs    [2]float64 // heap objects allocated
	Bytes      [2]float64 // heap bytes allocated
	Goroutines [2]float64 // goroutines started; NaN if the runtime does not count them
	CPU        [2]float64 // the client's CPU (µs)

	// Per lock held.
	HeldGoroutines [2]float64 // goroutines alive
	HeldBytes      [2]float64 // heap and stack bytes in use
	HeldWatches    [2]float64 // watches the server holds
	HeldRequests   [2]float64 // requests the server receives per second, while the locks are held
}

// Cost measures, in each round, o.Pairs uncontended Lock+Unlock pairs on
// a session, then o.Held locks held at once over it.
func (s *Server) Cost(ctx context.Context, o Options) (Cost, error) {
	var rounds [2][]costRound
	err := alternateAmong([]int{Ours, Baseline}, o.Rounds, func(i int) error {
		r, err := s.costRound(ctx, s.Contestants[i], o.Pairs, o.Held)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Contestants[i].Name, err)
		}
		rounds[i] = append(rounds[i], r)
		return nil
	})
	c := Cost{Held: o.Held}
	for i, rs := range rounds {
		median := func(f func(costRound) float64) float64 {
			v := make([]float64, len(rs))
			for j, r := range rs {
				v[j] = f(r)
			}
			return Quantile(v, 0.5)
		}
		c.Mallocs[i] = median(func(r costRound) float64 { return r.mallocs })
		c.Bytes[i] = median(func(r costRound) float64 { return r.bytes })
		c.Goroutines[i] = median(func(r costRound) float64 { return r.goroutines })
		c.CPU[i] = median(func(r costRound) float64 { return r.cpu })
		c.HeldGoroutines[i] = median(func(r costRound) float64 { return r.heldGoroutines })
		c.HeldBytes[i] = median(func(r costRound) float64 { return r.heldBytes })
		c.HeldWatches[i] = median(func(r costRound) float64 { return r.heldWatches })
		c.HeldRequests[i] = median(func(r costRound) float64 { return r.heldRequests })
	}
	return c, err
}

// costRound is one round's figures, as Cost has them.
type costRound struct {
	mallocs, bytes, goroutines, cpu                      float64
	heldGoroutines, heldBytes, heldWatches, heldRequests float64
}

// costRound measures one round of c.
func (s *Server) costRound(ctx context.Context, c Contestant, pairs, held int) (costRound, error) {
	var r costRound
	lock, closeSession, err := c.Session(ctx)
	if err != nil {
		return r, err
	}
	closeSession = sync.OnceFunc(closeSession)
	defer closeSession()
	base := Name()
	pair := lockUnlock(ctx, lock(base))
	// The first pair makes the name's parent nodes, and starts whatever
	// a session starts on first use.
	if err := pair(); err != nil {
		return r, err
	}
	u0 := readUsage()
	for range pairs {
		if err := pair(); err != nil {
			return r, err
		}
	}
	r.cpu, r.mallocs, r.bytes, r.goroutines = u0.perOp(readUsage(), pairs)

	ls := make([]Locker, held)
	// Clients that earlier rounds closed end their goroutines a while
	// after Close: their stacks must be gone before the count starts, or
	// they are taken off the holds' cost.
	before, f0, err := s.steady(ctx, "the goroutines steady before the holds")
	if err != nil {
		return r, err
	}
	for i := range ls {
		ls[i] = lock(base + "/" + strconv.Itoa(i))
		if err := ls[i].Lock(ctx); err != nil {
			return r, err
		}
	}
	// What a hold starts after its Lock returns (a watch, a goroutine)
	// has started once they are steady again.
	last, f1, err := s.steady(ctx, "the holds' watches and goroutines steady")
	if err != nil {
		return r, err
	}
	k := float64(held)
	r.heldGoroutines = float64(f1.goroutines-f0.goroutines) / k
	r.heldBytes = (float64(f1.bytes) - float64(f0.bytes)) / k
	r.heldWatches = (last.Watches - before.Watches) / k
	// What holding costs the server as time passes: checks of the holds,
	// renewals, pings.
	select {
	case <-time.After(heldWindow):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	now, err := s.Read(ctx)
	if err != nil {
		return r, err
	}
	r.heldRequests = (now.Requests - last.Requests) / heldWindow.Seconds() / k
	for _, l := range ls {
		if err := l.Unlock(ctx); err != nil {
			return r, err
		}
	}
	closeSession()
	return r, s.await(ctx, nil, "the ended session's watches gone", func() (bool, error) {
		now, err := s.Read(ctx)
		return now.Watches <= before.Watches, err
	})
}

// steady reads the server's counters and this process's footprint until
// the server's watches and the goroutines stay the same over a few
// reads, and returns the last reading.
func (s *Server) steady(ctx context.Context, what string) (Counters, footprint, error) {
	var last Counters
	var f footprint
	reads := 0
	err := s.await(ctx, nil, what, func() (bool, error) {
		now, err := s.Read(ctx)
		fnow := readFootprint()
		same := reads > 0 && now.Watches == last.Watches && fnow.goroutines == f.goroutines
		last, f = now, fnow
		reads++
		return same && reads >= 3, err
	})
	return last, f, err
}
