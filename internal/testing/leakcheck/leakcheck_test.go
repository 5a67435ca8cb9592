package leakcheck

import (
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// A goroutine that ends within the wait is no leak; one that does not
// is reported with its stack.
func TestFind(t *testing.T) {
	if err := Find(); err != nil {
		t.Fatalf("a leak before any goroutine was started: %v", err)
	}
	soon := make(chan struct{})
	go func() { <-soon }()
	time.AfterFunc(100*time.Millisecond, func() { close(soon) })
	if err := Find(); err != nil {
		t.Fatalf("a goroutine that ends within the wait reported: %v", err)
	}

	never := make(chan struct{})
	defer close(never)
	go waitForever(never)
	err := Find()
	if err == nil || !strings.Contains(err.Error(), "leakcheck.waitForever") {
		t.Fatalf("a goroutine left running: got %v, want its stack", err)
	}
}

func waitForever(c chan struct{}) { <-c }

// The frames of a stack are read without their arguments, and the
// runner's own goroutines are not the tests'.
func TestKept(t *testing.T) {
	for _, tc := range []struct {
		stack string
		kept  bool
	}{
		{"goroutine 1 [chan receive]:\ntesting.(*T).Run(0xc000003a40, {0x5a1b2c, 0x8}, 0x5c2d30)\n\t/go/src/testing/testing.go:2005 +0x485", true},
		{"goroutine 1 [running]:\ntesting.(*T).Run(0xc000003a40, {0x5a1b2c, 0x8}, 0x5c2d30)\n\t/go/src/testing/testing.go:2005 +0x485", false},
		{"goroutine 6 [syscall]:\nos/signal.signal_recv()\n\t/go/src/runtime/sigqueue.go:152 +0x29\nos/signal.loop()\n\t/go/src/os/signal/signal_unix.go:23 +0x13\ncreated by os/signal.Notify.func1.1 in goroutine 1", true},
		{"goroutine 9 [select]:\nexample.com/p.(*Session).loop(0xc0000b2000)\n\t/src/p/session.go:10 +0x1a\ncreated by example.com/p.New in goroutine 8", false},
	} {
		if got := kept(tc.stack); got != tc.kept {
			t.Errorf("kept(%q) = %v, want %v", tc.stack, got, tc.kept)
		}
	}
}
