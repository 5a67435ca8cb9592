package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a server run as a child process, so that a test can do to
// it what a real failure does: kill it, freeze it, start it again.
// Configure it with the exported fields, which must not change once it
// has started; it can be started again after Kill.
type Process struct {
	// Name identifies the server in errors, as "node 2" or "member m0".
	Name string
	// Path and Args are the program and its arguments, the same for
	// every start, so that a restart comes back as the same server.
	Path string
	Args []string
	// Dir is the working directory, where stray files such as a JVM's
	// crash dump land next to the server's other files.
	Dir string
	// Log receives the process's output, appended on each start so that
	// a restart keeps the history a failing test shows.
	Log string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
	paused bool
	killed bool // by Kill, so an exit is no crash
}

// Start returns once the process runs, not once it serves: only its
// harness knows how to ask it.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running() == nil {
		return fmt.Errorf("starting %s: already running", p.Name)
	}
	log, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child holds its own copy
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Dir = p.Dir
	// An *os.File is handed to the child as is: no goroutine copies its
	// output, and none outlives the process.
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = SysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // cmd.ProcessState keeps the status
		close(exited)
	}()
	p.cmd, p.exited, p.paused, p.killed = cmd, exited, false, false
	return nil
}

// running returns nil while the process runs, and otherwise says why it
// does not. The caller holds p.mu.
func (p *Process) running() error {
	if p.cmd == nil {
		return errors.New("not started")
	}
	select {
	case <-p.exited:
		return fmt.Errorf("exited: %v", p.cmd.ProcessState)
	default:
		return nil
	}
}

// Pid returns the process's id while it runs, and 0 otherwise.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running() != nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Live reports whether the process runs and is not paused: whether it
// can answer at all.
func (p *Process) Live() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running() == nil && !p.paused
}

// Crashed returns an error when the process exited without Kill, as a
// server does that cannot bind its port, so that a wait for it to serve
// fails at once instead of at its deadline.
func (p *Process) Crashed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.killed {
		return nil
	}
	if err := p.running(); err != nil {
		return fmt.Errorf("%s %w", p.Name, err)
	}
	return nil
}

// Kill sends SIGKILL, the crash a server cannot react to, paused or not,
// and returns once the process has exited, so that a restart finds its
// ports free. A process that is not running is left as it is.
func (p *Process) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killed = true
	if p.running() != nil {
		return nil
	}
	if p.paused {
		// SIGKILL ends a stopped process too; continuing it first
		// keeps Kill from depending on that.
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing %s: %w", p.Name, err)
	}
	<-p.exited
	p.paused = false
	return nil
}

// Pause freezes the process with SIGSTOP: its sockets stay open and the
// kernel still accepts connections, but nothing answers, as with a hung
// host or a long GC pause. SIGSTOP is delivered asynchronously, so Pause
// waits, where the system shows it, until the process is stopped.
func (p *Process) Pause() error {
	pid, err := p.signal(syscall.SIGSTOP, "pausing")
	if err != nil {
		return err
	}
	return waitStopped(pid, 10*time.Second)
}

// Resume lets a paused process run again with SIGCONT.
func (p *Process) Resume() error {
	_, err := p.signal(syscall.SIGCONT, "resuming")
	return err
}

// signal sends SIGSTOP or SIGCONT to the running process, notes whether
// it is paused now, and returns its pid.
func (p *Process) signal(sig syscall.Signal, doing string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.running()
	if err == nil {
		err = p.cmd.Process.Signal(sig)
	}
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", doing, p.Name, err)
	}
	p.paused = sig == syscall.SIGSTOP
	return p.cmd.Process.Pid, nil
}

// LogTail returns about the last n lines of the log at path, for a
// failing test to show; the directory holding it is gone once the test
// ends. Java stack frames are left out, as they would crowd out the
// messages that explain them.
func LogTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, "\tat ") })
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
