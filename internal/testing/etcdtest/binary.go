package etcdtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/testenv"
)

// serverModule is the module whose main package is the etcd binary.
const serverModule = "go.etcd.io/etcd/server/v3"

// toolModule is the directory, relative to this module's root, of the
// module that requires etcd's server and etcdctl, at the versions the
// binaries are built from. They live in a module of their own so that
// this module, the library's, does not require them: its users would
// otherwise find etcd's server, and everything the server needs, in
// their own module graphs. The examples embed the server from the same
// module, so that tests and examples run one version.
const toolModule = "internal/testing/embedetcd"

var etcdBin = &goBinary{module: serverModule, name: "etcd"}

// errUnavailable marks an error that says a binary could not be had: a
// test then counts as unable to run, not as failed, outside CI.
var errUnavailable = errors.New("unavailable")

// goBinary is a program built from the main package of a module the
// tool module requires. It is built at most once per test process; the
// per-user cache makes it at most once per version across processes and
// runs.
type goBinary struct {
	module, name string

	mu   sync.Mutex
	path string
	err  error
}

// get returns the binary's path, or stops the test as unavailable when
// it cannot be had.
func (b *goBinary) get(tb testing.TB) string {
	tb.Helper()
	path, err := b.find(tb.Logf)
	if err != nil {
		testenv.Unavailable(tb, "%v", err)
	}
	return path
}

// find returns the binary's path, building it first if need be and
// telling logf how long that took, or an error matching errUnavailable.
func (b *goBinary) find(logf func(format string, args ...any)) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.path == "" && b.err == nil {
		b.path, b.err = findOrBuild(logf, b.module, b.name)
		if b.err != nil {
			b.err = fmt.Errorf("%s binary: %w: %w", b.name, errUnavailable, b.err)
		}
	}
	return b.path, b.err
}

// etcdBinary returns the path of an etcd binary built from the tool
// module's requirement on the server module, or stops the test as
// unavailable when it cannot be had.
func etcdBinary(tb testing.TB) string {
	tb.Helper()
	return etcdBin.get(tb)
}

// findOrBuild returns the cached binary called name built from module at
// the version the tool module requires, building it first if need be.
func findOrBuild(logf func(format string, args ...any), module, name string) (string, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return "", fmt.Errorf("building it needs the go command: %w", err)
	}
	gomod, err := goCmd("", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	dir := filepath.Join(filepath.Dir(gomod), filepath.FromSlash(toolModule))
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("the module that requires %s: %w", module, err)
	}
	// Listed from the tool module, so the version is the one `go build`
	// below will compile.
	version, err := goCmd(dir, "list", "-m", "-f", "{{.Version}}", module)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		// No HOME, as in some CI sandboxes: the binary is then cached
		// for as long as the temporary directory lives.
		cache = os.TempDir()
	}
	cache = filepath.Join(cache, "turnstile")
	path := filepath.Join(cache, name+"-"+version)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	// Test processes of several packages may build at once: each builds
	// into a file of its own and renames it into place, so a reader sees
	// either no binary or a whole one.
	tmp, err := os.CreateTemp(cache, name+"-"+version+".*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	start := time.Now()
	if _, err := goCmd(dir, "build", "-o", tmp.Name(), module); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	logf("built %s %s into %s in %v", name, version, path, time.Since(start).Round(time.Millisecond))
	return path, nil
}

// goCmd runs the go command in dir and returns its trimmed output. It
// runs outside any workspace, so that each module is built from its own
// go.mod and go.sum, as its users build it.
func goCmd(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out)), nil
}
