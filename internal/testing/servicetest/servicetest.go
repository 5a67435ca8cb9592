// Package servicetest puts ZooKeeper and etcd behind one face, so that
// the tests of a recipe that runs over any backend session (read-write
// locks, elections) are written once and run over both real services.
package servicetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/internal/recipe"
	"github.com/turnstile-go/turnstile/internal/testing/etcdtest"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
	"github.com/turnstile-go/turnstile/internal/testing/proxy"
	"github.com/turnstile-go/turnstile/internal/testing/testenv"
	"github.com/turnstile-go/turnstile/internal/testing/zktest"
	"github.com/turnstile-go/turnstile/zklock"
)

// Lifetime is the session timeout or lease TTL of the sessions tests
// open: short, so that a test of loss is quick, and long enough for a
// loaded machine running under -race.
const Lifetime = 4 * time.Second

// Service is one running coordination service, a server or a cluster of
// them, with what a recipe test does to it and reads from it.
type Service struct {
	// Name names the service in subtest names: "zookeeper" or "etcd".
	Name string
	// RequestBytes is more than the session's background traffic (pings,
	// keep-alives) sends in a second, and less than a join request.
	RequestBytes int64

	addrs []string
	// open opens a session, and returns with it a function that closes
	// it and frees what it was opened with.
	open func(lifetime time.Duration, addrs []string) (turnstile.Session, func(), error)
	// nodes are the servers as processes a test may break, nil for the
	// shared etcd server.
	nodes  []node
	leader func(context.Context) (int, error)
	state  inspector
}

type node interface {
	Pause() error
	Resume() error
	Kill() error
	Restart(ctx context.Context) error
	// Isolate partitions the server from the other servers, its clients'
	// connections left as they are, until Rejoin.
	Isolate() error
	Rejoin() error
}

// inspector reads what the tests check from the servers themselves.
type inspector interface {
	queued(name string) (int, error)
	nodes(ctx context.Context, name string) (int, error)
	writes() (int64, error)
	watches(ctx context.Context, server int) (int, error)
	notified() (int, error)
	layout(name string) (map[string][]string, error)
	close()
}

// Session opens a session on every server, closed when tb ends.
func (s *Service) Session(tb testing.TB) turnstile.Session {
	tb.Helper()
	return s.opened(tb, Lifetime, s.addrs)
}

// opened opens a session, closed when tb ends, or fails the test.
func (s *Service) opened(tb testing.TB, lifetime time.Duration, addrs []string) turnstile.Session {
	tb.Helper()
	b, closeIt, err := s.open(lifetime, addrs)
	must(tb, err)
	tb.Cleanup(closeIt)
	return b
}

// Through opens a session with the given lifetime whose traffic to the
// first server passes through a proxy of its own, which the test can cut.
func (s *Service) Through(tb testing.TB, lifetime time.Duration) (turnstile.Session, *proxy.Proxy) {
	tb.Helper()
	p, err := proxy.Start(s.addrs[0])
	if err != nil {
		tb.Fatal(err)
	}
	// Registered first, so that it closes after the session.
	tb.Cleanup(func() { p.Close() })
	return s.opened(tb, lifetime, []string{p.Addr()}), p
}

// Link is one client's way to every server, a proxy per server, which a
// test cuts to partition that client alone: its sessions can neither
// renew nor fail over.
type Link struct {
	s       *Service
	proxies []*proxy.Proxy

	mu     sync.Mutex
	opened map[int]func() // how to close each session not closed yet
	next   int            // the key of the next session opened
}

// Linked returns a new link to every server, closed when tb ends with
// every session opened through it.
func (s *Service) Linked(tb testing.TB) *Link {
	tb.Helper()
	l := &Link{s: s, opened: map[int]func(){}}
	for _, addr := range s.addrs {
		p, err := proxy.Start(addr)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { p.Close() })
		l.proxies = append(l.proxies, p)
	}
	// Registered last, so that the sessions close before the proxies.
	tb.Cleanup(func() {
		l.mu.Lock()
		left := slices.Collect(maps.Values(l.opened))
		clear(l.opened)
		l.mu.Unlock()
		for _, closeIt := range left {
			closeIt()
		}
	})
	return l
}

