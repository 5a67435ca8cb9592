// Package foreign lets tests contend with lock clients other than
// turnstile's own on a ZooKeeper server: Apache Curator (Java) and kazoo
// (Python). A lock or election is only compatible with another client's
// if each sees the other's nodes and agrees who is first, which no test
// of one client alone can show.
//
// Each Client is one recipe in its own process, a small driver program
// embedded in this package, so that it keeps its own session and can be
// killed like a real process. The test drives it with a line protocol:
// one command a line on the driver's stdin, one reply a line on its
// stdout; stderr is the driver's log, shown when a test fails.
//
// The driver is started as
//
//	<driver> <connect string> <recipe> <path> <id> [patterns]
//
// and answers "ready" once its session is established, so that start-up
// time is never charged to a command. Then:
//
//	acquire       held <node>    blocks until it holds the lock or leads;
//	                             <node> is its znode's name, or "-"
//	release       released       releases or resigns; its node is gone
//	leader        leader <id>    the leader as the client's API names it,
//	                             empty when there is none
//	participants  participants <id>...
//	                             the contenders' ids (their nodes' data)
//	                             in the client's order
//	lost          lost <ms>...   when the client learned that its session
//	                             was lost, in milliseconds since the
//	                             epoch, since the last lost (Curator only)
//	quit                         exits; so does end of input
//	(any failure) error <message>
//
// Ids are the data each client writes into its node; they must not hold
// spaces, so that participants can be split.
package foreign

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/syncbuf"
	"github.com/turnstile-go/turnstile/internal/testing/testenv"
)

const (
	// readyTimeout bounds start-up: a JVM, its classes and a session,
	// about a second; the margin is for a loaded CI machine.
	readyTimeout = 30 * time.Second
	// quitTimeout is how long a driver has to close its session cleanly
	// before it is killed.
	quitTimeout = 5 * time.Second
	// logLines is how much of a driver's log an error or a failed test
	// shows.
	logLines = 30
)

// Client is one foreign lock client, in its own process. It answers one
// command at a time: while Acquire blocks, ask another Client, for
// instance one that never acquires, who leads.
type Client struct {
	name   string // "curator mutex a", for messages
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr syncbuf.Buffer
	lines  chan string   // replies, in order
	exited chan struct{} // closed once the process has been waited for
	done   chan struct{} // closed when no more replies will be read
	once   sync.Once     // closes done

	mu     sync.Mutex // held for a whole command, so replies pair with commands
	broken error      // why no more commands can be sent
}

// start runs a driver and waits until it is ready. The process is
// stopped when the test ends.
func start(tb testing.TB, name string, argv []string) *Client {
	tb.Helper()
	c := &Client{
		name:   name,
		lines:  make(chan string),
		exited: make(chan struct{}),
		done:   make(chan struct{}),
	}
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Stderr = &c.stderr
	c.cmd.SysProcAttr = testenv.SysProcAttr()
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	if err := c.cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", name, err)
	}
	go c.read(stdout)
	tb.Cleanup(func() { c.stop(tb) })

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.reply(ctx, "start", "ready"); errors.Is(err, context.DeadlineExceeded) {
		tb.Fatalf("%s: not ready within %v\n%s", name, readyTimeout, c.log())
	} else if err != nil {
		tb.Fatal(err)
	}
	return c
}

// read hands the driver's stdout to reply line by line, then reaps the
// process: exec requires every read from the pipe to be done first.
func (c *Client) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		select {
		case c.lines <- sc.Text():
		case <-c.done:
		}
	}
	_ = c.cmd.Wait() // ProcessState keeps the status
	close(c.exited)
}

// Acquire blocks until the client holds the lock or leads, and returns
// its node's name, or "-" when the client does not tell it.
func (c *Client) Acquire(ctx context.Context) (node string, err error) {
	return c.do(ctx, "acquire", "held")
}

// Release releases the lock or resigns, and returns once the client's
// node is deleted, so that a test may expect the next contender to
// proceed.
func (c *Client) Release(ctx context.Context) error {
	_, err := c.do(ctx, "release", "released")
	return err
}

