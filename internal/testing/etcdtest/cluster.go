package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/ports"
	"github.com/turnstile-go/turnstile/internal/testing/proxy"
	"github.com/turnstile-go/turnstile/internal/testing/testenv"
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

// startTimeout bounds how long a cluster may take to become healthy.
// Starts take well under a second; the margin is for a loaded machine
// running tests under -race.
const startTimeout = 30 * time.Second

// Cluster is a cluster of etcd members, each a separate OS process, so
// that a test can kill, freeze and restart one.
type Cluster struct {
	members []*Member
	// status asks single members for their raft status; each call dials
	// the member it asks, whatever the client's endpoints.
	status *clientv3.Client
	peers  *peerLinks // nil without PeerProxies
}

// StartCluster starts n members and returns once every one of them
// serves linearizable reads. The test's cleanup kills them, whether the
// test passed, failed or panicked, and on failure logs the tail of each
// member's log.
//
// The binary is built from the tool module's requirement on etcd's
// server module (see toolModule) the first time any test needs it, which
// takes a minute or two, and cached per user for later runs. Without a go command, or if the
// build fails, the test is skipped — or fails, in CI.
func StartCluster(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("StartCluster: %d members", n)
	}
	var cfg clusterConfig
	for _, o := range opts {
		o(&cfg)
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
		c, err = startCluster(bin, filepath.Join(dir, strconv.Itoa(attempt)), token, n, cfg)
		if err == nil {
			tb.Cleanup(func() { c.stop(tb) })
			return c
		}
	}
	tb.Fatalf("starting a cluster of %d etcd members: %v", n, err)
	return nil
}

func startCluster(bin, dir, token string, n int, cfg clusterConfig) (*Cluster, error) {
	ports, err := ports.Free(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	if cfg.peerProxies && n > 1 {
		if c.peers, err = listenPeers(n); err != nil {
			return nil, err
		}
	}
	var initial []string
	for i := range n {
		m := &Member{
			name:     fmt.Sprintf("m%d", i),
			dir:      filepath.Join(dir, fmt.Sprintf("m%d", i)),
			endpoint: fmt.Sprintf("127.0.0.1:%d", ports[2*i]),
			peerURL:  fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
		}
		m.healthURL = "http://" + m.endpoint
		m.advertised = m.peerURL
		if c.peers != nil {
			m.advertised = c.peers.url(i)
		}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.advertised)
	}
	for _, m := range c.members {
		args := []string{
			"--name", m.name,
			"--data-dir", filepath.Join(m.dir, "data"),
			"--listen-client-urls", "http://" + m.endpoint,
			"--advertise-client-urls", "http://" + m.endpoint,
			"--listen-peer-urls", m.peerURL,
			"--initial-advertise-peer-urls", m.advertised,
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
		m.proc = &testenv.Process{
			Name: "member " + m.name,
			Path: bin,
			Args: args,
			Dir:  m.dir,
			Log:  filepath.Join(m.dir, "etcd.log"),
		}
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			c.killAll()
			return nil, err
		}
	}
	if c.peers != nil {
		var targets []string
		var procs []*testenv.Process
		for _, m := range c.members {
			targets = append(targets, strings.TrimPrefix(m.peerURL, "http://"))
			procs = append(procs, m.proc)
		}
		if err := c.peers.start(targets, procs); err != nil {
			c.killAll()
			return nil, err
		}
		for i, m := range c.members {
			m.links = c.peers.of(i)
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
		if err = m.proc.Start(); err != nil {
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

// killAll kills every member and closes the proxies between them.
func (c *Cluster) killAll() {
	for _, m := range c.members {
		_ = m.Kill()
	}
	if c.peers != nil {
		c.peers.close()
	}
}

func (c *Cluster) stop(tb testing.TB) {
	if c.status != nil {
		_ = c.status.Close()
	}
	c.killAll()
	if tb.Failed() {
		for _, m := range c.members {
			tb.Logf("last lines of member %s's log (%s):\n%s", m.name, m.proc.Log, testenv.LogTail(m.proc.Log, 30))
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
		if m.proc.Live() {
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
	endpoint string
	peerURL  string
	// advertised is the peer URL the others call the member at: peerURL,
	// or the proxies' with PeerProxies.
	advertised string
	links      proxy.Group // with PeerProxies, to and from every other member
	// healthURL is where the member answers /health: its client URL, or
	// a plain metrics listener when clients must come over TLS.
	healthURL string
	proc      *testenv.Process
}

// Endpoint is the member's client address, host:port, which a client, a
// proxy or Metric takes.
func (m *Member) Endpoint() string { return m.endpoint }

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
		return get(ctx, m.healthURL+"/health")
	})
}

// poll calls check until it succeeds, the member's process crashes, or
// ctx ends.
func (m *Member) poll(ctx context.Context, check func(context.Context) error) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, statusTimeout)
		last := check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		if err := m.proc.Crashed(); err != nil {
			return fmt.Errorf("%w; its log ends:\n%s", err, testenv.LogTail(m.proc.Log, 20))
		}
		select {
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
func (m *Member) Kill() error { return m.proc.Kill() }

// Pause freezes the member with SIGSTOP: its connections stay open but
// nothing on them is answered, as with a machine that hangs or a process
// stuck in a long GC pause. It returns once the process is stopped.
func (m *Member) Pause() error { return m.proc.Pause() }

// Resume lets a paused member run again with SIGCONT.
func (m *Member) Resume() error { return m.proc.Resume() }

// Isolate partitions the member from the other members until Rejoin, as
// a network partition would, while its clients still reach it: a leader
// keeps their streams until it finds it has lost its quorum, and a
// follower answers what it can answer alone. The cluster must have been
// started with PeerProxies.
func (m *Member) Isolate() error {
	if len(m.links) == 0 {
		return fmt.Errorf("isolating member %s: the cluster has no peer proxies", m.name)
	}
	m.links.Partition()
	return nil
}

// Rejoin ends the member's isolation: what was held back on its links is
// delivered, and raft brings the member up to date.
func (m *Member) Rejoin() error {
	if len(m.links) == 0 {
		return fmt.Errorf("rejoining member %s: the cluster has no peer proxies", m.name)
	}
	m.links.Heal()
	return nil
}

// Restart kills the member if it runs, starts it again on the same ports
// and data directory, and returns once it is healthy, that is back in the
// cluster with a leader.
func (m *Member) Restart(ctx context.Context) error {
	if err := m.Kill(); err != nil {
		return err
	}
	if err := m.proc.Start(); err != nil {
		return err
	}
	return m.waitHealthy(ctx)
}
