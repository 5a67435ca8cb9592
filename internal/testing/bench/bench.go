// Package bench measures locks against each other on the same server in
// the same run: turnstile, the lock a user would otherwise take, and a
// lock with a herd on purpose. The contestants take turns in rounds (A B
// C, C B A, ...) so that none gains from when it runs, every figure is a
// median of rounds, and the work each one costs the server is read from
// the server's own counters.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/pprof"
	"slices"
	"sync"
	"time"
)

// Locker is one contender's lock, over a session of its own.
type Locker interface {
	Lock(ctx context.Context) error
	Unlock(ctx context.Context) error
}

// lockUnlock returns one Lock and Unlock of l, as a function to repeat.
func lockUnlock(ctx context.Context, l Locker) func() error {
	return func() error {
		if err := l.Lock(ctx); err != nil {
			return err
		}
		return l.Unlock(ctx)
	}
}

// Contestant is one lock implementation under benchmark.
type Contestant struct {
	Name string
	// Open returns n contenders for the lock name, each over a session
	// of its own. close ends the sessions, which fails any Lock still
	// waiting, and returns once they have ended.
	Open func(ctx context.Context, name string, n int) (lockers []Locker, close func(), err error)
	// Session opens one session, over which lock returns a contender for
	// any name; close ends the session. The herd has none.
	Session func(ctx context.Context) (lock func(name string) Locker, close func(), err error)
}

// Counters are a server's own counts, read from its monitoring.
type Counters struct {
	Requests      float64 // requests received, as zk_packets_received or etcd's handled unary calls
	Notifications float64 // watch notifications (ZooKeeper) or events (etcd) sent
	Watches       float64 // watches held now
}

func (c Counters) sub(d Counters) Counters {
	return Counters{c.Requests - d.Requests, c.Notifications - d.Notifications, c.Watches - d.Watches}
}

func (c Counters) per(n float64) Counters {
	return Counters{c.Requests / n, c.Notifications / n, c.Watches / n}
}

// Server is one coordination service under benchmark and the locks that
// compete on it.
type Server struct {
	Name    string // as "ZooKeeper"
	Version string
	// Contestants are turnstile, the baseline, and the herd.
	Contestants [3]Contestant
	// Semaphores returns turnstile's semaphore and a naive one, whose
	// waiters read the whole queue on every change as the herd's do, of
	// permits permits: a contender's Lock acquires a permit, its Unlock
	// releases it.
	Semaphores func(permits int) [2]Contestant
	// Delayed returns turnstile's Mutex with the lock-delay d, each
	// contender on a session of its own, as Contestants[Ours] without.
	Delayed func(d time.Duration) Contestant
	// Read returns the server's counters.
	Read func(ctx context.Context) (Counters, error)
	// Queued returns how many contenders the server holds under a name,
	// a semaphore's waiters included.
	Queued func(ctx context.Context, name string) (int, error)
	// Put writes key through a client of its own that no lock uses, or
	// is nil where the history scenario does not run.
	Put func(ctx context.Context, key string) error
	// Close releases what Read, Queued and Put use.
	Close func()
}

// Options size a run.
type Options struct {
	Rounds int           // each contestant runs this many times, in alternating order
	Pairs  int           // Lock and Unlock pairs per uncontended round
	Window time.Duration // how long a contended round counts hand-offs
	Ns     []int         // the numbers of contenders Run has contend
	Drains []int         // the queue lengths Run drains

	Depths       []int         // History: the past holds on a name before each measurement
	Seeders      int           // History: the contenders that make the past holds together
	HistoryPairs int           // History: Lock+Unlock pairs per round, alone and again beside the Puts
	Names        []int         // Names: the numbers of names on a session
	NamesRounds  int           // Names: rounds of each contestant
	NamesWindow  time.Duration // Names: how long a round loops
	Held         int           // Cost: the locks held at once on one session
	Permits      int           // Semaphore: the semaphore's permits
	SemaphoreNs  []int         // Semaphore: the numbers of contenders
	LockDelay    time.Duration // LockDelay: the Mutex's lock-delay
	LockDelayNs  []int         // LockDelay: the numbers of contenders
}

