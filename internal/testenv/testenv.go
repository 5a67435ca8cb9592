// Package testenv holds what every server harness needs: free loopback
// ports and the rule that a missing server fails a test in CI instead of
// skipping it.
package testenv

import (
	"net"
	"os"
	"strconv"
	"testing"
)

// InCI reports whether the tests run in continuous integration, where
// every server the suite needs must be present.
func InCI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// Unavailable stops the test because something it needs is missing: a
// failure in CI, where a skip would let the suite pass without testing
// anything, and a skip on a developer's machine.
func Unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("CI=true and "+format, args...)
	}
	tb.Skipf(format, args...)
}

// FreePorts returns n distinct TCP ports that were free on 127.0.0.1 a
// moment ago. Holding every listener until all are chosen keeps the n
// ports distinct; another process may still take one before the caller
// binds it, which the harnesses handle by retrying a failed start.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
