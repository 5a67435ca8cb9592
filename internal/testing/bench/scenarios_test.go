package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// fake is a Locker whose calls fail as told, and which counts its holds.
type fake struct {
	lock, unlock func() error
	holds        *atomic.Int64
}

func (f fake) Lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.lock != nil {
		if err := f.lock(); err != nil {
			return err
		}
	}
	f.holds.Add(1)
	return nil
}

func (f fake) Unlock(context.Context) error {
	if f.unlock != nil {
		return f.unlock()
	}
	return nil
}

func TestAlternateAmongTwo(t *testing.T) {
	var got []int
	if err := alternateAmong([]int{Ours, Baseline}, 3, func(i int) error { got = append(got, i); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 1, 0, 0, 1}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// A value's errors count by kind; a Lock ended by the round's end does
// not count; an Unlock that keeps failing gives the value up.
func TestTally(t *testing.T) {
	var holds atomic.Int64
	round, end := context.WithCancel(context.Background())
	lockCalls := 0
	var tl tally
	var wg sync.WaitGroup
	failing := errors.New("refused")
	// One value fails its first Lock, is refused once for overload,
	// then holds and releases until the round ends; its last Lock ends
	// with the round.
	wg.Go(func() {
		tl.loop(round, context.Background(), fake{holds: &holds, lock: func() error {
			lockCalls++
			switch lockCalls {
			case 1:
				return failing
			case 2:
				return fmt.Errorf("put: %w", rpctypes.ErrTooManyRequests)
			case 5:
				end()
			}
			if round.Err() != nil {
				return round.Err()
			}
			return nil
		}})
	})
	wg.Wait()
	// Another holds once and can never unlock.
	round2, end2 := context.WithCancel(context.Background())
	defer end2()
	wg.Go(func() {
		tl.loop(round2, context.Background(), fake{holds: &holds, unlock: func() error { return failing }})
	})
	wg.Wait()

	if got := tl.pairs.Load(); got != 2 {
		t.Errorf("%d pairs, want 2", got)
	}
	if got := tl.overloaded.Load(); got != 1 {
		t.Errorf("%d refused for overload, want 1", got)
	}
	if got, want := tl.errors.Load(), int64(1+unlockTries); got != want {
		t.Errorf("%d errors, want %d: the failed Lock and every failed Unlock", got, want)
	}
	if got := tl.gaveUp.Load(); got != 1 {
		t.Errorf("%d values gave up, want 1", got)
	}
	if got := tl.held.Load(); got != 2 {
		t.Errorf("%d values held, want 2", got)
	}
	if tl.first != failing {
		t.Errorf("first error %v, want %v", tl.first, failing)
	}
	if got := tl.running.Load(); got != 0 {
		t.Errorf("%d values still running", got)
	}
}

func TestNamesRoundRates(t *testing.T) {
	r := namesRound{pairs: 500, seconds: 5, cpuMicros: 1e5, requests: 1500}
	if got := r.perSec(); got != 100 {
		t.Errorf("%v pairs per second, want 100", got)
	}
	if got := r.perPair(r.cpuMicros); got != 200 {
		t.Errorf("%v µs per pair, want 200", got)
	}
	if got := (namesRound{seconds: 5}).perPair(10); got != 0 {
		t.Errorf("%v per pair of no pairs, want 0", got)
	}
}

// Seeding makes exactly the holds asked for, however many sessions take
// turns, and stops at the first error.
func TestSeed(t *testing.T) {
	var holds atomic.Int64
	c := Contestant{Open: func(ctx context.Context, name string, n int) ([]Locker, func(), error) {
		ls := make([]Locker, n)
		for i := range ls {
			ls[i] = fake{holds: &holds}
		}
		return ls, func() {}, nil
	}}
	var s Server
	if err := s.seed(context.Background(), c, "/x", 1001, 4); err != nil {
		t.Fatal(err)
	}
	if got := holds.Load(); got != 1001 {
		t.Errorf("%d holds, want 1001", got)
	}
	failing := errors.New("refused")
	c.Open = func(ctx context.Context, name string, n int) ([]Locker, func(), error) {
		return []Locker{fake{holds: &holds, unlock: func() error { return failing }}}, func() {}, nil
	}
	if err := s.seed(context.Background(), c, "/x", 10, 1); !errors.Is(err, failing) {
		t.Errorf("seed returned %v, want %v", err, failing)
	}
}

func TestUsage(t *testing.T) {
	u0 := readUsage()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { _ = make([]byte, 1<<10) })
	}
	wg.Wait()
	u1 := readUsage()
	_, mallocs, bytes, goroutines := u0.perOp(u1, 10)
	if math.IsNaN(goroutines) {
		t.Skip("this Go does not count the goroutines it starts")
	}
	if goroutines < 1 {
		t.Errorf("%v goroutines started per op, want at least 1", goroutines)
	}
	if mallocs <= 0 || bytes <= 0 {
		t.Errorf("%v allocations and %v bytes per op, want some", mallocs, bytes)
	}
}