// Defaults are what a run measures unless told otherwise: a few minutes
// on two cores for both servers.
func Defaults() Options {
	return Options{Rounds: 5, Pairs: 300, Window: 500 * time.Millisecond, Ns: []int{1, 8, 64, 256}, Drains: []int{8, 64, 256},
		Depths: []int{0, 10000, 50000}, Seeders: 1, HistoryPairs: 100,
		Names: []int{1000, 10000}, NamesRounds: 3, NamesWindow: 5 * time.Second, Held: 1000,
		Permits: 4, SemaphoreNs: []int{8, 64}, LockDelay: 10 * time.Second, LockDelayNs: []int{8}}
}

// The contestants' indexes in a Server's Contestants.
const (
	Ours = iota
	Baseline
	Herd
)

// Figures are each contestant's rate of operations, their latency in
// ms, and the server's work per operation. An operation is a Lock and
// Unlock pair when uncontended, and a hand-off when contended.
type Figures struct {
	PerSec   [3]float64
	P50, P99 [3]float64
	Work     [3]Counters
}

// Uncontended is one Lock and Unlock with nobody else around. The
// latencies pool every pair of every round; the rest are medians of
// rounds.
type Uncontended = Figures

// Contended is a lock that N contenders, each on a session of its own,
// take and release in a loop. The latency of a hand-off runs from the
// holder's Unlock call to the next holder's Lock returning, 0 when N is
// 1; every figure is a median of rounds.
type Contended struct {
	N int
	Figures
}

// Drain is a queue of n waiters behind a holder, from the holder's Unlock
// until every waiter has held the lock once and released it.
type Drain struct {
	N      int
	Millis [3]float64
	Work   [3]Counters // in all, not per hand-off
}

// Result is every scenario run on one server.
type Result struct {
	Server, Version string
	Names           [3]string // the contestants'
	Matrix          bool      // Uncontended, Contended and Drains were measured
	Uncontended     Uncontended
	Contended       []Contended
	Drains          []Drain
	History         []Depth     // on etcd
	ManyNames       []ManyNames // by names, then contenders per name
	Cost            *Cost
	SemaphoreNames  [2]string   // the semaphore contestants'
	Semaphores      []Semaphore // by contenders
	LockDelays      []LockDelay // by contenders
}

