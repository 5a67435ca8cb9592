package locktest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/recipe"
	"github.com/turnstile-go/turnstile/internal/testing/testenv"
)

// pausedEnv marks the process PausedHolder starts as the holder.
const pausedEnv = "TURNSTILE_PAUSED_HOLDER"

// PausedHolder checks that a holder whose process was stopped for pause,
// longer than its session can outlive silence, finds its hold lost the
// moment it runs again, before the session's own goroutines have run: a
// process woken from a pause must not take its old token for a valid one
// while the goroutine that would notice the silence waits its turn.
//
// It runs the test binary again, as the holder, with one processor. There
// the test calls PausedHolder again, which calls lock to take a lock and
// then spins, so that the first code to run after the pause is most
// likely its own call of token (the runtime may preempt it first, and
// run the session's goroutines). A run in which the session had ended
// before that call shows less, and is made again, up to three times.
// done is closed when the holder's session ends.
func PausedHolder(t *testing.T, pause time.Duration, lock func(ctx context.Context) (token func() int64, done <-chan struct{})) {
	if os.Getenv(pausedEnv) != "" {
		token, done := lock(context.Background())
		fmt.Printf("held %d\n", token())
		for last := time.Now(); ; {
			now := time.Now()
			if now.Sub(last) > pause/2 {
				ended := recipe.Closed(done)
				fmt.Printf("resumed %d %t\n", token(), ended)
				return
			}
			last = now
		}
	}
	for attempt := 1; ; attempt++ {
		token, ended := pausedOnce(t, pause)
		if token != 0 {
			t.Fatalf("woken from a %v pause, the holder's Token() is %d, not 0", pause, token)
		}
		if !ended {
			return
		}
		if attempt == 3 {
			t.Logf("in %d runs the session's own goroutine noticed the pause first", attempt)
			return
		}
		t.Logf("run %d: the session's own goroutine noticed the pause first; again", attempt)
	}
}

// pausedOnce runs the holder, stops it for pause and returns what it
// printed on waking: its token, and whether its session had ended first.
func pausedOnce(t *testing.T, pause time.Duration) (token int64, ended bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), pausedEnv+"=1", "GOMAXPROCS=1")
	cmd.SysProcAttr = testenv.SysProcAttr() // no stopped holder outlives the test
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	quit := make(chan struct{})
	exited := make(chan struct{})
	woken := false
	defer func() {
		// A holder that printed ends on its own, stopping the server its
		// tests started; one that did not still spins, or is stopped.
		close(quit)
		if !woken {
			cmd.Process.Kill()
		}
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	go func() {
		defer close(exited)
		defer func() { cmd.Wait() }()
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-quit: // read on, so that the holder never blocks writing
			}
		}
	}()
	next := func(prefix string, v ...any) {
		t.Helper()
		timeout := time.After(time.Minute)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("the holder ended before printing %q", prefix)
				}
				if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
					if _, err := fmt.Sscan(rest, v...); err != nil {
						t.Fatalf("holder: %q: %v", line, err)
					}
					return
				}
				t.Log("holder:", line)
			case <-timeout:
				t.Fatalf("the holder printed no %q", prefix)
			}
		}
	}
	var held int64
	if next("held", &held); held == 0 {
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
	next("resumed", &token, &ended)
	woken = true
	return token, ended
}