// The herd admits a node with fewer than permits nodes ahead of it,
// whatever order the server lists them in, and never a node not there.
func TestAdmitted(t *testing.T) {
	children := []string{"herd-0000000003", "herd-0000000001", "herd-0000000004", "herd-0000000002"}
	for _, tt := range []struct {
		self    string
		permits int
		want    bool
	}{
		{"herd-0000000001", 1, true},
		{"herd-0000000002", 1, false},
		{"herd-0000000002", 2, true},
		{"herd-0000000004", 3, false},
		{"herd-0000000004", 4, true},
		{"herd-0000000000", 4, false}, // deleted behind its back
	} {
		if got := admitted(children, tt.self, tt.permits); got != tt.want {
			t.Errorf("admitted(%s, %d permits) = %v, want %v", tt.self, tt.permits, got, tt.want)
		}
	}
}

func TestMerge(t *testing.T) {
	r := Result{Server: "etcd", Cost: &Cost{Held: 1}}
	r.Merge(Result{Server: "etcd", Matrix: true, Contended: []Contended{{N: 8}}})
	r.Merge(Result{Server: "etcd", ManyNames: []ManyNames{{Names: 10}}})
	r.Merge(Result{Server: "etcd", History: []Depth{{Holds: 0}}})
	r.Merge(Result{Server: "etcd", SemaphoreNames: [2]string{"turnstile", "naive"}, Semaphores: []Semaphore{{N: 8}}})
	r.Merge(Result{Server: "etcd", LockDelays: []LockDelay{{N: 8}}})
	if !r.Matrix || len(r.Contended) != 1 || r.Cost == nil || len(r.ManyNames) != 1 || len(r.History) != 1 ||
		len(r.Semaphores) != 1 || r.SemaphoreNames[1] != "naive" || len(r.LockDelays) != 1 {
		t.Errorf("merged %+v", r)
	}
}