// Run runs every scenario that o names, and tells progress what it has
// done.
func (s *Server) Run(ctx context.Context, o Options, progress func(string)) (Result, error) {
	r := s.result()
	r.Matrix = true
	type step struct {
		what string
		run  func() error
	}
	steps := []step{
		// A first round, thrown away, has the server's JIT compiler and
		// caches warm before anything counts.
		{"warm-up", func() error {
			_, err := s.Uncontended(ctx, Options{Rounds: 1, Pairs: o.Pairs})
			return err
		}},
		{"uncontended", func() (err error) {
			r.Uncontended, err = s.Uncontended(ctx, o)
			return err
		}},
	}
	for _, n := range o.Ns {
		steps = append(steps, step{fmt.Sprintf("contended, N=%d", n), func() error {
			c, err := s.Contended(ctx, o, n)
			r.Contended = append(r.Contended, c)
			return err
		}})
	}
	for _, n := range o.Drains {
		steps = append(steps, step{fmt.Sprintf("drain, N=%d", n), func() error {
			d, err := s.Drain(ctx, o, n)
			r.Drains = append(r.Drains, d)
			return err
		}})
	}
	for _, st := range steps {
		start := time.Now()
		err := st.run()
		progress(fmt.Sprintf("%s %s: %v", s.Name, st.what, time.Since(start).Round(time.Millisecond)))
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// Scenarios names what Scenario runs: the matrix that Run runs
// (uncontended, contended, drains), then what a lock costs the client,
// many names on a session, a name's history (on etcd only), a
// semaphore beside the naive one, and the Mutex with a lock-delay beside
// the Mutex without.
var Scenarios = []string{"matrix", "cost", "names", "history", "semaphore", "lockdelay"}

// Scenario runs the scenario called name, one of Scenarios, and tells
// progress what it has done.
func (s *Server) Scenario(ctx context.Context, o Options, name string, progress func(string)) (Result, error) {
	r := s.result()
	timed := func(what string, f func() error) error {
		start := time.Now()
		err := f()
		progress(fmt.Sprintf("%s %s: %v", s.Name, what, time.Since(start).Round(time.Millisecond)))
		return err
	}
	// each runs f for every number of contenders in ns, timed apart.
	each := func(what string, ns []int, f func(n int) error) error {
		for _, n := range ns {
			if err := timed(fmt.Sprintf("%s, N=%d", what, n), func() error { return f(n) }); err != nil {
				return err
			}
		}
		return nil
	}
	switch name {
	case "matrix":
		return s.Run(ctx, o, progress)
	case "cost":
		return r, timed("cost", func() error {
			c, err := s.Cost(ctx, o)
			r.Cost = &c
			return err
		})
	case "names":
		for _, n := range o.Names {
			for contenders := 1; contenders <= 2; contenders++ {
				err := timed(fmt.Sprintf("names, %d × %d", n, contenders), func() error {
					m, err := s.ManyNames(ctx, o, n, contenders)
					r.ManyNames = append(r.ManyNames, m)
					return err
				})
				if err != nil {
					return r, err
				}
			}
		}
		return r, nil
	case "history":
		return r, timed("history", func() (err error) {
			r.History, err = s.History(ctx, o, progress)
			return err
		})
	case "semaphore":
		for i, c := range s.Semaphores(o.Permits) {
			r.SemaphoreNames[i] = c.Name
		}
		return r, each("semaphore", o.SemaphoreNs, func(n int) error {
			sem, err := s.Semaphore(ctx, o, n)
			r.Semaphores = append(r.Semaphores, sem)
			return err
		})
	case "lockdelay":
		return r, each("lockdelay", o.LockDelayNs, func(n int) error {
			l, err := s.LockDelay(ctx, o, n)
			r.LockDelays = append(r.LockDelays, l)
			return err
		})
	}
	return r, fmt.Errorf("no scenario %q: one of %v", name, Scenarios)
}

// Merge adds to r what o measured on the same server.
func (r *Result) Merge(o Result) {
	if o.Matrix {
		r.Matrix, r.Uncontended, r.Contended, r.Drains = true, o.Uncontended, o.Contended, o.Drains
	}
	if o.Cost != nil {
		r.Cost = o.Cost
	}
	r.ManyNames = append(r.ManyNames, o.ManyNames...)
	if o.History != nil {
		r.History = o.History
	}
	if o.Semaphores != nil {
		r.SemaphoreNames, r.Semaphores = o.SemaphoreNames, o.Semaphores
	}
	if o.LockDelays != nil {
		r.LockDelays = o.LockDelays
	}
}

// result is a Result with nothing measured yet.
func (s *Server) result() Result {
	r := Result{Server: s.Name, Version: s.Version}
	for i, c := range s.Contestants {
		r.Names[i] = c.Name
	}
	return r
}

// Name returns a lock name no other run uses.
func Name() string {
	var b [6]byte
	rand.Read(b[:])
	return "/turnstile-bench/" + hex.EncodeToString(b[:])
}

// alternate runs each contestant rounds times, in the order 0 1 2, 2 1 0,
// 0 1 2, ... so that no contestant always runs first or last.
func alternate(rounds int, run func(contestant int) error) error {
	return alternateAmong([]int{Ours, Baseline, Herd}, rounds, run)
}

// alternateAmong runs each of order rounds times, the order reversed
// after each round.
func alternateAmong(order []int, rounds int, run func(contestant int) error) error {
	order = slices.Clone(order)
	for range rounds {
		for _, i := range order {
			if err := run(i); err != nil {
				return err
			}
		}
		slices.Reverse(order)
	}
	return nil
}

// run is one contestant's round: its contenders on a fresh name, the
// server's counters before the round, and the round's goroutines.
type run struct {
	ctx  context.Context
	name string
	ls   []Locker
	idle Counters
	wg   sync.WaitGroup
	errs chan error // a contender's failure
}

// round runs f over n fresh contenders of c. It then ends them, failing
// any Lock still waiting, and waits until the server holds no more
// watches than before, so that the next round starts from the same state.
//
// The round's goroutines carry the profiler label contestant, as
// "etcd/turnstile", so that a CPU profile of a run (go run ./benchmarks
// -cpuprofile) splits the client's work by contestant; what an embedded
// server does for them stays unlabelled.
func (s *Server) round(ctx context.Context, c Contestant, n int, f func(r *run) error) error {
	r := &run{name: Name(), errs: make(chan error, n)}
	var err error
	pprof.Do(ctx, pprof.Labels("contestant", s.Name+"/"+c.Name), func(ctx context.Context) {
		var closeAll func()
		if r.ls, closeAll, err = c.Open(ctx, r.name, n); err != nil {
			return
		}
		if r.idle, err = s.Read(ctx); err == nil {
			var cancel context.CancelFunc
			r.ctx, cancel = context.WithCancel(ctx)
			err = f(r)
			// Cancelled and closed, every Lock returns, whether or not
			// the lock takes a context.
			cancel()
		}
		closeAll()
		r.wg.Wait()
	})
	if err != nil {
		return fmt.Errorf("%s, %d contenders: %w", c.Name, n, err)
	}
	return s.await(ctx, nil, "the ended sessions' watches gone", func() (bool, error) {
		now, err := s.Read(ctx)
		return now.Watches <= r.idle.Watches, err
	})
}

// Uncontended times Lock and Unlock pairs by one contender.
func (s *Server) Uncontended(ctx context.Context, o Options) (Uncontended, error) {
	var took, rates [3][]float64
	var work [3][]Counters
	err := alternate(o.Rounds, func(i int) error {
		return s.round(ctx, s.Contestants[i], 1, func(r *run) error {
			pair := func() error {
				if err := r.ls[0].Lock(r.ctx); err != nil {
					return err
				}
				return r.ls[0].Unlock(r.ctx)
			}
			// The first pair makes the name's parent nodes.
			if err := pair(); err != nil {
				return err
			}
			before, err := s.Read(r.ctx)
			if err != nil {
				return err
			}
			start := time.Now()
			for range o.Pairs {
				t0 := time.Now()
				if err := pair(); err != nil {
					return err
				}
				took[i] = append(took[i], ms(time.Since(t0)))
			}
			rates[i] = append(rates[i], float64(o.Pairs)/time.Since(start).Seconds())
			after, err := s.Read(r.ctx)
			work[i] = append(work[i], after.sub(before).per(float64(o.Pairs)))
			return err
		})
	})
	var u Uncontended
	for i := range 3 {
		u.P50[i], u.P99[i] = Quantile(took[i], 0.5), Quantile(took[i], 0.99)
		u.PerSec[i], u.Work[i] = Quantile(rates[i], 0.5), median(work[i])
	}
	return u, err
}

// Contended counts hand-offs among n contenders.
func (s *Server) Contended(ctx context.Context, o Options, n int) (Contended, error) {
	cs, err := s.contended(ctx, o, s.Contestants[:], n, 1, false)
	c := Contended{N: n}
	for i, x := range cs {
		c.PerSec[i], c.P50[i], c.P99[i], c.Work[i] = x.perSec, x.p50, x.p99, x.work
	}
	return c, err
}

// contention is what contended rounds of one contestant measured:
// medians of rounds, and every hand-off's latency (ms) in them.
type contention struct {
	perSec, p50, p99 float64
	work             Counters // per hand-off
	latencies        []float64
	early            []float64 // before counting began
}

// contended runs o.Rounds rounds of each of cs, in alternating order,
// in which n contenders loop Lock and Unlock of a lock that holders may
// hold at once, and returns each contestant's figures. With warm, a
// round counts only once every contender has held.
func (s *Server) contended(ctx context.Context, o Options, cs []Contestant, n, holders int, warm bool) ([]contention, error) {
	order := make([]int, len(cs))
	for i := range order {
		order[i] = i
	}
	type rounds struct {
		rates, p50s, p99s, latencies, early []float64
		work                                []Counters
	}
	rs := make([]rounds, len(cs))
	err := alternateAmong(order, o.Rounds, func(i int) error {
		return s.round(ctx, cs[i], n, func(r *run) error {
			c, err := s.contend(r, o.Window, holders, warm)
			x := &rs[i]
			x.rates = append(x.rates, c.rate)
			x.p50s = append(x.p50s, Quantile(c.latency, 0.5))
			x.p99s = append(x.p99s, Quantile(c.latency, 0.99))
			x.latencies = append(x.latencies, c.latency...)
			x.early = append(x.early, c.early...)
			x.work = append(x.work, c.work)
			return err
		})
	})
	out := make([]contention, len(cs))
	for i, x := range rs {
		out[i] = contention{Quantile(x.rates, 0.5), Quantile(x.p50s, 0.5), Quantile(x.p99s, 0.5), median(x.work), x.latencies, x.early}
	}
	return out, err
}

// contendRound is what contend measured in one round.
type contendRound struct {
	rate    float64   // hand-offs per second
	latency []float64 // each counted hand-off's (ms)
	early   []float64 // each hand-off's (ms) before the count began
	work    Counters  // per hand-off
}

// contend has the contenders loop Lock and Unlock, of a lock that
// holders may hold at once. Once all have joined the queue, and with
// warm once every contender has held, it counts the hand-offs of one
// window, and the server's work over it; the joining, and the end, stay
// out of the count.
func (s *Server) contend(r *run, window time.Duration, holders int, warm bool) (contendRound, error) {
	var h handoffs
	for who, l := range r.ls {
		r.wg.Go(func() {
			for r.ctx.Err() == nil {
				err := l.Lock(r.ctx)
				if err == nil {
					h.granted(who)
					err = l.Unlock(r.ctx)
				}
				if err != nil {
					if r.ctx.Err() == nil {
						r.errs <- err
					}
					return
				}
			}
		})
	}
	// Those that last let go may be on their way back into the queue at
	// any moment; waiting for all of them at once could take minutes with
	// a lock whose hand-offs are slow.
	if err := s.await(r.ctx, r.errs, "all contenders queued", func() (bool, error) {
		q, err := s.Queued(r.ctx, r.name)
		return q >= len(r.ls)-holders, err
	}); err != nil {
		return contendRound{}, err
	}
	if warm {
		if err := s.await(r.ctx, r.errs, "a hold by every contender", func() (bool, error) {
			return h.holders() == len(r.ls), nil
		}); err != nil {
			return contendRound{}, err
		}
	}
	first, err := s.mark(r.ctx, &h, true)
	if err != nil {
		return contendRound{}, err
	}
	// At least a few hand-offs, however slow the contestant.
	if err := s.await(r.ctx, r.errs, "hand-offs", func() (bool, error) {
		return time.Since(first.at) >= window && h.count()-first.grants >= 5, nil
	}); err != nil {
		return contendRound{}, err
	}
	last, err := s.mark(r.ctx, &h, false)
	grants := last.grants - first.grants
	latency, early := h.latencies()
	return contendRound{grants / last.at.Sub(first.at).Seconds(), latency, early, last.counters.sub(first.counters).per(grants)}, err
}

// mark is a point in a contended round: the server's counters, and the
// grants and time at the middle of reading them.
type mark struct {
	counters Counters
	grants   float64
	at       time.Time
}

// mark reads the counters; the hand-off latencies count from the first
// mark to the last.
func (s *Server) mark(ctx context.Context, h *handoffs, first bool) (mark, error) {
	g0, t0 := h.count(), time.Now()
	h.measure(first)
	counters, err := s.Read(ctx)
	g1, t1 := h.count(), time.Now()
	return mark{counters, (g0 + g1) / 2, t0.Add(t1.Sub(t0) / 2)}, err
}

// handoffs counts the grants of a contended round, and times each
// hand-off from the holder's Unlock call to the next holder's grant.
type handoffs struct {
	mu        sync.Mutex
	grants    int
	held      map[int]bool // who has held
	holder    int
	unlocked  time.Time
	measuring bool
	measured  bool      // measuring has begun
	took      []float64 // while measuring
	early     []float64 // before
}

// granted records a grant to who, whose Unlock call follows at once: it
// is timed from here.
func (h *handoffs) granted(who int) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.grants > 0 && who != h.holder {
		switch {
		case h.measuring:
			h.took = append(h.took, ms(now.Sub(h.unlocked)))
		case !h.measured:
			h.early = append(h.early, ms(now.Sub(h.unlocked)))
		}
	}
	if h.held == nil {
		h.held = make(map[int]bool)
	}
	h.held[who] = true
	h.grants++
	h.holder = who
	h.unlocked = time.Now()
}

func (h *handoffs) count() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return float64(h.grants)
}