// Leader returns the id of the leader as the client reads it, or "" when
// there is none. kazoo has no such query: its answer is the first of its
// lock's contenders, which any kazoo recipe can give. Curator's locks
// have none, and fail.
func (c *Client) Leader(ctx context.Context) (string, error) {
	return c.do(ctx, "leader", "leader")
}

// Participants returns the ids of the contenders, in the client's order,
// as the client reads them: Curator's latch and selector through their
// getParticipants, its locks as their nodes' data, kazoo's recipes
// through contenders().
func (c *Client) Participants(ctx context.Context) ([]string, error) {
	ids, err := c.do(ctx, "participants", "participants")
	return strings.Fields(ids), err
}

// Lost returns when the client learned that its session was lost,
// each time since the last call: Curator's connection state LOST, which
// comes when the session expired or, disconnected, the client presumes
// so after a session timeout. The client's locks do not tell it.
func (c *Client) Lost(ctx context.Context) ([]time.Time, error) {
	reply, err := c.do(ctx, "lost", "lost")
	if err != nil {
		return nil, err
	}
	var at []time.Time
	for _, f := range strings.Fields(reply) {
		ms, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: lost: %w", c.name, err)
		}
		at = append(at, time.UnixMilli(ms))
	}
	return at, nil
}

// Broken returns why the client can take no more commands, as when its
// driver exited, or nil.
func (c *Client) Broken() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// do sends one command and waits for its reply.
func (c *Client) do(ctx context.Context, command, want string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return "", c.broken
	}
	if _, err := io.WriteString(c.stdin, command+"\n"); err != nil {
		return "", fmt.Errorf("%s: %s: %w\n%s", c.name, command, err, c.log())
	}
	return c.reply(ctx, command, want)
}

// reply waits for the answer to command, which must start with want.
// The caller holds c.mu. When ctx ends first the driver is killed: it
// may still act on the command, and a late reply would be taken for the
// next command's.
func (c *Client) reply(ctx context.Context, command, want string) (string, error) {
	select {
	case line := <-c.lines:
		word, rest, _ := strings.Cut(line, " ")
		switch word {
		case want:
			return rest, nil
		case "error":
			return "", fmt.Errorf("%s: %s: %s", c.name, command, rest)
		}
		c.broken = fmt.Errorf("%s: %s: unexpected reply %q", c.name, command, line)
		return "", c.broken
	case <-c.exited:
		c.broken = fmt.Errorf("%s: %s: driver exited: %v\n%s", c.name, command, c.cmd.ProcessState, c.log())
		return "", c.broken
	case <-ctx.Done():
		c.kill()
		c.broken = fmt.Errorf("%s was killed when %s was abandoned: %w", c.name, command, ctx.Err())
		return "", ctx.Err()
	}
}

// kill ends the process at once and waits until it is reaped.
func (c *Client) kill() {
	c.once.Do(func() { close(c.done) })
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// stop asks an idle driver to quit, which closes its session and so
// deletes its nodes at once, sparing a server shared by later tests the
// wait for the session to expire. A driver still busy with a command, as
// one left waiting in Acquire, cannot read quit and is killed.
func (c *Client) stop(tb testing.TB) {
	if tb.Failed() {
		tb.Logf("%s log:\n%s", c.name, c.log())
	}
	if !c.mu.TryLock() {
		c.kill()
		return
	}
	defer c.mu.Unlock()
	_, _ = io.WriteString(c.stdin, "quit\n")
	_ = c.stdin.Close()
	select {
	case <-c.exited:
		if c.broken == nil && !c.cmd.ProcessState.Success() {
			tb.Errorf("%s exited: %v\n%s", c.name, c.cmd.ProcessState, c.log())
		}
	case <-time.After(quitTimeout):
		tb.Logf("%s did not quit within %v; killing it", c.name, quitTimeout)
	}
	c.kill()
}

// log returns the end of the driver's stderr, without Java's stack
// frames, which would crowd out the messages they explain.
func (c *Client) log() string {
	var kept []string
	for _, l := range strings.Split(strings.TrimRight(c.stderr.String(), "\n"), "\n") {
		if !strings.HasPrefix(l, "\tat ") && !strings.HasPrefix(l, "\t... ") {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept[max(0, len(kept)-logLines):], "\n")
}
