package turnstile

import (
	"fmt"
	"sync"
)

// A Fence guards a resource against the late operations of former
// holders. It remembers, for each name, the newest fencing token it has
// admitted, and refuses an operation whose token is older with an error
// matching ErrStaleToken: a holder that paused past its session, and
// wakes still believing it holds, is turned away once its successor has
// been admitted.
//
// A Fence admits, per name:
//   - an Exclusive operation whose token is not older than any token
//     admitted, of either mode;
//   - a Shared operation whose token is not older than any Exclusive
//     token admitted. Readers hold together, so one reader's newer token
//     does not turn an older reader away, but a writer admitted after a
//     reader means that reader's hold has ended.
//
// Check-then-write and check-and-write differ. With Admit, the check is
// over when the write starts: holders with tokens 33 and 34 may both be
// admitted, 34 writes, and 33's write, still in flight, lands after it.
// Do runs the operation under the Fence, so that 33 is either refused or
// done before 34's check; use Admit only where the operation cannot be
// overtaken, or is the admission itself. Either way the Fence protects
// only what goes through it, and only while it lives: a resource that
// outlives its process keeps the newest token with its data instead, as
// an etcd or ZooKeeper write does with the backends' guards.
//
// The zero Fence is ready to use. A Fence is safe for use by several
// goroutines; it must not be copied after first use.
type Fence struct {
	mu    sync.Mutex
	names map[string]*fenced
}

// fenced is one name's state; its lock is held across Do's operation.
type fenced struct {
	mu        sync.Mutex
	newest    int64 // newest token admitted, of either mode
	exclusive int64 // newest Exclusive token admitted
}

// Admit admits seq's token if it is not older than the Fence allows, and
// records it; it returns an error matching ErrStaleToken otherwise, and
// one matching ErrInvalidSequencer for a seq without a valid name, mode
// and token, such as the zero Sequencer of a hold that was lost. The
// Fence does not use seq.Key, so a sequencer made of a name, a mode and
// a token alone will do, such as Sequencer{Name: name, Mode: Exclusive,
// Token: term} for the term election.Run gives its work. See Fence for
// why Do is usually what a resource needs.
func (f *Fence) Admit(seq Sequencer) error {
	return f.Do(seq, nil)
}

// Do admits seq as Admit does and, if admitted, runs op before any other
// operation on seq.Name may be checked, returning op's error. Operations
// on one name therefore run one at a time, readers' too; operations on
// different names do not wait for each other. The token stays admitted
// even if op fails.
func (f *Fence) Do(seq Sequencer, op func() error) error {
	if err := seq.checkHold(); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidSequencer, err)
	}
	n := f.name(seq.Name)
	n.mu.Lock()
	defer n.mu.Unlock()
	floor := n.newest
	if seq.Mode == Shared {
		floor = n.exclusive
	}
	if seq.Token < floor {
		return fmt.Errorf("%w: %s token %d is older than %d", ErrStaleToken, seq.Name, seq.Token, floor)
	}
	n.newest = max(n.newest, seq.Token)
	if seq.Mode == Exclusive {
		n.exclusive = seq.Token
	}
	if op == nil {
		return nil
	}
	return op()
}

func (f *Fence) name(name string) *fenced {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.names[name]
	if n == nil {
		if f.names == nil {
			f.names = make(map[string]*fenced)
		}
		n = &fenced{}
		f.names[name] = n
	}
	return n
}
