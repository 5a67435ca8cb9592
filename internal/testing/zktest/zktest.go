// Package zktest starts real Apache ZooKeeper servers for tests: a
// standalone server or an ensemble, each node a java process on free
// loopback ports with private directories, which a test can kill, pause,
// resume and restart to produce the failures the recipes must survive.
//
// A test connects through the cluster's Dialer so that it can later
// expire a session on purpose:
//
//	c := zktest.StartEnsemble(t, 3)
//	conn, _, err := zk.Connect(c.Servers(), 2*time.Second,
//		zk.WithDialer(c.Dialer()), zk.WithLogger(zktest.Logger(t)))
//	...
//	err = c.Expire(ctx, conn.SessionID())
package zktest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/ports"
	"github.com/turnstile-go/turnstile/internal/testing/proxy"
	"github.com/turnstile-go/turnstile/internal/testing/testenv"
)

// The Debian package's jar; its manifest names its dependencies, so the
// jar alone makes a classpath.
const debianJar = "/usr/share/java/zookeeper.jar"

// The jar logs through slf4j without a binding, which discards every
// message; these two jars, when installed, bind it to log4j so that each
// node writes a log a failing test can show.
var logJars = []string{"/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar"}

// jvmFlags keep the heap small and start-up short on a machine with few
// cores: the serial collector and the C1-only compiler spend less CPU
// before the server answers than the defaults do (measured: a quarter
// less time to a serving ensemble), and a short-lived server never
// profits from C2. No hsperfdata files are left in /tmp either.
var jvmFlags = []string{
	"-Xmx256m",
	"-XX:+UseSerialGC",
	"-XX:TieredStopAtLevel=1",
	"-XX:-UsePerfData",
	// Data in a temporary directory needs no fsync; skipping it keeps
	// writes fast when several packages test in parallel.
	"-Dzookeeper.forceSync=no",
}

const (
	// startTimeout bounds one attempt to bring a cluster up. Start-up
	// takes about a second; the margin is for a loaded CI machine.
	startTimeout = 30 * time.Second
	// startAttempts allows for a port taken by another process between
	// choosing it and the server binding it.
	startAttempts = 3
	// pollInterval is how often server state is sampled while waiting.
	pollInterval = 50 * time.Millisecond
	// probeTimeout bounds one four-letter word while polling, so that a
	// paused node, whose kernel still accepts connections, cannot stall
	// a wait.
	probeTimeout = time.Second
)

// initLimit is how many ticks a follower has to connect to its leader
// and catch up.
const initLimit = 10

// freePorts is a variable so that a test can hand out a port in use and
// see the start retried.
var freePorts = ports.Free

// Classpath returns the Java classpath of the installed ZooKeeper server,
// or an error saying what is missing. ZOOKEEPER_CLASSPATH overrides the
// Debian layout, e.g. for a tarball installation ("/opt/zk/lib/*").
func Classpath() (string, error) {
	if _, err := exec.LookPath("java"); err != nil {
		return "", fmt.Errorf("java not found: %w", err)
	}
	if cp := os.Getenv("ZOOKEEPER_CLASSPATH"); cp != "" {
		return cp, nil
	}
	if _, err := os.Stat(debianJar); err != nil {
		return "", fmt.Errorf("zookeeper jar not found (install the zookeeper package or set ZOOKEEPER_CLASSPATH): %w", err)
	}
	cp := []string{debianJar}
	for _, j := range logJars {
		if _, err := os.Stat(j); err != nil {
			return debianJar, nil
		}
	}
	return strings.Join(append(cp, logJars...), string(os.PathListSeparator)), nil
}

// Option changes how a cluster is configured.
type Option func(*config)

type config struct {
	tick        time.Duration
	peerProxies bool
	properties  []string // -Dkey=value
}

// Property sets the Java system property key (as -Dkey=value) on every
// node, for settings zoo.cfg does not take, such as the request
// throttler's.
func Property(key, value string) Option {
	return func(c *config) { c.properties = append(c.properties, "-D"+key+"="+value) }
}

// TickTime sets ZooKeeper's tickTime (default 200ms). The server clamps
// session timeouts to no less than two ticks, and election and sync
// limits are counted in ticks, so a short tick keeps both session expiry
// and fail-over fast.
func TickTime(d time.Duration) Option {
	return func(c *config) { c.tick = d }
}

