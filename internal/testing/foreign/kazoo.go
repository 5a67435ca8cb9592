package foreign

import (
	_ "embed"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/turnstile-go/turnstile/internal/testing/testenv"
)

//go:embed kazoo_driver.py
var kazooDriver string

// python is Debian's interpreter, named in full: kazoo is Debian's
// python3-kazoo, which an interpreter found earlier on PATH, such as
// pyenv's, does not see.
const python = "/usr/bin/python3"

// Patterns for kazoo's extra_lock_patterns, which make a kazoo recipe
// count the nodes that turnstile and Curator write as contenders.
//
// kazoo 2.8.0 (kazoo/recipe/lock.py) joins its own names and the extra
// patterns with "|" into one regular expression,
// (?:p1|p2|...)(-?\d{10})$, searched in each child's name, so not
// anchored at its start. A child is a contender when it matches, and
// contenders are ordered by the captured groups compared as strings.
// Hence a pattern is a regex fragment without capturing groups (and,
// here, without commas, the driver's separator) that ends right where
// the 10-digit sequence number starts. The dash after "lock" and "latch"
// belongs in the pattern: with "-lock" the captured group would be
// "-0000000001", which sorts before every plain number, so such a node
// would come before kazoo's own whatever its sequence.
//
// Which patterns a recipe needs follows from the names it waits for:
//
//   - Lock (own nodes <hex>__lock__<seq>, waits for __lock__): LockPattern.
//   - WriteLock (own __lock__, waits for __lock__ and __rlock__):
//     WritePattern and ReadPattern.
//   - ReadLock (own __rlock__, waits for __lock__ only): WritePattern
//     alone; with ReadPattern it would queue behind foreign readers.
//   - Election: it takes no patterns, so the driver replaces its lock
//     with a Lock that has them. LatchPattern to contend with
//     LeaderLatch nodes, LockPattern with LeaderSelector's.
//
// kazoo 2.8.0's ReadLock does not match its own node against that
// expression, so it waits for the last writer, even one queued after it:
// a reader waiting behind a writer and a writer that queues after that
// reader wait for each other forever (fixed in kazoo 2.9.0).
const (
	LockPattern  = "-lock-"   // _c_<id>-lock-<seq>
	WritePattern = "__WRIT__" // _c_<id>-__WRIT__<seq>
	ReadPattern  = "__READ__" // _c_<id>-__READ__<seq>
	LatchPattern = "-latch-"  // _c_<id>-latch-<seq>
)

// Kazoo starts a kazoo client running recipe on path with the given id
// as its nodes' data, connected to servers, and returns once its session
// is up. Recipes: "lock" (Lock), "read" (ReadLock), "write" (WriteLock),
// each given patterns as extra_lock_patterns, and "election" (Election,
// whose lock is given them; Acquire waits until the leader function
// runs, Release makes it return). Sessions time out after 4 s.
//
// Without Debian's python3 and kazoo the test is stopped as by
// testenv.Unavailable.
func Kazoo(tb testing.TB, servers []string, recipe, path, id string, patterns ...string) *Client {
	tb.Helper()
	if err := kazooAvailable(); err != nil {
		testenv.Unavailable(tb, "kazoo: %v", err)
	}
	for _, p := range patterns {
		if p == "" || strings.Contains(p, ",") {
			tb.Fatalf("kazoo pattern %q: must be non-empty and without commas", p)
		}
	}
	argv := []string{python, "-c", kazooDriver, strings.Join(servers, ","), recipe, path, id}
	if len(patterns) > 0 {
		argv = append(argv, strings.Join(patterns, ","))
	}
	return start(tb, fmt.Sprintf("kazoo %s %s", recipe, id), argv)
}

// kazooAvailable imports kazoo once per test process.
var kazooAvailable = sync.OnceValue(func() error {
	out, err := exec.Command(python, "-c", "import kazoo").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -c 'import kazoo': %w (Debian package python3-kazoo)\n%s", python, err, out)
	}
	return nil
})
