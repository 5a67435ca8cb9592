package bench

import (
	"context"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/semaphore"
)

// Semaphore is a semaphore of Permits permits that N contenders, each on
// a session of its own, acquire and release in a loop, as in the
// contended scenario: the grants per second, and the server's work per
// grant, medians of rounds. Each contender releases as soon as it is
// granted, so that a window holds as many releases as grants, give or
// take the permits held at its ends.
type Semaphore struct {
	N, Permits int
	PerSec     [2]float64
	Work       [2]Counters // per grant
}

// naive is the naive semaphore's slot, the baseline's.
const naive = Baseline

// Semaphore counts the grants of s.Semaphores' contestants, in
// alternating rounds of n contenders of a semaphore of o.Permits.
func (s *Server) Semaphore(ctx context.Context, o Options, n int) (Semaphore, error) {
	cs := s.Semaphores(o.Permits)
	rounds, err := s.contended(ctx, o, cs[:], n, o.Permits, false)
	sem := Semaphore{N: n, Permits: o.Permits}
	for i, x := range rounds {
		sem.PerSec[i], sem.Work[i] = x.perSec, x.work
	}
	return sem, err
}

// permit is a contender of turnstile's semaphore: Lock acquires a permit,
// Unlock releases it.
type permit struct{ sem *semaphore.Semaphore }

func (p permit) Lock(ctx context.Context) error   { return p.sem.Acquire(ctx) }
func (p permit) Unlock(ctx context.Context) error { return p.sem.Release(ctx) }

// permitOn returns turnstile's semaphore of permits on a session of
// either backend.
func permitOn[S turnstile.Session](permits int) func(S, string) Locker {
	return func(s S, name string) Locker { return permit{semaphore.New(s, name, permits)} }
}
