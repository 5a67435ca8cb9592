package etcdtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/testenv"
)

// etcdctlModule's main package is etcdctl. The tool module requires it
// at the server's version, which is the client's in this module's
// go.mod, so that etcdctl runs the same concurrency recipes as this
// module's tests do through the client module; TestToolVersions checks
// that the two go.mod files agree.
const etcdctlModule = "go.etcd.io/etcd/etcdctl/v3"

var etcdctlBin = &goBinary{module: etcdctlModule, name: "etcdctl"}

// Etcdctl returns the path of an etcdctl binary built from the tool
// module's requirement on etcdctl's module, built the first time any test needs
// it (about 30 s) and cached per user; without a go command, or if the
// build fails, the test is skipped — or fails, in CI.
func Etcdctl(tb testing.TB) string {
	tb.Helper()
	return etcdctlBin.get(tb)
}

// lockTTL is the lease TTL, in seconds, of `etcdctl lock`: how long a
// holder or waiter that dies without letting go — killed, or cut from
// the server — keeps its key. Two seconds is the shortest lease etcd
// grants at its default timing, and leaves a live holder three
// keep-alives, one every 0.7 s, to get through on a loaded machine.
//
// `etcdctl elect` has no such option: its lease lives 60 s.
const lockTTL = 2

// stopGrace bounds how long an etcdctl told to let go may take to
// delete its key and exit before it is killed.
const stopGrace = 5 * time.Second

// Held is one etcdctl process that holds a lock or leads an election
// for as long as it runs.
type Held struct {
	key, value string
	cmd        *exec.Cmd
	stderr     bytes.Buffer // read only once exited is closed
	exited     chan struct{}
}

// EtcdctlLock runs `etcdctl lock name` against endpoints and returns
// once etcdctl has printed the key it holds, the key under "name/" that
// concurrency.Mutex creates. If ctx ends first, etcdctl is told to let
// go, then killed, and EtcdctlLock returns ctx.Err(). The test's cleanup
// kills the process.
func EtcdctlLock(ctx context.Context, tb testing.TB, endpoints []string, name string) (*Held, error) {
	tb.Helper()
	return hold(ctx, tb, endpoints, "lock", "--ttl", strconv.Itoa(lockTTL), name)
}

// EtcdctlElect runs `etcdctl elect name proposal` against endpoints and
// returns once it leads, as EtcdctlLock does.
func EtcdctlElect(ctx context.Context, tb testing.TB, endpoints []string, name, proposal string) (*Held, error) {
	tb.Helper()
	return hold(ctx, tb, endpoints, "elect", name, proposal)
}

// EtcdctlLeader returns the current leader's proposal in election name,
// as `etcdctl elect -l` sees it; with no leader it waits for one until
// ctx ends.
func EtcdctlLeader(ctx context.Context, tb testing.TB, endpoints []string, name string) (string, error) {
	tb.Helper()
	h, err := hold(ctx, tb, endpoints, "elect", "-l", name)
	if err != nil {
		return "", err
	}
	// The observer holds no key, so there is nothing to wait for.
	h.kill()
	return h.value, nil
}

// Key is the key etcdctl holds the lock or leads the election with.
func (h *Held) Key() string { return h.key }

// Release makes etcdctl let go with SIGINT, on which it deletes its key
// — the next waiter is in at once, not after its lease's TTL — and
// returns once it has exited. If ctx ends first, it kills etcdctl and
// returns ctx.Err(). An etcdctl that exited on its own, as it does once
// its lease has lapsed, had lost the hold: Release returns its error.
func (h *Held) Release(ctx context.Context) error {
	if err := h.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-h.exited:
	case <-ctx.Done():
		h.kill()
		return ctx.Err()
	}
	if !h.cmd.ProcessState.Success() {
		return fmt.Errorf("%s: %v: %s", h.cmd, h.cmd.ProcessState, bytes.TrimSpace(h.stderr.Bytes()))
	}
	return nil
}

func (h *Held) kill() {
	_ = h.cmd.Process.Kill()
	<-h.exited
}

// hold starts etcdctl and returns once it has printed a key and its
// value, as lock, elect and elect -l do once they hold, lead or see a
// leader.
func hold(ctx context.Context, tb testing.TB, endpoints []string, args ...string) (*Held, error) {
	tb.Helper()
	bin := Etcdctl(tb)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	h := &Held{exited: make(chan struct{})}
	h.cmd = exec.Command(bin, append([]string{"--endpoints", strings.Join(endpoints, ",")}, args...)...)
	// An *os.File as stdout is the child's own, so that no copying
	// goroutine can race the read below or outlive the process.
	h.cmd.Stdout, h.cmd.Stderr = w, &h.stderr
	// etcdctl takes any flag from an ETCDCTL_* variable too, and exits
	// when one is also given as a flag, as --endpoints is here.
	h.cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "ETCDCTL_") })
	h.cmd.SysProcAttr = testenv.SysProcAttr()
	err = h.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	go func() {
		_ = h.cmd.Wait() // ProcessState keeps the status
		close(h.exited)
	}()
	tb.Cleanup(h.kill)

	printed := make(chan []string, 1)
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		var kv []string
		for len(kv) < 2 && sc.Scan() {
			kv = append(kv, sc.Text())
		}
		printed <- kv
		// Read on to the end, so that etcdctl never writes to a closed
		// pipe: Go programs die of SIGPIPE on stdout.
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case kv := <-printed:
		if len(kv) < 2 {
			<-h.exited
			return nil, fmt.Errorf("%s: %v: %s", h.cmd, h.cmd.ProcessState, bytes.TrimSpace(h.stderr.Bytes()))
		}
		h.key, h.value = kv[0], kv[1]
		return h, nil
	case <-ctx.Done():
		// SIGINT first: a killed waiter's key would stay queued, and
		// hold up every waiter behind it, until its lease lapsed.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
		defer cancel()
		_ = h.Release(sctx)
		return nil, ctx.Err()
	}
}
