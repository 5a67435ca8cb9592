package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testenv"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Raft timing of cluster members, in milliseconds: half of etcd's
// defaults, which halves fail-over to 0.5–0.9 s here and has called no
// spurious election with the test process under -race and two CPU hogs
// on two cores. Shorter timeouts would leave a member starved of CPU too
// little slack before its followers give up on its heartbeats.
const (
	heartbeatMs = 50
	electionMs  = 500
)

// clusterSeq makes each cluster's token unique within the process; the
// pid makes it unique across processes.
var clusterSeq atomic.Int64

// Cluster is a cluster of etcd members, each a separate OS process, so
// that a test can kill, freeze and restart one.
type Cluster struct {
	members []*Member
	// status asks single members for their raft status; each call dials
	// the member it asks, whatever the client's endpoints.
	status *clientv3.Client
}

// StartCluster starts n members and returns once every one of them
// serves linearizable reads. The test's cleanup kills them, whether the
// test passed, failed or panicked, and on failure logs the tail of each
// member's log.
//
// The binary is built from this module's requirement on etcd's server
// module the first time any test needs it, which takes a minute or two,
// and cached per user for later runs. Without a go command, or if the
// build fails, the test is skipped — or fails, in CI.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("StartCluster: %d members", n)
	}
	bin := etcdBinary(tb)
	dir := tb.TempDir()
	token := fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), clusterSeq.Add(1))
	var err error
	// A port chosen free may be taken before a member binds it, and the
	// member then exits; a fresh set of ports on the next attempt cures
	// that.
	for attempt := range 3 {
		var c *Cluster
		c, err = startCluster(bin, filepath.Join(dir, strconv.Itoa(attempt)), token, n)
		if err == nil {
			tb.Cleanup(func() { c.stop(tb) })
			return c
		}
	}
	tb.Fatalf("starting a cluster of %d etcd members: %v", n, err)
	return nil
}