// holders returns how many contenders have held.
func (h *handoffs) holders() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held)
}

func (h *handoffs) measure(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.measuring = on
	h.measured = h.measured || on
}

// latencies returns the latencies of the hand-offs counted, and of
// those before.
func (h *handoffs) latencies() (took, early []float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.took, h.early
}

// Drain times the release of a queue of n waiters.
func (s *Server) Drain(ctx context.Context, o Options, n int) (Drain, error) {
	var took [3][]float64
	var work [3][]Counters
	err := alternate(o.Rounds, func(i int) error {
		return s.round(ctx, s.Contestants[i], n+1, func(r *run) error {
			t, w, err := s.drain(r)
			took[i] = append(took[i], t)
			work[i] = append(work[i], w)
			return err
		})
	})
	d := Drain{N: n}
	for i := range 3 {
		d.Millis[i], d.Work[i] = Quantile(took[i], 0.5), median(work[i])
	}
	return d, err
}

// drain queues the waiters behind a holder, waits until the server shows
// them settled, then releases the holder and counts the time and the
// server's work until every waiter has come and gone.
func (s *Server) drain(r *run) (float64, Counters, error) {
	holder, waiters := r.ls[0], r.ls[1:]
	if err := holder.Lock(r.ctx); err != nil {
		return 0, Counters{}, err
	}
	done := make(chan error, len(waiters))
	for _, l := range waiters {
		r.wg.Go(func() {
			err := l.Lock(r.ctx)
			if err == nil {
				err = l.Unlock(r.ctx)
			}
			done <- err
		})
	}
	before, err := s.settle(r.ctx, done, r.name, len(waiters), r.idle)
	if err != nil {
		return 0, Counters{}, err
	}
	start := time.Now()
	if err := holder.Unlock(r.ctx); err != nil {
		return 0, Counters{}, err
	}
	for range waiters {
		if err := <-done; err != nil {
			return 0, Counters{}, err
		}
	}
	took := ms(time.Since(start))
	after, err := s.Read(r.ctx)
	return took, after.sub(before), err
}

