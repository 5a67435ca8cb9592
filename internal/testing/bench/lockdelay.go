package bench

import (
	"context"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/mutex"
)

// LockDelay is turnstile's Mutex with a lock-delay beside the same Mutex
// without one: N contenders, each on a session of its own, loop Lock
// then Unlock, as in the contended scenario, but a round counts only
// once every contender has held. Every hold ends in an Unlock, which
// marks its release, so that no hand-off should wait the delay: the
// slow ones tell those that did.
type LockDelay struct {
	N        int
	Delay    time.Duration
	PerSec   [2]float64
	P50, P99 [2]float64  // hand-off latency (ms)
	Work     [2]Counters // per hand-off
	// Hand-offs that took longer than SlowHandOff, in all rounds
	// together: those counted, and those before the count began, as the
	// contenders joined.
	Slow, SlowEarly [2]int
}

// SlowHandOff is the hand-off that LockDelay counts as slow: none of a
// clean release takes that long on servers on loopback, and one that
// waited the lock-delay takes longer.
const SlowHandOff = time.Second

// The slots of LockDelay's contestants.
const (
	withDelay    = Ours
	withoutDelay = Baseline
)

// LockDelay counts the hand-offs of turnstile's Mutex with the lock-delay
// o.LockDelay and of the Mutex without options, in alternating rounds of
// n contenders.
func (s *Server) LockDelay(ctx context.Context, o Options, n int) (LockDelay, error) {
	cs := s.lockDelays(o.LockDelay)
	rounds, err := s.contended(ctx, o, cs[:], n, 1, true)
	l := LockDelay{N: n, Delay: o.LockDelay}
	for i, x := range rounds {
		l.PerSec[i], l.P50[i], l.P99[i], l.Work[i] = x.perSec, x.p50, x.p99, x.work
		l.Slow[i], l.SlowEarly[i] = slow(x.latencies), slow(x.early)
	}
	return l, err
}

// slow counts the latencies (ms) over SlowHandOff.
func slow(latencies []float64) int {
	n := 0
	for _, ms := range latencies {
		if ms > float64(SlowHandOff.Milliseconds()) {
			n++
		}
	}
	return n
}

// lockDelays returns turnstile's Mutex with the lock-delay d and
// without options, named by lockDelayNames.
func (s *Server) lockDelays(d time.Duration) [2]Contestant {
	var cs [2]Contestant
	cs[withDelay], cs[withoutDelay] = s.Delayed(d), s.Contestants[Ours]
	names := lockDelayNames(d)
	for i := range cs {
		cs[i].Name = names[i]
	}
	return cs
}

// lockDelayNames names the Mutex with the lock-delay d and without, as
// the tables show them.
func lockDelayNames(d time.Duration) [2]string {
	var names [2]string
	names[withDelay], names[withoutDelay] = "with lock-delay "+d.String(), "without"
	return names
}

// delayedOn returns turnstile's Mutex with the lock-delay d on a session
// of either backend.
func delayedOn[S turnstile.Session](d time.Duration) func(S, string) Locker {
	return func(s S, name string) Locker { return mutex.New(s, name, mutex.WithLockDelay(d)) }
}
