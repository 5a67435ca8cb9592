package foreign

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/turnstile-go/turnstile/internal/testing/testenv"
)

//go:embed Driver.java
var driverJava []byte

// curatorJars make the driver's whole classpath: Debian's jars name
// their dependencies (framework, client, ZooKeeper, guava, slf4j) in
// their manifests. slf4j-simple sends Curator's and ZooKeeper's logs to
// stderr, where the driver sets them to WARN.
var curatorJars = []string{"/usr/share/java/curator-recipes.jar", "/usr/share/java/slf4j-simple.jar"}

// jvmFlags make a short-lived client start fast on few cores, as
// zktest's do for servers: the serial collector and the C1-only compiler
// cost less CPU before the first command than the defaults.
var jvmFlags = []string{"-Xmx64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData"}

// Curator starts a Curator client running recipe on path with the given
// id, connected to servers, and returns once its session is up. Recipes:
//
//   - "mutex": InterProcessMutex; nodes _c_<uuid>-lock-<seq>.
//   - "read", "write": the sides of one InterProcessReadWriteLock; nodes
//     _c_<uuid>-__READ__<seq> and _c_<uuid>-__WRIT__<seq>.
//   - "latch": LeaderLatch with id; nodes _c_<uuid>-latch-<seq>. Release
//     closes the latch.
//   - "selector": LeaderSelector with id, which Acquire starts and which
//     leads until Release makes takeLeadership return; nodes
//     _c_<uuid>-lock-<seq>.
//
// Every node holds the id as its data. For the locks this is not
// Curator's default, which is the host's IP address: the driver sets
// the framework's default data to the id so that participants can be
// told apart. Sessions time out after 4 s.
//
// Without java, javac or Debian's Curator jars the test is stopped as
// by testenv.Unavailable.
func Curator(tb testing.TB, servers []string, recipe, path, id string) *Client {
	tb.Helper()
	classes, java := curatorDriver(tb)
	cp := strings.Join(append([]string{classes}, curatorJars...), string(os.PathListSeparator))
	argv := append([]string{java}, jvmFlags...)
	argv = append(argv, "-cp", cp, "Driver", strings.Join(servers, ","), recipe, path, id)
	return start(tb, fmt.Sprintf("curator %s %s", recipe, id), argv)
}

// CuratorAvailable returns nil when Curator clients can start: the
// driver compiles, or why not, for a test that goes on without them.
func CuratorAvailable() error {
	compiled.Lock()
	defer compiled.Unlock()
	if compiled.classes == "" && compiled.err == nil {
		compiled.classes, compiled.java, compiled.err = compileDriver()
	}
	return compiled.err
}

// compiled is the driver compiled at most once per test process; the
// per-user cache makes it at most once per version of its source.
var compiled struct {
	sync.Mutex
	classes, java string
	err           error
}

// curatorDriver returns the directory of the compiled driver and the
// java command to run it, or stops the test as unavailable.
func curatorDriver(tb testing.TB) (classes, java string) {
	tb.Helper()
	if err := CuratorAvailable(); err != nil {
		testenv.Unavailable(tb, "Curator driver: %v", err)
	}
	compiled.Lock()
	defer compiled.Unlock()
	return compiled.classes, compiled.java
}

func compileDriver() (classes, java string, err error) {
	for _, jar := range curatorJars {
		if _, err := os.Stat(jar); err != nil {
			return "", "", fmt.Errorf("%w (Debian packages libcurator-recipes-java, libslf4j-java)", err)
		}
	}
	if java, err = exec.LookPath("java"); err != nil {
		return "", "", err
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		return "", "", fmt.Errorf("%w (a JDK, such as Debian's default-jdk-headless)", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		// No HOME, as in some CI sandboxes: the classes then last as
		// long as the temporary directory.
		cache = os.TempDir()
	}
	sum := sha256.Sum256(driverJava)
	dir := filepath.Join(cache, "turnstile")
	classes = filepath.Join(dir, "curator-driver-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(classes, "Driver.class")); err == nil {
		return classes, java, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	// Test processes of several packages may compile at once: each
	// compiles into a directory of its own and renames it into place,
	// so that a reader sees either no classes or all of them.
	tmp, err := os.MkdirTemp(dir, "curator-driver-*.tmp")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp) // gone already once renamed
	src := filepath.Join(tmp, "Driver.java")
	if err := os.WriteFile(src, driverJava, 0o644); err != nil {
		return "", "", err
	}
	cmd := exec.Command(javac, "-nowarn", "-cp", strings.Join(curatorJars, string(os.PathListSeparator)), "-d", tmp, src)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("javac: %w\n%s", err, out.Bytes())
	}
	if err := os.Rename(tmp, classes); err != nil {
		// Another process renamed its copy first: the same source
		// gives the same classes.
		if _, statErr := os.Stat(filepath.Join(classes, "Driver.class")); statErr == nil {
			return classes, java, nil
		}
		return "", "", err
	}
	return classes, java, nil
}
