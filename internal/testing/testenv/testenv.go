// Package testenv holds what every server harness needs: the rule that a
// missing server fails a test in CI instead of skipping it, and the
// server processes a test can crash, freeze and restart.
package testenv

import (
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