func TestMarkdownScenarios(t *testing.T) {
	r := Result{Server: "etcd", Version: "3.7.3", Names: [3]string{"turnstile", "concurrency.Mutex", "herd"}}
	r.Cost = &Cost{Held: 1000, Mallocs: [2]float64{300, 200}, Goroutines: [2]float64{math.NaN(), math.NaN()}, HeldWatches: [2]float64{1, 0}}
	r.ManyNames = []ManyNames{{Names: 1000, Contenders: 2, PerSec: [2]float64{900, 1800}, FirstHolds: [2]float64{2.5, math.Inf(1)}, Overloaded: [2]int{0, 7}, Wedged: [2]int{1, 0}, FirstError: [2]string{"lost"}}}
	r.History = []Depth{
		{Holds: 0, P50: [2]float64{1, 0.5}, PutP50: [2]float64{0.6, 0.6}, IdleP50: 0.5},
		{Holds: 50000, P50: [2]float64{10, 0.5}, PutP50: [2]float64{6, 0.6}, PutP99: [2]float64{40, 2}, IdleP50: 0.5, IdleP99: 1.5},
	}
	r.SemaphoreNames = [2]string{"turnstile", "naive"}
	r.Semaphores = []Semaphore{{N: 64, Permits: 4, PerSec: [2]float64{800, 100},
		Work: [2]Counters{{Requests: 6, Notifications: 2}, {Requests: 70, Notifications: 64}}}}
	r.LockDelays = []LockDelay{{N: 8, Delay: 10 * time.Second, PerSec: [2]float64{600, 800}, P50: [2]float64{1.5, 1},
		Work: [2]Counters{{Requests: 6, Notifications: 1}, {Requests: 5, Notifications: 1}}, Slow: [2]int{1, 0}, SlowEarly: [2]int{4, 0}}}
	var b strings.Builder
	Markdown(&b, []Result{r})
	out := b.String()
	for _, want := range []string{
		"| allocations per Lock+Unlock | 300 | 200 | 1.50 |",
		"| goroutines started per Lock+Unlock | – | – | – |",
		"| server watches per held lock | 1.00 | 0 | – |",
		"| names × sessions | turnstile | concurrency.Mutex | turnstile ÷ concurrency.Mutex |",
		"| 1000 × 2: Lock+Unlock per second | 900 | 1800 | 0.50 |",
		"| 1000 × 2: refused as too many requests | 0 | 7 | – |",
		"| 1000 × 2: seconds until every value had held | 2.50 | – | – |",
		"| 1000 × 2: wedged values | 1 | 0 | – |",
		"- turnstile's first error at 1000 × 2: `lost`",
		"| past holds | turnstile | concurrency.Mutex | turnstile ÷ concurrency.Mutex | turnstile ÷ turnstile at 0 | concurrency.Mutex ÷ concurrency.Mutex at 0 |",
		"| 50000: Lock+Unlock p50 (ms) | 10.0 | 0.50 | 20.00 | 10.00 | 1.00 |",
		"| 50000: unrelated Put p50 ÷ its 0.50 ms with no lock traffic | 12.0 | 1.20 | 10.00 | 10.00 | 1.00 |",
		"| 50000: unrelated Put p99 (ms) meanwhile (1.50 with no lock traffic) | 40.0 | 2.00 | 20.00 | – | – |",
		"a semaphore of 4 permits",
		"| N | turnstile | naive | turnstile ÷ naive |",
		"| 64: hand-offs (grants) per second | 800 | 100 | 8.00 |",
		"| 64: server requests per grant | 6.00 | 70.0 | 0.09 |",
		"| 64: watch notifications per release | 2.00 | 64.0 | 0.03 |",
		"a lock-delay of 10s",
		"| N | with lock-delay 10s | without | with lock-delay 10s ÷ without |",
		"| 8: hand-offs per second | 600 | 800 | 0.75 |",
		"| 8: hand-off latency p50 (ms) | 1.50 | 1.00 | 1.50 |",
		"| 8: server requests per hand-off | 6.00 | 5.00 | 1.20 |",
		"| 8: hand-offs over 1s | 1 | 0 | – |",
		"| 8: hand-offs over 1s as the contenders joined | 4 | 0 | – |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Uncontended") {
		t.Errorf("matrix tables, none measured:\n%s", out)
	}
}

// A round's hand-offs are timed apart before its count begins, while it
// counts, and not after; a contender's second grant in a row is no
// hand-off.
func TestHandoffs(t *testing.T) {
	var h handoffs
	h.granted(0)
	h.granted(1)
	h.granted(1)
	h.measure(true)
	h.granted(2)
	h.granted(0)
	h.measure(false)
	h.granted(1)
	took, early := h.latencies()
	if len(early) != 1 || len(took) != 2 {
		t.Errorf("%d hand-offs before the count and %d in it, want 1 and 2", len(early), len(took))
	}
	if got := h.holders(); got != 3 {
		t.Errorf("%d holders, want 3", got)
	}
	if got := h.count(); got != 6 {
		t.Errorf("%v grants, want 6", got)
	}
}

func TestSlow(t *testing.T) {
	if got := slow([]float64{1.2, 999, 1000, 1000.5, 10001}); got != 2 {
		t.Errorf("%d slow, want 2: over %v", got, SlowHandOff)
	}
}
