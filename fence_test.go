package turnstile_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile"
)

func seq(name string, mode turnstile.Kind, token int64) turnstile.Sequencer {
	return turnstile.Sequencer{Name: name, Mode: mode, Token: token, Key: fmt.Sprintf("%s/lock-%016x", name, token)}
}

func TestFenceAdmit(t *testing.T) {
	const (
		x = turnstile.Exclusive
		s = turnstile.Shared
	)
	var f turnstile.Fence // the zero Fence is ready
	for i, c := range []struct {
		seq  turnstile.Sequencer
		want error
	}{
		{seq("/a", x, 33), nil},
		{seq("/a", x, 33), nil}, // the same holder again
		{seq("/a", x, 34), nil},
		{seq("/a", x, 33), turnstile.ErrStaleToken}, // the former holder, late
		{seq("/b", x, 5), nil},                      // names are fenced apart
		{seq("/a", s, 40), nil},
		{seq("/a", s, 38), nil},                     // an older reader still holds beside 40
		{seq("/a", x, 39), turnstile.ErrStaleToken}, // a writer behind reader 40 has gone
		{seq("/a", x, 45), nil},
		{seq("/a", s, 41), turnstile.ErrStaleToken}, // writer 45 came after reader 41's hold
		{seq("/a", s, 46), nil},
		{turnstile.Sequencer{}, turnstile.ErrInvalidSequencer}, // a lost hold's
		{turnstile.Sequencer{Name: "/a", Mode: turnstile.Candidate, Token: 99, Key: "/a/lead-0000000000000063"}, turnstile.ErrInvalidSequencer},
		{seq("/a", x, 45), turnstile.ErrStaleToken},               // reader 46 came after writer 45
		{turnstile.Sequencer{Name: "/c", Mode: x, Token: 3}, nil}, // a term alone, without a key
		{turnstile.Sequencer{Name: "c", Mode: x, Token: 3}, turnstile.ErrInvalidSequencer},
	} {
		ran := false
		err := f.Do(c.seq, func() error { ran = true; return nil })
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Fatalf("step %d: Do(%s %d on %s) = %v, want %v", i, c.seq.Mode, c.seq.Token, c.seq.Name, err, c.want)
		}
		if ran != (err == nil) {
			t.Fatalf("step %d: op ran %v with error %v", i, ran, err)
		}
	}
}

// Do returns the operation's error, and the token stays admitted.
func TestFenceDoError(t *testing.T) {
	var f turnstile.Fence
	boom := errors.New("disk full")
	if err := f.Do(seq("/a", turnstile.Exclusive, 10), func() error { return boom }); err != boom {
		t.Fatalf("Do = %v, want the operation's error", err)
	}
	if err := f.Admit(seq("/a", turnstile.Exclusive, 9)); !errors.Is(err, turnstile.ErrStaleToken) {
		t.Fatalf("Admit(9) after a failed 10 = %v, want ErrStaleToken", err)
	}
}

// Holders with interleaved tokens arriving together: every write that
// lands comes after every write with an older token, and a write is
// refused only when a newer one has landed, which is what makes a late
// write from a former holder harmless.
func TestFenceConcurrent(t *testing.T) {
	var f turnstile.Fence
	for round := range 200 {
		name := fmt.Sprintf("/r%d", round)
		tokens := rand.Perm(8)
		var mu sync.Mutex // guards writes only for the race detector's sake: Do already serialises
		var writes []int64
		var refused []int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, tk := range tokens {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				tok := int64(tk + 1)
				err := f.Do(seq(name, turnstile.Exclusive, tok), func() error {
					mu.Lock()
					writes = append(writes, tok)
					mu.Unlock()
					return nil
				})
				if errors.Is(err, turnstile.ErrStaleToken) {
					mu.Lock()
					refused = append(refused, tok)
					mu.Unlock()
				} else if err != nil {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if !slices.IsSorted(writes) || len(writes)+len(refused) != len(tokens) {
			t.Fatalf("writes %v, refused %v: want increasing writes, every holder answered", writes, refused)
		}
		for _, r := range refused {
			if !slices.ContainsFunc(writes, func(w int64) bool { return w > r }) {
				t.Fatalf("token %d refused though no newer write landed (%v)", r, writes)
			}
		}
		if writes[len(writes)-1] != int64(len(tokens)) {
			t.Fatalf("newest token refused: writes %v", writes)
		}
	}
}

// Do's operations on one name run one at a time; on different names they
// do not wait for each other.
func TestFenceDoSerialises(t *testing.T) {
	var f turnstile.Fence
	done := make(chan error, 1)
	err := f.Do(seq("/a", turnstile.Exclusive, 1), func() error {
		// Another name goes through while /a's operation runs.
		if err := f.Do(seq("/b", turnstile.Exclusive, 1), func() error { return nil }); err != nil {
			return err
		}
		go func() { done <- f.Admit(seq("/a", turnstile.Exclusive, 2)) }()
		select {
		case err := <-done:
			return fmt.Errorf("Admit on /a returned (%v) while an operation on /a ran", err)
		case <-time.After(100 * time.Millisecond):
			return nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