// sessions returns a Contestant's Open that starts a session for each
// contender, a few at a time, and locks name over it; it ends them all if
// one fails.
func sessions[S any](session func() (S, func(), error), lock func(s S, name string) Locker) func(context.Context, string, int) ([]Locker, func(), error) {
	return func(ctx context.Context, name string, n int) ([]Locker, func(), error) {
		ls := make([]Locker, n)
		closers := make([]func(), n)
		errs := make([]error, n)
		slots := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				slots <- struct{}{}
				defer func() { <-slots }()
				if errs[i] = ctx.Err(); errs[i] != nil {
					return
				}
				s, close, err := session()
				if errs[i] = err; err == nil {
					closers[i], ls[i] = close, lock(s, name)
				}
			})
		}
		wg.Wait()
		closeAll := func() {
			var wg sync.WaitGroup
			for _, c := range closers {
				if c != nil {
					wg.Go(c)
				}
			}
			wg.Wait()
		}
		if err := errors.Join(errs...); err != nil {
			closeAll()
			return nil, nil, err
		}
		return ls, closeAll, nil
	}
}

// closer adapts a Close method that returns an error nobody reads.
func closer(c interface{ Close() error }) func() {
	return func() { c.Close() }
}

// settle waits until the server holds the n waiters queued behind the
// holder, at least one watch more for each than when idle, and no request
// arrives between two reads of its counters: the waiters have done what
// joining costs, and the drain's count starts clean. It returns the
// counters of the last read.
func (s *Server) settle(ctx context.Context, errs <-chan error, name string, n int, idle Counters) (Counters, error) {
	// No waiter leaves before the holder does: once all are queued,
	// they stay, and the queue need not be read again, a request that
	// would break the quiet.
	if err := s.await(ctx, errs, "waiters queued", func() (bool, error) {
		q, err := s.Queued(ctx, name)
		return q >= n+1, err
	}); err != nil {
		return Counters{}, err
	}
	var last Counters
	reads := 0
	err := s.await(ctx, errs, "waiters watching, and quiet", func() (bool, error) {
		now, err := s.Read(ctx)
		settled := reads > 0 && now.Watches >= idle.Watches+float64(n) && now.Requests == last.Requests
		last = now
		reads++
		return settled, err
	})
	return last, err
}

// settleTimeout bounds every wait for the server to show a state.
const settleTimeout = 2 * time.Minute

// pollInterval is how often a wait looks at the server again; it is also
// how long the server must stay quiet for a drain to start.
const pollInterval = 100 * time.Millisecond

// await polls cond until it holds, a contender fails, or the wait times
// out.
func (s *Server) await(ctx context.Context, errs <-chan error, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(settleTimeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, err := cond()
		if ok || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s after %v", what, settleTimeout)
		}
		select {
		case err := <-errs:
			if err == nil {
				err = errors.New("a contender ended early")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Quantile returns the q-quantile of v by the nearest rank below, and 0
// for no values.
func Quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

func median(cs []Counters) Counters {
	pick := func(f func(Counters) float64) float64 {
		v := make([]float64, len(cs))
		for i, c := range cs {
			v[i] = f(c)
		}
		return Quantile(v, 0.5)
	}
	return Counters{
		Requests:      pick(func(c Counters) float64 { return c.Requests }),
		Notifications: pick(func(c Counters) float64 { return c.Notifications }),
		Watches:       pick(func(c Counters) float64 { return c.Watches }),
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
