// Package embedetcd runs a single-member etcd inside the current process,
// for the examples and benchmarks that need a server and must not ask
// anyone to install one.
//
// It is a module of its own, the one place in the repository that
// requires etcd's server: the library's users must not get the server in
// their module graphs, so the library's tests run etcd as a process built
// from this module (see internal/testing/etcdtest), at the very version
// the examples embed, and etcdctl beside it.
package embedetcd

import (
	"fmt"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/turnstile-go/turnstile/internal/testing/ports"
)

// startTimeout bounds start-up, which takes well under a second, with a
// margin for a loaded machine running tests under -race.
const startTimeout = 30 * time.Second

// Start starts a member with its data in dir, on free loopback ports, and
// returns it once it serves, with its client address (host:port). The
// caller closes it, once: etcd panics on a second Close.
//
// configure, if given, changes the configuration last, as a test does
// that needs client TLS (cfg.ClientTLSInfo, which makes the client URL
// https) or other server settings.
func Start(dir string, configure ...func(*embed.Config)) (*embed.Etcd, string, error) {
	ports, err := ports.Free(2)
	if err != nil {
		return nil, "", err
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
	// The data is thrown away afterwards; fsync only costs time.
	cfg.UnsafeNoFsync = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	for _, c := range configure {
		c(cfg)
	}
	if !cfg.ClientTLSInfo.Empty() {
		clientURL.Scheme = "https"
		cfg.ListenClientUrls = []url.URL{clientURL}
		cfg.AdvertiseClientUrls = []url.URL{clientURL}
	}

	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-etcd.Server.ReadyNotify():
	case err = <-etcd.Err():
	case <-time.After(startTimeout):
		err = fmt.Errorf("not ready after %v", startTimeout)
	}
	if err != nil {
		etcd.Close()
		return nil, "", err
	}
	return etcd, clientURL.Host, nil
}

// StartTemp starts a member with its data in a new temporary directory,
// for a program that needs a server for as long as it runs. stop closes
// the member and removes its data.
func StartTemp() (addr string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "turnstile-etcd")
	if err != nil {
		return "", nil, err
	}
	server, addr, err := Start(dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("starting an embedded etcd: %w", err)
	}
	return addr, func() { server.Close(); os.RemoveAll(dir) }, nil
}