// Cluster is a running standalone server or ensemble. Its processes are
// killed when the test that started it ends.
type Cluster struct {
	nodes    []*Node
	sessions sessions
	links    peerLinks // nil without PeerProxies
}

// Start starts a standalone server and waits until it serves. Without
// Java or ZooKeeper the test is skipped, or fails in CI; see
// testenv.Unavailable.
func Start(tb testing.TB, opts ...Option) *Cluster {
	tb.Helper()
	return start(tb, 1, opts)
}

// StartEnsemble starts an n-node ensemble and waits until every node
// serves and one of them leads. An ensemble of one is a standalone
// server. Missing Java or ZooKeeper is handled as by Start.
func StartEnsemble(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("zktest: ensemble of %d nodes", n)
	}
	return start(tb, n, opts)
}

func start(tb testing.TB, n int, opts []Option) *Cluster {
	tb.Helper()
	cp, err := Classpath()
	if err != nil {
		testenv.Unavailable(tb, "zookeeper unavailable: %v", err)
	}
	for attempt := 1; ; attempt++ {
		c, err := tryStart(tb.TempDir(), cp, n, configure(opts))
		if err == nil {
			// Registered after TempDir so that the processes are dead
			// before the testing package removes their directories.
			tb.Cleanup(func() { c.stop(tb) })
			return c
		}
		if attempt == startAttempts {
			tb.Fatalf("zktest: %v", err)
		}
		tb.Logf("zktest: start attempt %d failed, retrying on new ports: %v", attempt, err)
	}
}

// Standalone launches one server outside any test (Launch), in the
// form locktest.Shared takes.
func Standalone(dir string) (*Cluster, func(), error) {
	c, err := Launch(dir, 1)
	if err != nil {
		return nil, nil, err
	}
	return c, c.Stop, nil
}

// Unlaunched stops a test that needs the server Standalone could not
// start, as unavailable: a skip, or a failure in CI.
func Unlaunched(tb testing.TB, err error) {
	tb.Helper()
	testenv.Unavailable(tb, "zookeeper: %v", err)
}

// Launch starts an n-node cluster outside any test, so that a TestMain
// can share one server among a package's tests; its data lives under
// dir, and Stop ends it. Callers report a missing installation through
// testenv.Unavailable in each test that needs the server.
func Launch(dir string, n int, opts ...Option) (*Cluster, error) {
	cp, err := Classpath()
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		root, err := os.MkdirTemp(dir, "zk")
		if err != nil {
			return nil, err
		}
		c, err := tryStart(root, cp, n, configure(opts))
		if err == nil || attempt == startAttempts {
			return c, err
		}
	}
}

// Stop kills every process of a cluster started by Launch.
func (c *Cluster) Stop() { c.stop(nil) }

