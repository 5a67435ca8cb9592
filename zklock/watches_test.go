package zklock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/zktest"
)

// A wait given up on a node that later goes, with no one waiting on it
// any more, leaves nothing behind in the session: Locks given up behind
// one holder after another must not grow it.
func TestGivenUpWatchesDoNotPileUp(t *testing.T) {
	c := zktest.Start(t)
	connect := func() *Session {
		s, err := Connect(c.Servers(), WithSessionTimeout(4*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	ctx, name := t.Context(), "/turnstile-test/given-up-watches"
	s := connect()
	holder, waiter := NewMutex(connect(), name), NewMutex(s, name)
	const rounds = 60
	for range rounds {
		if err := holder.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		err := waiter.Lock(short)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiter's Lock: %v", err)
		}
		if err := holder.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
	left := 0
	s.exitWatches.Range(func(any, any) bool { left++; return true })
	t.Logf("%d of %d given-up watches left", left, rounds)
	if left > exitPruneAt {
		t.Errorf("%d of %d given-up watches left in the session", left, rounds)
	}
}
