package locktest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pausedEnv marks the process PausedHolder starts as the holder.
const pausedEnv = "TURNSTILE_PAUSED_HOLDER"

// PausedHolder checks that a holder whose process was stopped for pause,
// longer than its session can outlive silence, finds its hold lost the
// moment it runs again, before any other goroutine of its process has:
// a process woken from a pause must not read its old token as a valid
// one while the goroutine that would notice the silence waits its turn.
//
// It runs the test binary again, as the holder, with one processor. There
// the test calls PausedHolder again, which calls lock to take a lock and
// then spins without yielding, so that the first code to run after the
// pause is its own call of token.
func PausedHolder(t *testing.T, pause time.Duration, lock func(ctx context.Context) (token func() int64)) {
	if os.Getenv(pausedEnv) != "" {
		token := lock(context.Background())
		fmt.Printf("held %d\n", token())
		for last := time.Now(); ; {
			now := time.Now()
			if now.Sub(last) > pause/2 {
				fmt.Printf("resumed %d\n", token())
				return
			}
			last = now
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), pausedEnv+"=1", "GOMAXPROCS=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	done := make(chan struct{})
	exited := make(chan struct{})
	t.Cleanup(func() {
		// The holder ends on its own once it has printed, stopping the
		// server its tests started; the kill is for a holder stuck.
		close(done)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	go func() {
		defer close(exited)
		defer func() { cmd.Wait() }()
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-done: // read on, so that the holder never blocks writing
			}
		}
	}()
	next := func(prefix string) int64 {
		t.Helper()
		timeout := time.After(time.Minute)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("the holder ended before printing %q", prefix)
				}
				if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
					n, err := strconv.ParseInt(rest, 10, 64)
					if err != nil {
						t.Fatal(err)
					}
					return n
				}
				t.Log("holder:", line)
			case <-timeout:
				t.Fatalf("the holder printed no %q", prefix)
			}
		}
	}
	if held := next("held"); held == 0 {
		t.Fatal("the holder held with token 0")
	}
	time.Sleep(100 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pause)
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if token := next("resumed"); token != 0 {
		t.Errorf("woken from a %v pause, the holder's Token() is %d, not 0", pause, token)
	}
}