func configure(opts []Option) config {
	cfg := config{tick: 200 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// tryStart starts the nodes under root and waits until they serve; on
// failure it leaves no process behind.
func tryStart(root, classpath string, n int, cfg config) (*Cluster, error) {
	perNode := 1
	if n > 1 {
		perNode = 3 // client, quorum and election ports
	}
	ports, err := freePorts(n * perNode)
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	var quorum, election []int
	if n > 1 {
		for i := range n {
			quorum = append(quorum, ports[3*i+1])
			election = append(election, ports[3*i+2])
		}
		if cfg.peerProxies {
			if c.links, err = startPeerLinks(quorum, election, initLimit*cfg.tick); err != nil {
				return nil, err
			}
		}
	}
	for i := range n {
		node := &Node{
			id:         i + 1,
			dir:        filepath.Join(root, fmt.Sprintf("node%d", i+1)),
			clientPort: ports[perNode*i],
			peers:      c.links.of(i),
		}
		servers := ""
		if n > 1 {
			servers = serverLines(i, quorum, election, c.links)
		}
		if err := node.configure(cfg, servers, classpath); err != nil {
			c.stop(nil)
			return nil, err
		}
		c.nodes = append(c.nodes, node)
	}
	for _, node := range c.nodes {
		if err := node.proc.Start(); err != nil {
			c.stop(nil)
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := c.WaitServing(ctx); err != nil {
		c.stop(nil)
		return nil, err
	}
	return c, nil
}

// stop kills every process; when tb has failed it first shows the end of
// each node's log, the only trace left once the directories are removed.
func (c *Cluster) stop(tb testing.TB) {
	for _, n := range c.nodes {
		_ = n.Kill()
	}
	c.links.close()
	if tb != nil && tb.Failed() {
		for _, n := range c.nodes {
			tb.Logf("zktest: node %d (%s) log tail:\n%s", n.id, n.Addr(), n.logTail(20))
		}
	}
}

// Servers returns the client address of every node, for zk.Connect.
func (c *Cluster) Servers() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Node returns the i-th node, counting from 0.
func (c *Cluster) Node(i int) *Node { return c.nodes[i] }

// Len returns the number of nodes.
func (c *Cluster) Len() int { return len(c.nodes) }

// WaitServing waits until every node that is neither killed nor paused
// serves clients and, in an ensemble, the nodes agree on one leader. A
// node that exited without Kill is an error: it crashed, or could not
// bind a port.
func (c *Cluster) WaitServing(ctx context.Context) error {
	for {
		var waiting []*Node
		for _, n := range c.nodes {
			if err := n.crashed(); err != nil {
				return err
			}
			if !n.proc.Live() {
				continue
			}
			if m, err := n.Mode(ctx); err != nil || m == "" {
				waiting = append(waiting, n)
			}
		}
		if len(waiting) == 0 {
			break
		}
		if err := nextPoll(ctx); err != nil {
			return errNotServing(waiting, err)
		}
	}
	if _, err := c.Leader(ctx); err != nil {
		return errNotServing(c.nodes, err)
	}
	return nil
}

// errNotServing reports the nodes that did not come up, with their logs.
func errNotServing(nodes []*Node, err error) error {
	var b strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&b, "\nnode %d (%s):\n%s", n.id, n.Addr(), n.logTail(10))
	}
	return fmt.Errorf("not serving: %w%s", err, b.String())
}

// Leader returns the index of the node that leads the ensemble, 0 for a
// standalone server. Only live, unpaused nodes are asked, and an answer
// counts only when every one of them answered, exactly one says "leader"
// and a majority of the ensemble serves: a leader resumed after a pause
// keeps calling itself leader for a moment although the others have
// elected a new one, so one unanswered probe could hide the true leader.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	for {
		leader, leaders, serving, answered := -1, 0, 0, true
		modes := make([]string, len(c.nodes))
		for i, n := range c.nodes {
			modes[i] = "down"
			if !n.proc.Live() {
				continue
			}
			m, err := n.Mode(ctx)
			if err != nil {
				modes[i], answered = "?", false
				continue
			}
			modes[i] = m
			switch m {
			case "standalone":
				return i, nil
			case "leader":
				leader = i
				leaders++
				serving++
			case "follower":
				serving++
			}
		}
		if answered && leaders == 1 && serving > len(c.nodes)/2 {
			return leader, nil
		}
		if err := nextPoll(ctx); err != nil {
			return -1, fmt.Errorf("no single leader (modes %q): %w", modes, err)
		}
	}
}

// nextPoll waits one poll interval, or returns ctx's error.
func nextPoll(ctx context.Context) error {
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Node is one ZooKeeper server process.
type Node struct {
	id         int // ZooKeeper's myid
	dir        string
	clientPort int
	proc       *testenv.Process
	peers      proxy.Group // on its links to and from the other nodes
}

// configure writes the node's zoo.cfg, myid and log4j configuration and
// prepares the java command that runs it.
func (n *Node) configure(cfg config, servers, classpath string) error {
	data := filepath.Join(n.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	// maxSessionTimeout: a client asking for a session longer than 20
	// ticks would otherwise get less without a word.
	zooCfg := fmt.Sprintf(`tickTime=%d
initLimit=%d
syncLimit=5
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=*
maxClientCnxns=0
maxSessionTimeout=60000
%s`, cfg.tick.Milliseconds(), initLimit, data, n.clientPort, servers)
	log4j := fmt.Sprintf(`log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=%s
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%%d{ISO8601} %%-5p [%%t] %%c{1}: %%m%%n
`, filepath.Join(n.dir, "zookeeper.log"))
	files := map[string]string{
		filepath.Join(n.dir, "zoo.cfg"):          zooCfg,
		filepath.Join(n.dir, "log4j.properties"): log4j,
		filepath.Join(data, "myid"):              strconv.Itoa(n.id) + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			return err
		}
	}
	args := append(append([]string{}, jvmFlags...), cfg.properties...)
	// The node's directory comes first so that its log4j.properties wins.
	args = append(args, "-cp", n.dir+string(os.PathListSeparator)+classpath,
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", filepath.Join(n.dir, "zoo.cfg"))
	n.proc = &testenv.Process{
		Name: fmt.Sprintf("node %d (%s)", n.id, n.Addr()),
		Path: "java",
		Args: args,
		Dir:  n.dir,
		Log:  filepath.Join(n.dir, "java.out"),
	}
	return nil
}

// Addr returns the node's client address, "127.0.0.1:port".
func (n *Node) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.clientPort) }