func startCluster(bin, dir, token string, n int) (*Cluster, error) {
	ports, err := testenv.FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	var initial []string
	for i := range n {
		m := &Member{
			name:     fmt.Sprintf("m%d", i),
			dir:      filepath.Join(dir, fmt.Sprintf("m%d", i)),
			bin:      bin,
			endpoint: fmt.Sprintf("127.0.0.1:%d", ports[2*i]),
			peerURL:  fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
		}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL)
	}
	for _, m := range c.members {
		m.args = []string{
			"--name", m.name,
			"--data-dir", filepath.Join(m.dir, "data"),
			"--listen-client-urls", "http://" + m.endpoint,
			"--advertise-client-urls", "http://" + m.endpoint,
			"--listen-peer-urls", m.peerURL,
			"--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			// A restarted member finds its data directory and ignores
			// these two; the token keeps members of different
			// clusters, which may reuse each other's ports, apart.
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--heartbeat-interval", strconv.Itoa(heartbeatMs),
			"--election-timeout", strconv.Itoa(electionMs),
			// A killed process loses nothing the kernel has been
			// given, and the data dies with the test anyway.
			"--unsafe-no-fsync",
			// Warnings are what explains a failure; the log is only
			// shown when the test fails.
			"--log-level", "warn",
		}
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	// A new member asks the others whether it was bootstrapped already,
	// and waits up to a second on each that has bound its peer port but
	// does not serve it yet: started together, three members took 1–2.5 s
	// to be healthy. Started one after another, each once the last
	// serves its peers, a member is answered at once or refused at once,
	// and all are healthy in a fraction of a second.
	for _, m := range c.members {
		if err = m.start(); err != nil {
			break
		}
		if err = m.waitPeerServing(ctx); err != nil {
			break
		}
	}
	if err == nil {
		err = c.waitHealthy(ctx)
	}
	if err == nil {
		c.status, err = clientv3.New(ClientConfig(c.Endpoints()...))
	}
	if err != nil {
		c.killAll()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) waitHealthy(ctx context.Context) error {
	errs := make(chan error, len(c.members))
	for _, m := range c.members {
		go func() { errs <- m.waitHealthy(ctx) }()
	}
	var all []error
	for range c.members {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

func (c *Cluster) killAll() {
	for _, m := range c.members {
		_ = m.Kill()
	}
}

func (c *Cluster) stop(tb testing.TB) {
	if c.status != nil {
		_ = c.status.Close()
	}
	// Linux kills a stopped process too; continuing it first keeps the
	// cleanup from depending on that.
	for _, m := range c.members {
		m.mu.Lock()
		if m.running() && m.paused {
			_ = m.proc.Signal(syscall.SIGCONT)
		}
		m.mu.Unlock()
	}
	c.killAll()
	if tb.Failed() {
		for _, m := range c.members {
			tb.Logf("last lines of member %s's log (%s):\n%s", m.name, m.logPath(), m.logTail(30))
		}
	}
}

// Endpoints is every member's client address, for a clientv3.Config.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.endpoint
	}
	return eps
}

// Member returns the i-th member, counted from 0.
func (c *Cluster) Member(i int) *Member { return c.members[i] }

// Client returns a client of the given endpoints, or of every member
// when none are given, closed when the test ends.
//
// A client of several members spreads its requests over all of them,
// and one sent to a paused member waits until its context expires, as
// the connection stays open. A test that pauses a member should talk to
// the others through a client of their endpoints only.
func (c *Cluster) Client(tb testing.TB, endpoints ...string) *clientv3.Client {
	tb.Helper()
	if len(endpoints) == 0 {
		endpoints = c.Endpoints()
	}
	return NewClient(tb, endpoints...)
}

// statusTimeout bounds one question to one member — its status, its
// health — so that a member that cannot answer fails the question and
// is asked again, instead of holding the caller to its whole deadline.
const statusTimeout = 2 * time.Second

// Leader returns the index of the leader, as the running members see it
// now: every member that is neither killed nor paused is asked, and they
// must all name the same leader, itself one of them. Otherwise, as while
// an election is under way or a resumed member has yet to learn of it,
// Leader returns an error; WaitLeader waits for agreement.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	type answer struct {
		i      int
		id     uint64
		leader uint64
		err    error
	}
	var live []int
	for i, m := range c.members {
		if m.live() {
			live = append(live, i)
		}
	}
	if len(live) == 0 {
		return -1, errors.New("no member is running")
	}
	answers := make(chan answer, len(live))
	for _, i := range live {
		go func() {
			ctx, cancel := context.WithTimeout(ctx, statusTimeout)
			defer cancel()
			resp, err := c.status.Status(ctx, c.members[i].endpoint)
			if err != nil {
				answers <- answer{i: i, err: fmt.Errorf("status of member %d: %w", i, err)}
				return
			}
			answers <- answer{i: i, id: resp.Header.MemberId, leader: resp.Leader}
		}()
	}
	var errs []error
	ids := map[uint64]int{}
	var leader uint64
	for range live {
		a := <-answers
		switch {
		case a.err != nil:
			errs = append(errs, a.err)
		case a.leader == 0:
			errs = append(errs, fmt.Errorf("member %d knows no leader", a.i))
		case leader != 0 && a.leader != leader:
			errs = append(errs, fmt.Errorf("members disagree on the leader: %x and %x", leader, a.leader))
		default:
			leader = a.leader
		}
		ids[a.id] = a.i
	}
	if len(errs) > 0 {
		return -1, errors.Join(errs...)
	}
	i, ok := ids[leader]
	if !ok {
		return -1, fmt.Errorf("leader %x is not a running member", leader)
	}
	return i, nil
}

