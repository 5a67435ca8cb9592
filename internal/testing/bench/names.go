package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// ManyNames is many names locked over one session, or over each of two:
// every name has one contender per session, a value of its own that
// loops Lock and Unlock until the round ends.
type ManyNames struct {
	Names, Contenders int
	PerSec            [2]float64 // Lock+Unlock pairs per second, all names together, after the warm-up; median of rounds
	CPU               [2]float64 // the client's CPU per pair (µs); median of rounds
	Requests          [2]float64 // server requests per pair; median of rounds
	FirstHolds        [2]float64 // seconds from the start until every value had held once, +Inf if not within warmUpWindows windows; median of rounds
	NeverHeld         [2]float64 // values that never held their lock in the round; median of rounds
	// Counts, in all rounds together.
	Errors     [2]int // Lock and Unlock errors, other than a Lock ended by the round's end, and Overloaded
	Overloaded [2]int // etcd's "too many requests"
	Wedged     [2]int // values whose call still blocked a grace after the round, or whose Unlock kept failing
	// FirstError is the first of Errors, as it read.
	FirstError [2]string
}

const (
	// warmUpWindows bounds, in windows, the wait for every value's
	// first hold before a round counts.
	warmUpWindows = 4
	// wedgedAfter is how long after a round's end a value may take to
	// return.
	wedgedAfter = 10 * time.Second
	// unlockTries is how often a value tries to Unlock before it gives
	// up as wedged, errorPause apart.
	unlockTries = 5
	errorPause  = 100 * time.Millisecond
)

// ManyNames runs o.NamesRounds rounds of each contestant, of names names
// with contenders sessions, a value of each on every name looping
// Lock+Unlock. A round counts for o.NamesWindow, once every value has
// held once or warmUpWindows windows have passed.
func (s *Server) ManyNames(ctx context.Context, o Options, names, contenders int) (ManyNames, error) {
	m := ManyNames{Names: names, Contenders: contenders}
	var rates, cpus, requests, never, first [2][]float64
	err := alternateAmong([]int{Ours, Baseline}, o.NamesRounds, func(i int) error {
		r, err := s.namesRound(ctx, s.Contestants[i], names, contenders, o.NamesWindow)
		if err != nil {
			return fmt.Errorf("%s, %d names × %d: %w", s.Contestants[i].Name, names, contenders, err)
		}
		rates[i] = append(rates[i], r.perSec())
		cpus[i] = append(cpus[i], r.perPair(r.cpuMicros))
		requests[i] = append(requests[i], r.perPair(r.requests))
		never[i] = append(never[i], float64(r.neverHeld))
		first[i] = append(first[i], r.firstHolds)
		m.Errors[i] += r.errors
		m.Overloaded[i] += r.overloaded
		m.Wedged[i] += r.wedged
		if m.FirstError[i] == "" {
			m.FirstError[i] = r.firstError
		}
		return nil
	})
	for i := range 2 {
		m.PerSec[i], m.CPU[i], m.Requests[i] = Quantile(rates[i], 0.5), Quantile(cpus[i], 0.5), Quantile(requests[i], 0.5)
		m.NeverHeld[i], m.FirstHolds[i] = Quantile(never[i], 0.5), Quantile(first[i], 0.5)
	}
	return m, err
}

// namesRound is what one round counted.
type namesRound struct {
	pairs                      int
	seconds                    float64
	cpuMicros, requests        float64 // in all
	errors, overloaded, wedged int
	neverHeld                  int
	firstHolds                 float64 // seconds until every value had held, +Inf if not in the warm-up
	firstError                 string
}

func (r namesRound) perSec() float64 { return float64(r.pairs) / r.seconds }

func (r namesRound) perPair(v float64) float64 {
	if r.pairs == 0 {
		return 0
	}
	return v / float64(r.pairs)
}