// Dir returns the node's private directory, holding zoo.cfg, the data
// directory and zookeeper.log.
func (n *Node) Dir() string { return n.dir }

// crashed returns an error if the process exited without Kill.
func (n *Node) crashed() error {
	if err := n.proc.Crashed(); err != nil {
		return fmt.Errorf("%w\n%s", err, n.logTail(10))
	}
	return nil
}

// Kill sends SIGKILL, the crash a server cannot react to, and waits until
// the process is gone so that its ports are free. Killing a node that is
// not running does nothing.
func (n *Node) Kill() error { return n.proc.Kill() }

// Pause stops the process with SIGSTOP: its sockets stay open and the
// kernel still accepts connections, but nothing answers, as with a server
// stuck in a long GC pause or a hung host.
func (n *Node) Pause() error { return n.proc.Pause() }

// Resume continues a paused process with SIGCONT.
func (n *Node) Resume() error { return n.proc.Resume() }

// Isolate partitions the node from the other nodes until Rejoin, as a
// network partition would, while its clients still reach it: a follower
// serves them from what it has until it gives its leader up (syncLimit
// ticks), a leader until it misses its quorum. The ensemble must have
// been started with PeerProxies.
func (n *Node) Isolate() error {
	if len(n.peers) == 0 {
		return fmt.Errorf("isolating node %d: the ensemble has no peer proxies", n.id)
	}
	n.peers.Partition()
	return nil
}

// Rejoin ends the node's isolation: what was held back on its links is
// delivered, and the node finds the ensemble again by its own timeouts.
func (n *Node) Rejoin() error {
	if len(n.peers) == 0 {
		return fmt.Errorf("rejoining node %d: the ensemble has no peer proxies", n.id)
	}
	n.peers.Heal()
	return nil
}

// Restart kills the node if it runs, starts it again on the same ports
// and data directory, and waits until it serves: a crashed server that
// comes back with its state.
func (n *Node) Restart(ctx context.Context) error {
	if err := n.Kill(); err != nil {
		return err
	}
	if err := n.proc.Start(); err != nil {
		return err
	}
	return n.waitServing(ctx)
}

// waitServing polls srvr until the node reports a serving mode, failing
// early if the process exits, as it does when a port is taken.
func (n *Node) waitServing(ctx context.Context) error {
	for {
		if err := n.crashed(); err != nil {
			return err
		}
		if m, err := n.Mode(ctx); err == nil && m != "" {
			return nil
		}
		if err := nextPoll(ctx); err != nil {
			return errNotServing([]*Node{n}, err)
		}
	}
}

// Mode returns the node's mode from srvr: "standalone", "leader" or
// "follower", or "" while it does not serve. A node resumed from a pause
// may report a role it has lost; Cluster.Leader accounts for that.
func (n *Node) Mode(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	out, err := fourLetter(ctx, n.Addr(), "srvr", func(out string) bool {
		_, complete := parseMode(out)
		return complete
	})
	if err != nil {
		return "", err
	}
	m, _ := parseMode(out)
	return m, nil
}

// parseMode finds the Mode line in srvr's answer, and reports whether the
// answer says enough to decide: a whole Mode line, or the whole line a
// server that does not serve answers instead.
func parseMode(out string) (mode string, complete bool) {
	lines := strings.Split(out, "\n")
	for _, line := range lines[:len(lines)-1] { // the last one may be partial
		if m, ok := strings.CutPrefix(line, "Mode: "); ok {
			return strings.TrimSpace(m), true
		}
		if strings.HasPrefix(line, notServing) {
			return "", true
		}
	}
	return "", false
}

// logTail returns the last lines of the node's java output and log.
func (n *Node) logTail(lines int) string {
	var b strings.Builder
	for _, name := range []string{"java.out", "zookeeper.log"} {
		tail := testenv.LogTail(filepath.Join(n.dir, name), lines)
		if tail == "" {
			continue
		}
		for _, l := range strings.Split(tail, "\n") {
			b.WriteString(name + ": " + l + "\n")
		}
	}
	return b.String()
}
