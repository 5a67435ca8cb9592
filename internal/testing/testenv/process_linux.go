package testenv

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"time"
)

// SysProcAttr makes the kernel kill a server when the test process dies
// without running its cleanups, as when `go test -timeout` panics, so
// that no orphan keeps its ports and directory.
//
// The signal is tied to the thread that started the server, not to the
// process; the Go runtime only ends a thread when a goroutine exits while
// locked to it, which nothing in a test that starts servers should do.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// waitStopped returns once the kernel shows pid stopped, so that a
// paused server is frozen by the time Pause returns: SIGSTOP is
// delivered asynchronously.
func waitStopped(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return err
		}
		// The state follows the command name, which is in parentheses
		// and may itself contain them.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
			if s := stat[i+2]; s == 'T' || s == 't' {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d not stopped after %v", pid, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}
