package recipe

import (
	"context"
	"fmt"
	"slices"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
)

// WaitingRoom is the queue, nested in a semaphore's name, where its
// contenders wait for a permit; the name's own queue holds the permits.
// A release then changes the one queue that only the first waiter
// watches, and arrivals change the other, so that neither wakes anyone
// it does not concern.
const WaitingRoom = "_waiting"

// AcquirePermit joins name's WaitingRoom as a Permit contender asking for
// permits, and blocks until it holds one of them, as Acquire does.
//
// Waiters are served in the order the server received them. Every
// waiter but the first watches its predecessor in the room, which
// leaves it by taking a permit or giving up. The first waiter watches
// the holders' queue as a whole, once it is full, and moves into it,
// in one write, as soon as a holder leaves, whichever holder it is.
// Its move empties its place in the room, which wakes the waiter behind
// it, now first. Each release thus wakes two contenders, the one it
// admits and the next first waiter, however many wait, and admits one.
func (l *Lock) AcquirePermit(ctx context.Context, permits int, try bool) error {
	return l.enter(ctx, try, func() (*Hold, error) { return l.acquirePermit(ctx, permits, try) })
}

func (l *Lock) acquirePermit(ctx context.Context, permits int, try bool) (*Hold, error) {
	room := l.name + "/" + WaitingRoom
	self, q, err := l.b.Join(ctx, room, turnstile.Permit, queue.PermitLabel(permits), l.set.identity)
	if err != nil {
		return nil, err
	}
	self.Permits = int32(permits)
	held, q, err := l.promote(ctx, room, self, q, try)
	if err != nil {
		l.abandon(self, true)
		return nil, err
	}
	if err := l.settle(ctx, held, q, try); err != nil {
		l.abandon(held, true)
		return nil, err
	}
	return l.track(&Hold{Self: held}), nil
}

// settle waits, once self has moved among the holders, until no
// contender of another kind is ahead of it there: a mutex's, or another
// client's, that joined after the holders were read and before the move
// landed. It holds alone, and the permits wait for it.
func (l *Lock) settle(ctx context.Context, self queue.Contender, q []queue.Contender, try bool) error {
	for {
		var err error
		if q == nil {
			if q, err = l.b.Queue(ctx, l.name); err != nil {
				return err
			}
		}
		w, err := queue.PermitBlocker(q, self.Key)
		switch {
		case err != nil:
			return err
		case w < 0:
			return nil
		case try:
			return fmt.Errorf("%w: %s", turnstile.ErrLocked, l.name)
		}
		if _, err := l.b.AwaitExit(ctx, q[w]); err != nil {
			return err
		}
		q = nil
	}
}

// promote waits until self is the room's first waiter and the holders
// leave room for it, and moves it among them.
func (l *Lock) promote(ctx context.Context, room string, self queue.Contender, q []queue.Contender, try bool) (queue.Contender, []queue.Contender, error) {
	for {
		var err error
		if q == nil {
			if q, err = l.b.Queue(ctx, room); err != nil {
				return queue.Contender{}, nil, err
			}
		}
		i := slices.IndexFunc(q, func(c queue.Contender) bool { return c.Key == self.Key })
		switch {
		case i < 0:
			return queue.Contender{}, nil, fmt.Errorf("%w: %s is no longer queued", turnstile.ErrLost, self.Key)
		case i > 0 && try:
			return queue.Contender{}, nil, fmt.Errorf("%w: %s", turnstile.ErrLocked, l.name)
		case i > 0:
			exit, err := l.b.AwaitExit(ctx, q[i-1])
			if err != nil {
				return queue.Contender{}, nil, err
			}
			// Waiters only join behind self: once the one ahead has
			// left, self is first without reading the room again. A
			// change that only looks like a release (another program's
			// write to the node or key) is read again: a second waiter
			// taking itself for the first would move in beside it, past
			// the permits.
			if q = nil; i == 1 && exit != Released {
				q = []queue.Contender{self}
			}
			continue
		}
		fits := func(holders []queue.Contender) bool { return queue.Fits(holders, int(self.Permits)) }
		room, err := l.b.AwaitRoom(ctx, l.name, fits, !try)
		if err != nil {
			return queue.Contender{}, nil, err
		}
		if !room {
			return queue.Contender{}, nil, fmt.Errorf("%w: %s", turnstile.ErrLocked, l.name)
		}
		// Only the first waiter moves, so no permit holder joins the
		// holders meanwhile (a contender of another kind may: settle
		// waits for it); should self have been removed meanwhile, and
		// another waiter be first, the move fails.
		return l.b.Promote(ctx, self, l.name, l.set.identity)
	}
}