// namesRound opens contenders sessions of c, a value for each of names
// fresh names on each, and has every value loop until the round ends.
func (s *Server) namesRound(ctx context.Context, c Contestant, names, contenders int, window time.Duration) (namesRound, error) {
	var r namesRound
	base := Name()
	var closers []func()
	closeAll := func() {
		for _, close := range closers {
			close()
		}
		closers = nil
	}
	defer closeAll()
	var ls []Locker
	for range contenders {
		lock, close, err := c.Session(ctx)
		if err != nil {
			return r, err
		}
		closers = append(closers, close)
		for j := range names {
			ls = append(ls, lock(base+"/"+strconv.Itoa(j)))
		}
	}
	idle, err := s.Read(ctx)
	if err != nil {
		return r, err
	}
	round, end := context.WithCancel(ctx)
	defer end()
	var t tally
	var wg sync.WaitGroup
	start := time.Now()
	for _, l := range ls {
		wg.Go(func() { t.loop(round, ctx, l) })
	}
	// Every value's first Lock goes out at once: the count starts once
	// each has held, or after warmUpWindows windows however many have.
	r.firstHolds = math.Inf(1)
	tick := time.NewTicker(pollInterval)
	for int(t.held.Load()) < len(ls) && time.Since(start) < warmUpWindows*window {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}
	tick.Stop()
	if int(t.held.Load()) == len(ls) {
		r.firstHolds = time.Since(start).Seconds()
	}
	before, err := s.Read(ctx)
	if err != nil {
		return r, err
	}
	pairs0, cpu0, t0 := t.pairs.Load(), cpuTime(), time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	r.pairs, r.seconds, r.cpuMicros = int(t.pairs.Load()-pairs0), time.Since(t0).Seconds(), float64((cpuTime() - cpu0).Microseconds())
	after, err := s.Read(ctx)
	end()
	r.neverHeld = len(ls) - int(t.held.Load())
	r.requests = after.Requests - before.Requests
	returned := make(chan struct{})
	go func() { wg.Wait(); close(returned) }()
	select {
	case <-returned:
	case <-time.After(wedgedAfter):
	}
	r.errors, r.overloaded, r.wedged = int(t.errors.Load()), int(t.overloaded.Load()), int(t.running.Load()+t.gaveUp.Load())
	t.mu.Lock()
	if t.first != nil {
		r.firstError = t.first.Error()
	}
	t.mu.Unlock()
	// Ended sessions fail what still waits.
	closeAll()
	select {
	case <-returned:
	case <-time.After(settleTimeout):
		return r, fmt.Errorf("%d values still in a call %v after their sessions ended", t.running.Load(), settleTimeout)
	}
	if err != nil {
		return r, err
	}
	return r, s.await(ctx, nil, "the ended sessions' watches gone", func() (bool, error) {
		now, err := s.Read(ctx)
		return now.Watches <= idle.Watches, err
	})
}

// tally counts what the values of a round do.
type tally struct {
	pairs, errors, overloaded atomic.Int64
	held                      atomic.Int64 // values that have held their lock
	running, gaveUp           atomic.Int64
	mu                        sync.Mutex
	first                     error // the first counted in errors
}

// loop takes and releases l until round ends. An Unlock that fails is
// tried again, up to unlockTries times; the value then gives up. Unlock
// is called with ctx, which outlives the round, so that the round's end
// does not fail it.
func (t *tally) loop(round, ctx context.Context, l Locker) {
	t.running.Add(1)
	defer t.running.Add(-1)
	held := false
	for round.Err() == nil {
		if err := l.Lock(round); err != nil {
			if round.Err() == nil {
				t.failed(err)
				pause(round)
			}
			continue
		}
		if !held {
			held = true
			t.held.Add(1)
		}
		for try := 1; ; try++ {
			err := l.Unlock(ctx)
			if err == nil {
				t.pairs.Add(1)
				break
			}
			t.failed(err)
			if try == unlockTries {
				t.gaveUp.Add(1)
				return
			}
			pause(ctx)
		}
	}
}

func (t *tally) failed(err error) {
	if overloaded(err) {
		t.overloaded.Add(1)
	} else {
		t.errors.Add(1)
		t.mu.Lock()
		if t.first == nil {
			t.first = err
		}
		t.mu.Unlock()
	}
}

// overloaded tells etcd's refusal of a request for overload ("too many
// requests": too many entries committed and not yet applied).
func overloaded(err error) bool {
	return errors.Is(err, rpctypes.ErrTooManyRequests) || errors.Is(err, rpctypes.ErrGRPCRequestTooManyRequests)
}

func pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(errorPause):
	}
}
