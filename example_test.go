package turnstile_test

import (
	"errors"
	"fmt"

	"github.com/turnstile-go/turnstile"
)

// A storage service guards its writes with a Fence. Holders send their
// sequencer with each write, here as the text a header would carry; the
// one that paused past its session comes back with an older token and is
// refused.
func ExampleFence() {
	var fence turnstile.Fence
	var data string
	write := func(header, value string) {
		seq, err := turnstile.ParseSequencer(header)
		if err != nil {
			fmt.Println("bad request:", err)
			return
		}
		err = fence.Do(seq, func() error {
			data = value
			return nil
		})
		switch {
		case errors.Is(err, turnstile.ErrStaleToken):
			fmt.Printf("refused %q: token %d is stale\n", value, seq.Token)
		case err != nil:
			fmt.Println(err)
		default:
			fmt.Printf("wrote %q with token %d\n", value, seq.Token)
		}
	}
	paused := "exclusive:33:/locks/orders/lock-3f2a9c0d1e4b5a69"
	next := "exclusive:34:/locks/orders/lock-9b1c27d0e5f4a388"
	write(paused, "from the first holder")
	// The first holder pauses, its session expires, the next one holds.
	write(next, "from the next holder")
	write(paused, "late, from the first holder")
	fmt.Println("data:", data)
	// Output:
	// wrote "from the first holder" with token 33
	// wrote "from the next holder" with token 34
	// refused "late, from the first holder": token 33 is stale
	// data: from the next holder
}
