package recipe

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Goroutines sharing a value take the gate in arrival order.
func TestGateFIFO(t *testing.T) {
	var g gate
	ctx := context.Background()
	if err := g.enter(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.enter(ctx); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			g.leave()
		}()
		waitWaiters(t, &g, i+1) // arrival order is known
	}
	g.leave()
	wg.Wait()
	for i, v := range order {
		if v != i {
			t.Fatalf("order %v, want 0..4", order)
		}
	}
	if g.busy || len(*g.waiters) != 0 {
		t.Fatalf("gate not free at the end: busy %v, %d waiters", g.busy, len(*g.waiters))
	}
}

// A cancelled waiter leaves the gate as it found it, also when its turn
// comes together with the cancellation: the turn passes on.
func TestGateCancel(t *testing.T) {
	for range 200 {
		var g gate
		if !g.tryEnter() {
			t.Fatal("tryEnter on a free gate")
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- g.enter(ctx) }()
		waitWaiters(t, &g, 1)
		next := make(chan error, 1)
		go func() { next <- g.enter(context.Background()) }()
		waitWaiters(t, &g, 2)
		cancel()
		g.leave() // races with the cancellation
		first := <-done
		if first == nil {
			g.leave() // it got the turn first; pass it on as its owner would
		}
		if err := <-next; err != nil {
			t.Fatal(err)
		}
		if g.tryEnter() {
			t.Fatal("two goroutines inside the gate")
		}
		g.leave()
		if !g.tryEnter() {
			t.Fatal("gate not free after its last user left")
		}
	}
}

func waitWaiters(t *testing.T, g *gate, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		g.mu.Lock()
		got := 0
		if g.waiters != nil {
			got = len(*g.waiters)
		}
		g.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters, want %d", got, n)
		}
	}
}