// Open opens a session with the given lifetime through the link. It
// returns the error when the session cannot start, as during a fault: a
// new etcd lease's first renewal may reach a member cut off from the one
// that granted it.
//
// The function returned closes the session and frees what it was opened
// with (an etcd client); the link calls it when the test ends if the
// caller has not. A client that opens session after session calls it
// for each one it is done with, so that what a long run holds stays
// bounded.
func (l *Link) Open(lifetime time.Duration) (turnstile.Session, func(), error) {
	b, closeIt, err := l.s.open(lifetime, l.Addrs())
	if err != nil {
		return nil, nil, err
	}
	l.mu.Lock()
	key := l.next
	l.next++
	l.opened[key] = closeIt
	l.mu.Unlock()
	return b, func() {
		l.mu.Lock()
		_, open := l.opened[key]
		delete(l.opened, key)
		l.mu.Unlock()
		if open {
			closeIt()
		}
	}, nil
}

// Addrs returns the addresses of the link's proxies, one per server, in
// the servers' order, for a client of another library to connect
// through: "host:port" for ZooKeeper, endpoints for etcd.
func (l *Link) Addrs() []string {
	addrs := make([]string, len(l.proxies))
	for i, p := range l.proxies {
		addrs[i] = p.Addr()
	}
	return addrs
}

// Cut partitions the client from every server.
func (l *Link) Cut() {
	for _, p := range l.proxies {
		p.Cut()
	}
}

// Restore lets the client's traffic through again.
func (l *Link) Restore() {
	for _, p := range l.proxies {
		p.Restore()
	}
}

// Addrs returns the servers' addresses, for other clients to reach them:
// "host:port" for ZooKeeper, endpoints for etcd.
func (s *Service) Addrs() []string { return s.addrs }

// Servers returns how many servers there are.
func (s *Service) Servers() int { return len(s.addrs) }

// Leader returns the index of the servers' leader.
func (s *Service) Leader(ctx context.Context) (int, error) { return s.leader(ctx) }

// Node returns the i-th server as a process the test can pause, resume
// and kill; it fails the test on the shared etcd server, which every
// test of the package uses.
func (s *Service) Node(tb testing.TB, i int) node {
	tb.Helper()
	if s.nodes == nil {
		tb.Fatalf("%s: the shared server is not to be broken", s.Name)
	}
	return s.nodes[i]
}

// KillLeader returns a fault that kills the servers' leader.
func (s *Service) KillLeader(tb testing.TB) func() {
	return locktest.KillLeader(tb, s.leader, func(i int) error { return s.Node(tb, i).Kill() })
}

// Queued returns how many contenders the servers hold directly under name,
// leaving out nested names.
func (s *Service) Queued(tb testing.TB, name string) int {
	tb.Helper()
	v, err := s.state.queued(name)
	must(tb, err)
	return v
}

// Writes returns a number the servers increase on every change.
func (s *Service) Writes(tb testing.TB) int64 {
	tb.Helper()
	v, err := s.state.writes()
	must(tb, err)
	return v
}

// Watches returns how many watches the first server holds: ZooKeeper's
// zk_watch_count, etcd's etcd_debugging_mvcc_watcher_total.
func (s *Service) Watches(tb testing.TB) int {
	tb.Helper()
	v, err := s.state.watches(context.Background(), 0)
	must(tb, err)
	return v
}

// ServerWatches returns how many watches server i holds, as Watches
// counts them, or the error, for a caller that reads it during faults:
// a killed server refuses, a paused one answers when ctx has ended.
func (s *Service) ServerWatches(ctx context.Context, i int) (int, error) {
	return s.state.watches(ctx, i)
}

// Nodes returns how many nodes (ZooKeeper) or keys (etcd) lie under
// name at any depth, name's own node left out: contenders, and a
// semaphore's waiting room with its contenders. It returns the error,
// for a caller that reads it during faults.
func (s *Service) Nodes(ctx context.Context, name string) (int, error) {
	return s.state.nodes(ctx, name)
}

// Notified returns how many watch notifications the first server has
// sent: the watches ZooKeeper triggered, the events etcd sent.
func (s *Service) Notified(tb testing.TB) int {
	tb.Helper()
	v, err := s.state.notified()
	must(tb, err)
	return v
}