// WaitLeader polls Leader until the running members agree on one, and
// returns its index, or the last error when ctx ends first.
func (c *Cluster) WaitLeader(ctx context.Context) (int, error) {
	for {
		i, err := c.Leader(ctx)
		if err == nil {
			return i, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("%w; last: %w", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Member is one etcd process of a Cluster.
type Member struct {
	name     string
	dir      string
	bin      string
	args     []string
	endpoint string
	peerURL  string

	mu     sync.Mutex
	proc   *os.Process
	exited chan struct{} // closed once proc has exited and been reaped
	paused bool
}

// Endpoint is the member's client address, host:port, which a client, a
// proxy or Metric takes.
func (m *Member) Endpoint() string { return m.endpoint }

func (m *Member) logPath() string { return filepath.Join(m.dir, "etcd.log") }

// start runs a new process of the member with the same ports, flags and
// data directory as any earlier one.
func (m *Member) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	log, err := os.OpenFile(m.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child holds its own copy
	cmd := exec.Command(m.bin, m.args...)
	// An *os.File is handed to the child as is: no goroutine copies its
	// output, and none outlives the process.
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting member %s: %w", m.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the log says why it exited
		close(exited)
	}()
	m.proc, m.exited, m.paused = cmd.Process, exited, false
	return nil
}

// running reports whether the member's process has been started and has
// not exited. The caller holds m.mu.
func (m *Member) running() bool {
	if m.exited == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// live reports whether the member runs and is not paused.
func (m *Member) live() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running() && !m.paused
}

// waitPeerServing waits until the member answers on its peer port, which
// it does once it has bootstrapped, before it has a quorum.
func (m *Member) waitPeerServing(ctx context.Context) error {
	return m.poll(ctx, func(ctx context.Context) error {
		return get(ctx, m.peerURL+"/version")
	})
}

// waitHealthy waits until the member's /health answers healthy, which
// etcd does only once the member has a leader and has served a
// linearizable read.
func (m *Member) waitHealthy(ctx context.Context) error {
	return m.poll(ctx, func(ctx context.Context) error {
		return get(ctx, "http://"+m.endpoint+"/health")
	})
}

// poll calls check until it succeeds, the member's process exits, or ctx
// ends.
func (m *Member) poll(ctx context.Context, check func(context.Context) error) error {
	m.mu.Lock()
	exited := m.exited
	m.mu.Unlock()
	for {
		cctx, cancel := context.WithTimeout(ctx, statusTimeout)
		last := check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("member %s exited; its log ends:\n%s", m.name, m.logTail(20))
		case <-ctx.Done():
			return fmt.Errorf("member %s: %w; last: %w", m.name, ctx.Err(), last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// get fails unless url answers 200 OK.
func get(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", url, resp.Status, body)
	}
	return nil
}

// Kill sends SIGKILL to the member, paused or not, and returns once the
// process has exited, so that a restart finds its ports free. A member
// that is not running is left as it is.
func (m *Member) Kill() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.running() {
		return nil
	}
	if err := m.proc.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing member %s: %w", m.name, err)
	}
	<-m.exited
	m.paused = false
	return nil
}

// Pause freezes the member with SIGSTOP: its connections stay open but
// nothing on them is answered, as with a machine that hangs or a process
// stuck in a long GC pause. It returns once the process is stopped.
func (m *Member) Pause() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.running() {
		return fmt.Errorf("pausing member %s: not running", m.name)
	}
	if err := m.proc.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pausing member %s: %w", m.name, err)
	}
	m.paused = true
	return waitStopped(m.proc.Pid, 10*time.Second)
}

// Resume lets a paused member run again with SIGCONT.
func (m *Member) Resume() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.running() {
		return fmt.Errorf("resuming member %s: not running", m.name)
	}
	if err := m.proc.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("resuming member %s: %w", m.name, err)
	}
	m.paused = false
	return nil
}

// Restart kills the member if it runs, starts it again on the same ports
// and data directory, and returns once it is healthy, that is back in the
// cluster with a leader.
func (m *Member) Restart(ctx context.Context) error {
	if err := m.Kill(); err != nil {
		return err
	}
	if err := m.start(); err != nil {
		return err
	}
	return m.waitHealthy(ctx)
}

// logTail returns about the last n lines of the member's log.
func (m *Member) logTail(n int) string {
	data, err := os.ReadFile(m.logPath())
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
