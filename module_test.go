package turnstile_test

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/turnstile-go/turnstile/internal/testing/testenv"
)

// The library's packages, which a program that uses turnstile imports.
var libraryPackages = []string{
	"github.com/turnstile-go/turnstile/zklock",
	"github.com/turnstile-go/turnstile/etcdlock",
	"github.com/turnstile-go/turnstile/rwlock",
	"github.com/turnstile-go/turnstile/election",
	"github.com/turnstile-go/turnstile/mutex",
}

// The clients the library is built on, each a module whose root package
// a program imports to talk to the servers directly, whatever lock
// library it picks.
var clients = []string{"github.com/go-zookeeper/zk", "go.etcd.io/etcd/client/v3"}

// A program that uses turnstile carries in its module graph no module
// beyond those a program carries that uses ZooKeeper's and etcd's
// clients directly: what the examples, benchmarks and test servers need
// (etcd's server and tools, their loggers, metrics and tracing) stays out
// of it. Both programs are made with the real go command, in module mode,
// and compared by the module paths their go.sum files list after go mod
// tidy.
func TestModuleGraph(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		testenv.Unavailable(t, "the go command: %v", err)
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	// The direct users compile against the versions the library
	// selects, so that a difference is one of modules, not of versions.
	versions := map[string]string{}
	for _, m := range clients {
		versions[m] = goCommand(t, root, "list", "-m", "-f", "{{.Version}}", m)
	}

	user := scratchModule(t, "example.com/user",
		"require github.com/turnstile-go/turnstile v0.0.0\n"+
			"replace github.com/turnstile-go/turnstile => "+root+"\n",
		libraryPackages)
	var pinned strings.Builder
	for _, m := range clients {
		fmt.Fprintf(&pinned, "require %s %s\n", m, versions[m])
	}
	direct := scratchModule(t, "example.com/direct", pinned.String(), clients)

	got, want := goSum(t, user), goSum(t, direct)
	t.Logf("go.sum of a user of turnstile: %d lines, %d modules; of a direct user of the clients: %d lines, %d modules",
		got.lines, len(got.versions), want.lines, len(want.versions))
	var extra, differ []string
	for _, m := range slices.Sorted(maps.Keys(got.versions)) {
		w, ok := want.versions[m]
		switch {
		case !ok:
			extra = append(extra, m+" "+strings.Join(got.versions[m], " "))
		case !slices.Equal(got.versions[m], w):
			differ = append(differ, fmt.Sprintf("%s %s, directly %s", m, strings.Join(got.versions[m], " "), strings.Join(w, " ")))
		}
	}
	if len(differ) > 0 {
		t.Logf("modules at other versions than a direct user's:\n\t%s", strings.Join(differ, "\n\t"))
	}
	if len(extra) > 0 {
		// A module gets there as a requirement in the library's go.mod,
		// for one of its packages or tests, or of a requirement's own
		// go.mod at a version above the clients'.
		t.Errorf("a user of turnstile carries %d modules that a direct user of the clients does not "+
			"(go mod graph in the library's module shows whose requirements they are):\n\t%s",
			len(extra), strings.Join(extra, "\n\t"))
	}
}

// scratchModule writes, in a temporary directory, a module with the
// given go.mod lines and a program that imports packages, runs go mod
// tidy in it, and returns its directory.
func scratchModule(t *testing.T, path, gomod string, packages []string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module "+path+"\n\ngo 1.26.0\n\n"+gomod)
	var src strings.Builder
	src.WriteString("package main\n\nimport (\n")
	for _, p := range packages {
		fmt.Fprintf(&src, "\t_ %q\n", p)
	}
	src.WriteString(")\n\nfunc main() {}\n")
	write("main.go", src.String())
	goCommand(t, dir, "mod", "tidy")
	return dir
}

// sums is what a go.sum lists: its line count, and each module's
// versions.
type sums struct {
	lines    int
	versions map[string][]string
}

func goSum(t *testing.T, dir string) sums {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	s := sums{versions: map[string][]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			t.Fatalf("go.sum line %q", sc.Text())
		}
		s.lines++
		v := strings.TrimSuffix(f[1], "/go.mod")
		if !slices.Contains(s.versions[f[0]], v) {
			s.versions[f[0]] = append(s.versions[f[0]], v)
		}
	}
	for _, vs := range s.versions {
		slices.Sort(vs)
	}
	return s
}

// goCommand runs the go command in dir in module mode, outside any
// workspace, with the module cache of the test's environment, and
// returns its trimmed output.
func goCommand(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}
