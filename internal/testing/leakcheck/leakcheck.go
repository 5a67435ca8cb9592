// Package leakcheck fails a package's tests when goroutines outlive
// them: a session's loop that never ended, a watch nobody stopped, a
// request goroutine still waiting on a server.
//
// It reads the stacks of every goroutine, leaves out the test runner's
// own and those the standard library keeps for the life of the process,
// and waits a moment for the rest to end, as goroutines that were told
// to stop may still be on their way out.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// settle bounds how long Find waits for goroutines to end.
const settle = time.Second

// Main runs a package's tests and exits: with their code, or with a
// failure if they passed but left goroutines running. Call it from
// TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// Find returns an error showing the stack of every goroutine but the
// caller's that is still running after a short wait, or nil if none is.
func Find() error {
	self := id(stacks(false))
	deadline := time.Now().Add(settle)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		var left []string
		for _, g := range strings.Split(stacks(true), "\n\n") {
			if id(g) != self && !kept(g) {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("goroutine leak: %d goroutines still running after the tests:\n\n%s",
				len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(wait)
	}
}

// stacks returns runtime.Stack's text for the caller, or for every
// goroutine.
func stacks(all bool) string {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, all)
		if n < len(buf) {
			return strings.TrimSpace(string(buf[:n]))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// id returns the goroutine number from a stack's first line,
// "goroutine 7 [running]:".
func id(stack string) string {
	header, _, _ := strings.Cut(stack, "\n")
	f := strings.Fields(header)
	if len(f) < 2 {
		return header
	}
	return f[1]
}

// kept reports whether a goroutine belongs to the test runner or to the
// standard library's process-wide machinery rather than to the tests.
func kept(stack string) bool {
	header, body, _ := strings.Cut(stack, "\n")
	calls := functions(body)
	if len(calls) == 0 {
		return false
	}
	switch calls[0] {
	case "testing.RunTests", "testing.(*T).Run", "testing.(*T).Parallel", "testing.runFuzzing", "testing.runFuzzTests":
		// The runner, waiting for tests that have not finished: it is
		// not a leak of theirs.
		return strings.Contains(header, "[chan receive")
	case "os/signal.signal_recv", "os/signal.loop":
		return true
	}
	for _, f := range calls {
		switch f {
		case "runtime.ensureSigM", "runtime.ReadTrace", "runtime/trace.Start.func1":
			return true
		}
	}
	return false
}

// functions lists the functions of a stack's frames, innermost first.
func functions(body string) []string {
	var calls []string
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '\t' || strings.HasPrefix(line, "created by ") {
			continue
		}
		calls = append(calls, function(line))
	}
	return calls
}

// function returns the function a stack frame's line names, without its
// arguments: "testing.(*T).Run" from "testing.(*T).Run(0xc0001, ...)".
func function(line string) string {
	if i := strings.LastIndexByte(line, '('); i > 0 {
		return line[:i]
	}
	return line
}