// Layout maps each contender of name that watches another contender to
// the contenders it watches, by key, as the server records it; it returns
// nil where the server does not tell (etcd).
func (s *Service) Layout(tb testing.TB, name string) map[string][]string {
	tb.Helper()
	v, err := s.state.layout(name)
	must(tb, err)
	return v
}

// InOrder runs join(i) for i from 0 to n-1, each in a goroutine of its
// own and once the server shows the one before it queued under name, so
// that the queue is in that order; got[i] receives join(i)'s result.
func (s *Service) InOrder(tb testing.TB, name string, n int, join func(i int) error) (got []chan error) {
	tb.Helper()
	before := s.Queued(tb, name)
	got = make([]chan error, n)
	for i := range n {
		got[i] = make(chan error, 1)
		go func() { got[i] <- join(i) }()
		locktest.Eventually(tb, 10*time.Second, fmt.Sprintf("contender %d queued", i), func() bool {
			return s.Queued(tb, name) == before+i+1
		})
	}
	return got
}

// Waiting runs acquire in a goroutine of its own and returns once the
// server shows n contenders under name and one watch more than before:
// the new contender waiting for the one ahead. Its result goes to the
// channel returned.
func (s *Service) Waiting(tb testing.TB, name string, n int, acquire func(context.Context) error) <-chan error {
	tb.Helper()
	watches := s.Watches(tb)
	got := make(chan error, 1)
	go func() { got <- acquire(context.Background()) }()
	locktest.Eventually(tb, 10*time.Second, "contender waiting", func() bool {
		return s.Queued(tb, name) == n && s.Watches(tb) == watches+1
	})
	return got
}

// Left returns once the server shows fewer than n contenders under name:
// at most a round trip after the server removed one.
func (s *Service) Left(tb testing.TB, name string, n int) time.Time {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Queued(tb, name) >= n {
		if time.Now().After(deadline) {
			tb.Fatalf("still %d contenders under %s after 10s", n, name)
		}
	}
	return time.Now()
}

// GrantedAt is Succeeds, returning when the result came.
func GrantedAt(tb testing.TB, got <-chan error, who string) time.Time {
	tb.Helper()
	Succeeds(tb, got, who)
	return time.Now()
}

