package recipe

import (
	"context"
	"slices"
	"sync"
)

// gate lets the goroutines sharing one recipe value through one at a
// time, in arrival order, so that a value never has more than one
// contender in the server's queue.
type gate struct {
	mu   sync.Mutex
	busy bool
	// waiters is made by the first goroutine that waits: most values
	// never see two at once, and a held lock should stay small.
	waiters *[]chan struct{}
}

// enter blocks until the caller's turn or until ctx ends; on ctx's end it
// returns ctx.Err() and leaves the gate as it found it.
func (g *gate) enter(ctx context.Context) error {
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		return nil
	}
	turn := make(chan struct{})
	if g.waiters == nil {
		g.waiters = new([]chan struct{})
	}
	*g.waiters = append(*g.waiters, turn)
	g.mu.Unlock()

	select {
	case <-turn:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	select {
	case <-turn:
		// The turn came together with the cancellation: pass it on.
		g.mu.Unlock()
		g.leave()
	default:
		*g.waiters = slices.DeleteFunc(*g.waiters, func(c chan struct{}) bool { return c == turn })
		g.mu.Unlock()
	}
	return ctx.Err()
}

// tryEnter enters only if nobody is inside or waiting.
func (g *gate) tryEnter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.busy {
		return false
	}
	g.busy = true
	return true
}

// leave hands the gate to the longest waiter, or opens it.
func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.waiters == nil || len(*g.waiters) == 0 {
		g.busy = false
		return
	}
	w := *g.waiters
	close(w[0])
	*g.waiters = w[1:]
}
