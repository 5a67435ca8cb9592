package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile/internal/testing/ports"
	"github.com/turnstile-go/turnstile/internal/testing/testenv"
)

// Raft timing of a Server, in milliseconds. A lone member elects itself
// after one election timeout: short timing makes that tens of
// milliseconds instead of a second, and lowers the shortest lease etcd
// grants (1.5 election timeouts) to well under a second. A lone member
// has no followers to miss its heartbeats, so a starved CPU cannot call
// a spurious election.
const (
	serverHeartbeatMs = 10
	serverElectionMs  = 100
)

// Server is a single etcd member in a process of its own, what most
// tests need: a real etcd to queue on, with counters of its own (a test
// reads them with Metric), started in a fraction of a second.
type Server struct {
	m *Member
}

// ServerOption changes how a Server runs.
type ServerOption func(*serverConfig)

type serverConfig struct {
	flags []string
	// tls makes the member serve clients over TLS only; the harness then
	// asks for its health on a plain metrics listener.
	tls bool
}

// WithFlags passes flags to etcd after the harness's own, which they
// override, as WithFlags("--bcrypt-cost", "4") makes logins cheap.
func WithFlags(flags ...string) ServerOption {
	return func(c *serverConfig) { c.flags = append(c.flags, flags...) }
}

// StartServer starts a member and returns once it serves linearizable
// reads. The test's cleanup kills it, whether the test passed, failed or
// panicked, and on failure logs the tail of its log.
//
// The binary is built as for StartCluster: without a go command, or if
// the build fails, the test is skipped — or fails, in CI.
func StartServer(tb testing.TB, opts ...ServerOption) *Server {
	tb.Helper()
	bin := etcdBinary(tb)
	s, err := launchServer(bin, tb.TempDir(), opts)
	if err != nil {
		tb.Fatalf("starting an etcd server: %v", err)
	}
	tb.Cleanup(func() {
		s.Close()
		if tb.Failed() {
			tb.Logf("last lines of the etcd server's log (%s):\n%s", s.m.proc.Log, testenv.LogTail(s.m.proc.Log, 30))
		}
	})
	return s
}

// LaunchServer starts a member outside any test, so that a TestMain can
// share one among a package's tests; its data lives under dir, and Close
// ends it. Each test that needs the member hands an error to Unlaunched.
func LaunchServer(dir string, opts ...ServerOption) (*Server, error) {
	bin, err := etcdBin.find(func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	})
	if err != nil {
		return nil, err
	}
	return launchServer(bin, dir, opts)
}

// Launched is LaunchServer with default options, in the form
// locktest.Shared takes.
func Launched(dir string) (*Server, func(), error) {
	s, err := LaunchServer(dir)
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
}

// Unlaunched stops a test that needs the member LaunchServer could not
// start, with LaunchServer's error: as unavailable (a skip, or a failure
// in CI) when etcd could not be built, as a failure otherwise.
func Unlaunched(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, errUnavailable) {
		testenv.Unavailable(tb, "%v", err)
	}
	tb.Fatalf("starting an etcd server: %v", err)
}

func launchServer(bin, dir string, opts []ServerOption) (*Server, error) {
	var cfg serverConfig
	for _, o := range opts {
		o(&cfg)
	}
	var err error
	// Ports are free when chosen but may be taken before etcd binds
	// them, and the member then exits; a fresh set on the next attempt
	// is the cure.
	for attempt := range 3 {
		var s *Server
		if s, err = startServer(bin, filepath.Join(dir, strconv.Itoa(attempt)), cfg); err == nil {
			return s, nil
		}
	}
	return nil, err
}

func startServer(bin, dir string, cfg serverConfig) (*Server, error) {
	ports, err := ports.Free(3)
	if err != nil {
		return nil, err
	}
	m := &Member{
		name:     "server",
		dir:      dir,
		endpoint: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		peerURL:  fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	}
	m.healthURL = "http://" + m.endpoint
	clientURL := "http://" + m.endpoint
	args := []string{
		"--name", m.name,
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-peer-urls", m.peerURL,
		"--initial-advertise-peer-urls", m.peerURL,
		"--initial-cluster", m.name + "=" + m.peerURL,
		"--initial-cluster-token", fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), clusterSeq.Add(1)),
		"--heartbeat-interval", strconv.Itoa(serverHeartbeatMs),
		"--election-timeout", strconv.Itoa(serverElectionMs),
		// The data is thrown away afterwards; fsync only costs time.
		"--unsafe-no-fsync",
		"--log-level", "warn",
	}
	if cfg.tls {
		clientURL = "https://" + m.endpoint
		m.healthURL = fmt.Sprintf("http://127.0.0.1:%d", ports[2])
		args = append(args, "--listen-metrics-urls", m.healthURL)
	}
	args = append(args, "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL)
	m.proc = &testenv.Process{
		Name: "etcd server",
		Path: bin,
		Args: append(args, cfg.flags...),
		Dir:  dir,
		Log:  filepath.Join(dir, "etcd.log"),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := m.proc.Start(); err != nil {
		return nil, err
	}
	if err := m.waitHealthy(ctx); err != nil {
		_ = m.Kill()
		return nil, err
	}
	return &Server{m: m}, nil
}

// Endpoint is the member's client address, host:port, which a client, a
// proxy or Metric takes.
func (s *Server) Endpoint() string { return s.m.endpoint }

// Endpoints is the endpoint list for a clientv3.Config.
func (s *Server) Endpoints() []string { return []string{s.m.endpoint} }

// Client returns a client of the member, closed when the test ends.
func (s *Server) Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	return NewClient(tb, s.m.endpoint)
}

// Close kills the member, for a test that needs the server gone, and
// returns once it has exited. The test's cleanup calls it too; only the
// first call does anything.
func (s *Server) Close() { _ = s.m.Kill() }