// Succeeds waits for a result from got, and fails the test unless it is
// nil.
func Succeeds(tb testing.TB, got <-chan error, who string) {
	tb.Helper()
	select {
	case err := <-got:
		if err != nil {
			tb.Fatalf("%s: %v", who, err)
		}
	case <-time.After(10 * time.Second):
		tb.Fatalf("%s: no result after 10s", who)
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// The services every test of a package shares, launched by Main.
var shared struct {
	zk, etcd       *Service
	zkErr, etcdErr error
}

// Main runs a package's tests around a shared ZooKeeper server and a
// shared etcd server, and returns the exit code. It sets *examples, if
// not nil, to the etcd server's endpoints, for the package's examples.
func Main(m *testing.M, examples *[]string) int {
	return locktest.RunMain(m, func(dir string) func() {
		var stops []func()
		if c, err := zktest.Launch(dir, 1); err != nil {
			shared.zkErr = err
		} else {
			shared.zk = zookeeper(c)
			stops = append(stops, c.Stop, shared.zk.state.close)
		}
		sub, err := os.MkdirTemp(dir, "etcd")
		if err == nil {
			var e *etcdtest.Server
			if e, err = etcdtest.LaunchServer(sub); err == nil {
				shared.etcd = etcd(e.Endpoints(), nil, nil)
				if examples != nil {
					*examples = e.Endpoints()
				}
				stops = append(stops, e.Close, shared.etcd.state.close)
			}
		}
		shared.etcdErr = err
		return func() {
			for i := len(stops) - 1; i >= 0; i-- {
				stops[i]()
			}
		}
	})
}

// Each runs f as a subtest over the shared ZooKeeper server and over the
// shared etcd member.
func Each(t *testing.T, f func(t *testing.T, s *Service)) {
	On(t, "zookeeper", f)
	On(t, "etcd", f)
}

// On runs f as a subtest over the shared server of one service,
// "zookeeper" or "etcd".
func On(t *testing.T, service string, f func(t *testing.T, s *Service)) {
	t.Run(service, func(t *testing.T) {
		switch {
		case service == "zookeeper" && shared.zk == nil:
			testenv.Unavailable(t, "zookeeper: %v", shared.zkErr)
		case service == "zookeeper":
			f(t, shared.zk)
		case shared.etcd == nil:
			etcdtest.Unlaunched(t, shared.etcdErr)
		default:
			f(t, shared.etcd)
		}
	})
}

// ZooKeeper returns the shared ZooKeeper server, for a test of what only
// ZooKeeper lets a test arrange (an ACL, with no credentials to set up).
func ZooKeeper(t *testing.T) *Service {
	if shared.zk == nil {
		testenv.Unavailable(t, "zookeeper: %v", shared.zkErr)
	}
	return shared.zk
}

// EachCluster runs f as a subtest over a fresh ZooKeeper ensemble of n
// nodes and over a fresh etcd cluster of n members, each server its own
// process, reaching the others through proxies so that a test can
// isolate one.
func EachCluster(t *testing.T, n int, f func(t *testing.T, s *Service)) {
	t.Run("zookeeper", func(t *testing.T) {
		s := zookeeper(zktest.StartEnsemble(t, n, zktest.PeerProxies()))
		t.Cleanup(s.state.close)
		f(t, s)
	})
	t.Run("etcd", func(t *testing.T) {
		c := etcdtest.StartCluster(t, n, etcdtest.PeerProxies())
		nodes := make([]node, n)
		for i := range nodes {
			nodes[i] = c.Member(i)
		}
		s := etcd(c.Endpoints(), nodes, c.Leader)
		t.Cleanup(s.state.close)
		f(t, s)
	})
}

func zookeeper(c *zktest.Cluster) *Service {
	nodes := make([]node, c.Len())
	for i := range nodes {
		nodes[i] = c.Node(i)
	}
	return &Service{
		Name:         "zookeeper",
		RequestBytes: 40,
		addrs:        c.Servers(),
		open: func(lifetime time.Duration, addrs []string) (turnstile.Session, func(), error) {
			s, err := zklock.Connect(addrs, zklock.WithSessionTimeout(lifetime))
			if err != nil {
				return nil, nil, err
			}
			return s, func() { s.Close() }, nil
		},
		nodes:  nodes,
		leader: c.Leader,
		state:  &zkState{c: c},
	}
}

func etcd(endpoints []string, nodes []node, leader func(context.Context) (int, error)) *Service {
	return &Service{
		Name:         "etcd",
		RequestBytes: 150,
		addrs:        endpoints,
		open: func(lifetime time.Duration, addrs []string) (turnstile.Session, func(), error) {
			cli, err := clientv3.New(etcdtest.ClientConfig(addrs...))
			if err != nil {
				return nil, nil, err
			}
			s, err := etcdlock.NewSession(cli, etcdlock.WithTTL(lifetime))
			if err != nil {
				cli.Close()
				return nil, nil, err
			}
			return s, func() { s.Close(); cli.Close() }, nil
		},
		nodes:  nodes,
		leader: leader,
		state:  &etcdState{endpoints: endpoints},
	}
}

const readTimeout = 10 * time.Second

// zkState reads a ZooKeeper server's state through a connection of its
// own, and its counters through four-letter words.
type zkState struct {
	c    *zktest.Cluster
	mu   sync.Mutex
	conn *zk.Conn
}

func (z *zkState) reader() (*zk.Conn, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.conn == nil {
		conn, _, err := zk.Connect(z.c.Servers(), readTimeout, zk.WithLogger(quiet{}))
		if err != nil {
			return nil, err
		}
		z.conn = conn
	}
	return z.conn, nil
}

func (z *zkState) close() {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.conn != nil {
		z.conn.Close()
	}
}

func (z *zkState) queued(name string) (int, error) {
	conn, err := z.reader()
	if err != nil {
		return 0, err
	}
	children, _, err := conn.Children(name)
	if errors.Is(err, zk.ErrNoNode) {
		return 0, nil
	}
	// A semaphore's waiting room is a queue of its own.
	return len(children) - count(children, recipe.WaitingRoom), err
}

// nodes counts name's descendants, one level of children at a time. The
// client has no context: a call waits for the connection, up to its
// session timeout, and ctx is checked between calls.
func (z *zkState) nodes(ctx context.Context, name string) (int, error) {
	conn, err := z.reader()
	if err != nil {
		return 0, err
	}
	n := 0
	for level := []string{name}; len(level) > 0; {
		var next []string
		for _, path := range level {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			children, _, err := conn.Children(path)
			if errors.Is(err, zk.ErrNoNode) {
				continue // gone since its parent was read
			}
			if err != nil {
				return 0, err
			}
			for _, c := range children {
				next = append(next, path+"/"+c)
			}
		}
		n += len(next)
		level = next
	}
	return n, nil
}

func count(children []string, child string) int {
	if slices.Contains(children, child) {
		return 1
	}
	return 0
}

func (z *zkState) writes() (int64, error) {
	out, err := z.c.Node(0).FourLetter(context.Background(), "srvr")
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`Zxid: 0x([0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no zxid in srvr: %q", out)
	}
	return strconv.ParseInt(m[1], 16, 64)
}

func (z *zkState) mntr(ctx context.Context, server int, keys ...string) (int, error) {
	vars, err := z.c.Node(server).Mntr(ctx)
	if err != nil {
		return 0, err
	}
	sum := 0
	for _, k := range keys {
		v, err := strconv.Atoi(vars[k])
		if err != nil {
			return 0, fmt.Errorf("mntr %s: %w", k, err)
		}
		sum += v
	}
	return sum, nil
}

func (z *zkState) watches(ctx context.Context, server int) (int, error) {
	return z.mntr(ctx, server, "zk_watch_count")
}

func (z *zkState) notified() (int, error) {
	return z.mntr(context.Background(), 0, "zk_sum_node_deleted_watch_count", "zk_sum_node_changed_watch_count",
		"zk_sum_node_created_watch_count", "zk_sum_node_children_watch_count")
}

// layout joins wchp's watched paths and watching sessions with the
// sessions that own name's children.
func (z *zkState) layout(name string) (map[string][]string, error) {
	conn, err := z.reader()
	if err != nil {
		return nil, err
	}
	children, _, err := conn.Children(name)
	if err != nil {
		return nil, err
	}
	owned := map[int64]string{}
	for _, child := range children {
		path := name + "/" + child
		ok, st, err := conn.Exists(path)
		if err != nil {
			return nil, err
		}
		if ok {
			owned[st.EphemeralOwner] = path
		}
	}
	watched, err := z.c.Node(0).Watches(context.Background())
	if err != nil {
		return nil, err
	}
	layout := map[string][]string{}
	for path, sessions := range watched {
		for _, sid := range sessions {
			if w, ok := owned[sid]; ok && w != path {
				layout[w] = append(layout[w], path)
			}
		}
	}
	return layout, nil
}

// etcdState reads an etcd member's keys through a client of its own, and
// its counters from its metrics.
type etcdState struct {
	endpoints []string
	mu        sync.Mutex
	client    *clientv3.Client
}

func (e *etcdState) reader() (*clientv3.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client == nil {
		c, err := clientv3.New(etcdtest.ClientConfig(e.endpoints...))
		if err != nil {
			return nil, err
		}
		e.client = c
	}
	return e.client, nil
}

func (e *etcdState) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client != nil {
		e.client.Close()
	}
}

func (e *etcdState) get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	c, err := e.reader()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	return c.Get(ctx, key, opts...)
}

func (e *etcdState) nodes(ctx context.Context, name string) (int, error) {
	resp, err := e.get(ctx, name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return int(resp.Count), nil
}

func (e *etcdState) queued(name string) (int, error) {
	resp, err := e.get(context.Background(), name+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, kv := range resp.Kvs {
		if !strings.Contains(string(kv.Key[len(name)+1:]), "/") {
			n++ // not a nested name's, such as a semaphore's waiting room
		}
	}
	return n, nil
}

func (e *etcdState) writes() (int64, error) {
	resp, err := e.get(context.Background(), "/")
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

func (e *etcdState) metric(ctx context.Context, server int, name string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	v, err := etcdtest.Metric(ctx, e.endpoints[server], name, nil)
	return int(v), err
}

func (e *etcdState) watches(ctx context.Context, server int) (int, error) {
	return e.metric(ctx, server, "etcd_debugging_mvcc_watcher_total")
}

func (e *etcdState) notified() (int, error) {
	return e.metric(context.Background(), 0, "etcd_debugging_mvcc_events_total")
}

func (e *etcdState) layout(string) (map[string][]string, error) { return nil, nil }

type quiet struct{}

func (quiet) Printf(string, ...any) {}
