// Package etcdtest runs real etcd servers for tests, each a separate OS
// process: a single member with short timing, which starts in a fraction
// of a second, or a cluster, for what only a cluster can do — lose a
// member, elect another and take the lost one back.
//
// The servers are built from etcd's Go module, which the library's module
// does not require (see toolModule): no test of the library embeds etcd,
// so the library's users need not have its server in their module graphs.
//
// Every server listens on free 127.0.0.1 ports, keeps its data in the
// test's temporary directory and is stopped by the test's cleanup, so
// tests can run side by side in one process and across processes.
//
// The package runs on Linux: members are frozen and killed with signals.
package etcdtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// ClientConfig is the client configuration the harness uses, exported so
// that a test needing one more option starts from it rather than from a
// zero clientv3.Config.
//
// It differs from the defaults in one way that matters: gRPC's
// reconnection backoff is capped at half a second instead of two
// minutes. While a member is down its connection attempts are refused at
// once and the default backoff grows so fast that, measured here, a
// client of a member killed for 10–20 s went on failing for 5–7 s after
// the member was back; with the cap it is served within milliseconds.
// The client logs nothing: tests assert on errors, not on its logs.
func ClientConfig(endpoints ...string) clientv3.Config {
	return clientv3.Config{
		Endpoints: endpoints,
		// Client creation does not wait for a connection; DialTimeout
		// only bounds the few calls the client makes on its own, such as
		// the first lease keep-alive.
		DialTimeout: 2 * time.Second,
		Logger:      quiet,
		DialOptions: []grpc.DialOption{
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay:  50 * time.Millisecond,
					Multiplier: 1.6,
					Jitter:     0.2,
					MaxDelay:   500 * time.Millisecond,
				},
				// gRPC's default, which WithConnectParams would
				// otherwise replace by zero: every attempt would then
				// be abandoned after the backoff delay, under half a
				// second, too short on a loaded machine. A long
				// attempt costs nothing: an attempt held silent by a
				// paused member or a cut proxy goes through the
				// moment the member resumes or the proxy is restored.
				MinConnectTimeout: 20 * time.Second,
			}),
		},
	}
}

// quiet is a logger that logs nothing. A client without a connection
// comes with one, which spares the harness a logging library of its own.
var quiet = clientv3.NewCtxClient(context.Background()).GetLogger()

// NewClient returns a client of the given endpoints — members, or a
// proxy in front of one — that is closed when the test ends.
func NewClient(tb testing.TB, endpoints ...string) *clientv3.Client {
	tb.Helper()
	c, err := clientv3.New(ClientConfig(endpoints...))
	if err != nil {
		tb.Fatalf("etcd client of %v: %v", endpoints, err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
