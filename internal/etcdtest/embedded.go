package etcdtest

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testenv"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// startTimeout bounds how long a server may take to become ready. Starts
// take well under a second; the margin is for a loaded machine running
// tests under -race.
const startTimeout = 30 * time.Second

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
// when the test ends, whether it passed, failed or panicked.
func StartEmbedded(tb testing.TB) *Embedded {
	tb.Helper()
	dir := tb.TempDir()
	var err error
	// Ports are free when chosen but may be taken before etcd binds
	// them; a fresh set on the next attempt is the cure.
	for attempt := range 3 {
		var e *Embedded
		e, err = startEmbedded(filepath.Join(dir, strconv.Itoa(attempt)))
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

func startEmbedded(dir string) (*Embedded, error) {
	ports, err := testenv.FreePorts(2)
	if err != nil {
		return nil, err
	}
	clientURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	peerURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])}

	cfg := embed.NewConfig()
	cfg.Name = "embedded"
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A lone member elects itself after one election timeout; short
	// timing makes that ~30 ms instead of ~1 s. It also lowers the
	// minimum lease TTL (1.5 election timeouts) to well under a second.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	// The data is thrown away with the test; fsync only costs time.
	cfg.UnsafeNoFsync = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())

	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-etcd.Server.ReadyNotify():
	case err = <-etcd.Err():
	case <-time.After(startTimeout):
		err = fmt.Errorf("not ready after %v", startTimeout)
	}
	if err != nil {
		etcd.Close()
		return nil, err
	}
	return &Embedded{etcd: etcd, endpoint: clientURL.Host}, nil
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
