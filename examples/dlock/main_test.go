package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/testing/embedetcd"
	"github.com/turnstile-go/turnstile/internal/testing/syncbuf"
)

var endpoint string

func TestMain(m *testing.M) {
	addr, stop, err := embedetcd.StartTemp()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	endpoint = addr
	code := m.Run()
	stop()
	os.Exit(code)
}

// dlock runs the example with args after -etcd and a fresh name.
func dlock(t *testing.T, name string, args ...string) (string, error) {
	var out syncbuf.Buffer
	err := run(context.Background(), &out, append([]string{"-etcd", endpoint, "-name", name, "-ttl", "2s"}, args...))
	return out.String(), err
}

var n int

func name() string { n++; return fmt.Sprintf("/locks/dlock-test-%d-%d", os.Getpid(), n) }

// The command runs holding the lock, with the hold in its environment.
func TestRunsHolding(t *testing.T) {
	out, err := dlock(t, name(), "--", "sh", "-c", `echo "child: $TURNSTILE_NAME $TURNSTILE_TOKEN $TURNSTILE_SEQUENCER"`)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	m := regexp.MustCompile(`dlock: holding (\S+) \(token (\d+)\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no hold printed:\n%s", out)
	}
	child := regexp.MustCompile(`child: (\S+) (\d+) (\S+)`).FindStringSubmatch(out)
	if child == nil || child[1] != m[1] || child[2] != m[2] || !strings.HasPrefix(child[3], "exclusive:"+m[2]+":"+m[1]+"/") {
		t.Fatalf("the command's environment does not match the hold:\n%s", out)
	}
	if _, err := turnstile.ParseSequencer(child[3]); err != nil {
		t.Error(err)
	}
	if !strings.Contains(out, "dlock: released") {
		t.Errorf("not released:\n%s", out)
	}
}

// Runs on one name take turns: each command ends before the next starts,
// with a larger token.
func TestTakeTurns(t *testing.T) {
	lock := name()
	log := filepath.Join(t.TempDir(), "log")
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := dlock(t, lock, "--", "sh", "-c", `echo "start $TURNSTILE_TOKEN" >> `+log+`; sleep 0.2; echo "end $TURNSTILE_TOKEN" >> `+log)
			if err != nil {
				t.Errorf("%v\n%s", err, out)
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(strings.ReplaceAll(string(b), "\n", " "))
	if len(lines) != 12 {
		t.Fatalf("log:\n%s", b)
	}
	last := int64(0)
	for i := 0; i < len(lines); i += 4 {
		token, _ := strconv.ParseInt(lines[i+1], 10, 64)
		if lines[i] != "start" || lines[i+2] != "end" || lines[i+1] != lines[i+3] || token <= last {
			t.Fatalf("commands overlapped or went back in token:\n%s", b)
		}
		last = token
	}
}

// With -try, a run that finds the lock held gives up at once.
func TestTry(t *testing.T) {
	lock := name()
	ready := filepath.Join(t.TempDir(), "ready")
	done := make(chan error, 1)
	go func() {
		out, err := dlock(t, lock, "--", "sh", "-c", "touch "+ready+"; sleep 1")
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, out)
		}
		done <- err
	}()
	waitFile(t, ready)
	if out, err := dlock(t, lock, "-try", "--", "true"); !errors.Is(err, errSkipped) {
		t.Errorf("-try while held: %v, want errSkipped\n%s", err, out)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A hold lost while the command runs stops the command, and dlock fails.
func TestLost(t *testing.T) {
	lock := name()
	ready := filepath.Join(t.TempDir(), "ready")
	done := make(chan error, 1)
	var out string
	go func() {
		var err error
		out, err = dlock(t, lock, "--", "sh", "-c", "touch "+ready+"; exec sleep 30")
		done <- err
	}()
	waitFile(t, ready)
	deleteHold(t, lock)
	select {
	case err := <-done:
		if !errors.Is(err, turnstile.ErrLost) || !strings.Contains(out, "stopping the command") {
			t.Fatalf("dlock after its hold was deleted: %v\n%s", err, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the command still runs 10s after its hold was deleted")
	}
}

// dlock exits with its command's status; leadership works as a lock does.
func TestExitStatusAndLeader(t *testing.T) {
	out, err := dlock(t, name(), "-leader", "host-a", "--", "sh", "-c", "exit 3")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(out, "dlock: holding") {
		t.Fatalf("run: %v, want exit status 3\n%s", err, out)
	}
}

func TestBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-etcd", endpoint, "-name", "/locks/x"},              // no command
		{"-etcd", endpoint, "-name", "locks/x", "--", "true"}, // bad name
		{"-name", "/locks/x", "--", "true"},                   // no servers (unless set in the environment)
		{"-etcd", endpoint, "-name", "/x", "-try", "-leader", "a", "--", "true"},
		{"-etcd", endpoint, "-name", "/x", "-permits", "2", "-leader", "a", "--", "true"},
		{"-etcd", endpoint, "-name", "/x", "-permits", "-1", "--", "true"},
		{"-etcd", endpoint, "-name", "/x", "-ls", "--", "true"},
		{"-etcd", endpoint, "-name", "/x", "-id", "two\nlines", "--", "true"},
	} {
		if args[0] == "-name" && (os.Getenv("ETCD_ENDPOINTS") != "" || os.Getenv("ZK_SERVERS") != "") {
			continue
		}
		if err := run(context.Background(), &syncbuf.Buffer{}, args); err == nil {
			t.Errorf("run %q: no error", args)
		}
	}
}

// deleteHold deletes every key of lock, as an operator would.
func deleteHold(t *testing.T, lock string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Delete(context.Background(), lock+"/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
	}
}

// binary builds dlock, as a user runs it.
func binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dlock")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Five runs of the built binary under two permits: never more than two
// inside, each run's command sees how many are, and all five run.
func TestPermitsBinary(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	lock := name()
	// Each command marks itself inside, counts the marks, and stays a
	// while so that the others queue.
	script := `touch "$D/in.$$"; echo "inside $(ls "$D" | grep -c '^in\.')"; sleep 0.3; rm "$D/in.$$"`
	var wg sync.WaitGroup
	outs := make([][]byte, 5)
	errs := make([]error, 5)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(bin, "-etcd", endpoint, "-name", lock, "-permits", "2", "-id", fmt.Sprintf("run-%d", i), "--", "sh", "-c", script)
			cmd.Env = append(os.Environ(), "D="+dir)
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	for i, out := range outs {
		if errs[i] != nil {
			t.Fatalf("run %d: %v\n%s", i, errs[i], out)
		}
		m := regexp.MustCompile(`inside (\d+)`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("run %d ran nothing:\n%s", i, out)
		}
		if n, _ := strconv.Atoi(m[1]); n < 1 || n > 2 {
			t.Errorf("run %d: %d inside, with 2 permits:\n%s", i, n, out)
		}
	}
}

// The built binary's -ls prints the queue: the holder first, then the
// waiter, each with its identity, token and client.
func TestListBinary(t *testing.T) {
	bin := binary(t)
	lock := name()
	dir := t.TempDir()
	holding := filepath.Join(dir, "holding")
	holder := exec.Command(bin, "-etcd", endpoint, "-name", lock, "-id", "the-holder", "--", "sh", "-c", `touch "$0"; sleep 30`, holding)
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	waitFile(t, holding)
	waiter := exec.Command(bin, "-etcd", endpoint, "-name", lock, "-id", "the-waiter", "--", "true")
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waiter.Process.Kill(); waiter.Wait() })
	var out []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if out, err = exec.Command(bin, "-etcd", endpoint, "-name", lock, "-ls").CombinedOutput(); err != nil {
			t.Fatalf("dlock -ls: %v\n%s", err, out)
		}
		if strings.Count(string(out), "\n") == 3 || time.Now().After(deadline) {
			break
		}
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	row := regexp.MustCompile(`^(holds|waits)\s+exclusive\s+(\d+)\s+\?\s+turnstile\s+"([^"]*)"$`)
	want := []struct{ state, id string }{{"holds", "the-holder"}, {"waits", "the-waiter"}}
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "STATE") {
		t.Fatalf("dlock -ls printed:\n%s", out)
	}
	var last int64
	for i, w := range want {
		m := row.FindStringSubmatch(lines[i+1])
		if m == nil || m[1] != w.state || m[3] != w.id {
			t.Fatalf("row %d: %q, want %s %s\n%s", i, lines[i+1], w.state, w.id, out)
		}
		token, _ := strconv.ParseInt(m[2], 10, 64)
		if token <= last {
			t.Errorf("row %d: token %d after %d", i, token, last)
		}
		last = token
	}
}

