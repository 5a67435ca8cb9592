package etcdtest

import (
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/turnstile-go/turnstile/internal/testing/embedetcd"
)

// Embedded is a single-member etcd running inside the test process.
//
// Its metrics live in the process-wide Prometheus registry, as etcd
// registers them there: two embedded servers in one process count into
// the same series. Tests that assert exact counts must not run in
// parallel with other tests using an embedded server.
type Embedded struct {
	etcd     *embed.Etcd
	endpoint string
	close    sync.Once
}

// StartEmbedded starts a single member in the test process and closes it
// when the test ends, whether it passed, failed or panicked. configure
// changes the server's configuration, as CA.Serve does.
func StartEmbedded(tb testing.TB, configure ...func(*embed.Config)) *Embedded {
	tb.Helper()
	dir := tb.TempDir()
	var err error
	// Ports are free when chosen but may be taken before etcd binds
	// them; a fresh set on the next attempt is the cure.
	for attempt := range 3 {
		var e *Embedded
		e, err = startEmbedded(filepath.Join(dir, strconv.Itoa(attempt)), configure...)
		if err == nil {
			tb.Cleanup(e.Close)
			return e
		}
	}
	// Nothing is missing that a skip would excuse: the server is
	// compiled into the test.
	tb.Fatalf("starting an embedded etcd: %v", err)
	return nil
}

func startEmbedded(dir string, configure ...func(*embed.Config)) (*Embedded, error) {
	etcd, endpoint, err := embedetcd.Start(dir, configure...)
	if err != nil {
		return nil, err
	}
	return &Embedded{etcd: etcd, endpoint: endpoint}, nil
}

// LaunchEmbedded starts a member outside any test, so that a TestMain
// can share one among a package's tests; its data lives under dir, and
// Close ends it.
func LaunchEmbedded(dir string) (*Embedded, error) {
	var err error
	for attempt := range 3 {
		var e *Embedded
		if e, err = startEmbedded(filepath.Join(dir, strconv.Itoa(attempt))); err == nil {
			return e, nil
		}
	}
	return nil, err
}

// Endpoint is the member's client address, host:port, which a client, a
// proxy or Metric takes.
func (e *Embedded) Endpoint() string { return e.endpoint }

// Endpoints is the endpoint list for a clientv3.Config.
func (e *Embedded) Endpoints() []string { return []string{e.endpoint} }

// Client returns a client of the member, closed when the test ends.
func (e *Embedded) Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	return NewClient(tb, e.endpoint)
}

// Close stops the member, for a test that needs the server gone. The
// test's cleanup calls it too; only the first call does anything, since
// etcd panics when closed twice.
func (e *Embedded) Close() {
	e.close.Do(e.etcd.Close)
}