// When its hold is lost, dlock stops the whole command, not only the
// process it started: a shell's background loop stops writing too.
func TestLostStopsEveryProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("dlock stops a command's whole process group on Linux only")
	}
	bin := binary(t)
	lock := name()
	ticks := filepath.Join(t.TempDir(), "ticks")
	// The loop ends by itself after 20 s, should it outlive the test.
	script := `sh -c 'for i in $(seq 200); do date +%s%N > "$0"; sleep 0.1; done' "$0" & wait`
	cmd := exec.Command(bin, "-etcd", endpoint, "-name", lock, "-ttl", "2s", "--", "sh", "-c", script, ticks)
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFile(t, ticks)
	deleteHold(t, lock)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "stopping the command"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dlock did not stop the command after its hold was deleted\n%s", out.String())
		}
	}
	time.Sleep(500 * time.Millisecond)
	before, _ := os.ReadFile(ticks)
	time.Sleep(500 * time.Millisecond)
	if after, _ := os.ReadFile(ticks); string(after) != string(before) {
		t.Fatalf("the command's background loop still runs after dlock stopped it\n%s", out.String())
	}
	var exit *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("dlock after its hold was deleted: %v, want exit status 1\n%s", err, out.String())
	}
}

// A command ended by a signal makes dlock exit as a shell reports it:
// 128 plus the signal's number.
func TestExitStatusOfSignal(t *testing.T) {
	bin := binary(t)
	out, err := exec.Command(bin, "-etcd", endpoint, "-name", name(), "--", "sh", "-c", "kill -KILL $$").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 128+9 {
		t.Fatalf("dlock: %v, want exit status 137\n%s", err, out)
	}
}
