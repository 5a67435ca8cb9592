package etcdtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// testTimeout bounds each test's waits on the servers: generous, so that
// only a real fault, not a loaded machine, trips it.
const testTimeout = 30 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestServerPutGet(t *testing.T) {
	etcdBinary(t) // built, or found, before the clock starts
	start := time.Now()
	e := StartServer(t)
	t.Logf("server ready in %v", time.Since(start).Round(time.Millisecond))
	ctx := testContext(t)

	cli := e.Client(t)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	requireValue(ctx, t, cli, "k", "v")
}

// A test may close the server itself, to see its clients lose it; the
// cleanup's second close must then do nothing.
func TestServerClose(t *testing.T) {
	e := StartServer(t)
	cli := e.Client(t)
	if _, err := cli.Put(testContext(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	e.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := cli.Get(ctx, "k"); err == nil {
		t.Fatal("Get served by a closed member")
	}
}

// Two servers of one test are separate: a write to one is not seen by
// the other.
func TestServerIsolation(t *testing.T) {
	a, b := StartServer(t), StartServer(t)
	ctx := testContext(t)
	if a.Endpoint() == b.Endpoint() {
		t.Fatalf("both members on %s", a.Endpoint())
	}
	if _, err := a.Client(t).Put(ctx, "k", "a"); err != nil {
		t.Fatal(err)
	}
	resp, err := b.Client(t).Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("write to %s seen on %s", a.Endpoint(), b.Endpoint())
	}
}

// The benchmarks count requests through the server's metrics; this
// shows the count is exact, and that watch traffic shows up too.
func TestServerMetrics(t *testing.T) {
	e := StartServer(t)
	ctx := testContext(t)
	cli := e.Client(t)
	ep := e.Endpoint()

	puts := map[string]string{"grpc_service": "etcdserverpb.KV", "grpc_method": "Put", "grpc_type": "unary"}
	before := metric(ctx, t, ep, "grpc_server_handled_total", puts)
	const n = 25
	for i := range n {
		if _, err := cli.Put(ctx, fmt.Sprintf("put/%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	// Reads must not count as puts.
	if _, err := cli.Get(ctx, "put/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	// The server counts a request before it sends the answer, so the
	// count is complete once the last Put has returned.
	if got := metric(ctx, t, ep, "grpc_server_handled_total", puts) - before; got != n {
		t.Fatalf("grpc_server_handled_total for Put rose by %v after %d puts", got, n)
	}

	// One watcher is in sync with the store and is sent events as they
	// happen; the other starts at a past revision, so the store catches
	// it up in the background. Both paths count their events.
	watchers := metric(ctx, t, ep, "etcd_debugging_mvcc_watcher_total", nil)
	events := metric(ctx, t, ep, "etcd_debugging_mvcc_events_total", nil)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	synced := cli.Watch(wctx, "watch/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	unsynced := cli.Watch(wctx, "watch/", clientv3.WithPrefix(), clientv3.WithCreatedNotify(), clientv3.WithRev(1))
	for _, ch := range []clientv3.WatchChan{synced, unsynced} {
		if resp := <-ch; !resp.Created {
			t.Fatalf("watch not created: %v", resp.Err())
		}
	}
	if got := metric(ctx, t, ep, "etcd_debugging_mvcc_watcher_total", nil) - watchers; got != 2 {
		t.Fatalf("etcd_debugging_mvcc_watcher_total rose by %v with 2 watches open", got)
	}
	const m = 5
	for i := range m {
		if _, err := cli.Put(ctx, fmt.Sprintf("watch/%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	for name, ch := range map[string]clientv3.WatchChan{"synced": synced, "unsynced": unsynced} {
		got := 0
		for got < m {
			resp, ok := <-ch
			if !ok || resp.Err() != nil {
				t.Fatalf("%s watch ended after %d events: %v", name, got, resp.Err())
			}
			got += len(resp.Events)
		}
	}
	// The store counts a batch of events once it has handed it to the
	// watch stream, which may be after the client has received it, so
	// wait for the count rather than read it once.
	got := pollMetric(ctx, t, ep, "etcd_debugging_mvcc_events_total", nil, func(v float64) bool { return v-events >= 2*m })
	if got-events != 2*m {
		t.Fatalf("etcd_debugging_mvcc_events_total rose by %v for %d events to 2 watchers", got-events, m)
	}
}

func metric(ctx context.Context, t *testing.T, endpoint, name string, labels map[string]string) float64 {
	t.Helper()
	v, err := Metric(ctx, endpoint, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// pollMetric reads the metric until ok accepts it, and returns it.
func pollMetric(ctx context.Context, t *testing.T, endpoint, name string, labels map[string]string, ok func(float64) bool) float64 {
	t.Helper()
	for {
		v := metric(ctx, t, endpoint, name, labels)
		if ok(v) {
			return v
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s %v stuck at %v", name, labels, v)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// requireValue reads key with a linearizable Get, which the member can
// only answer once it has caught up with the leader's commit index.
func requireValue(ctx context.Context, t *testing.T, cli *clientv3.Client, key, want string) {
	t.Helper()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != want {
		t.Fatalf("get %s: %v, want %q", key, resp.Kvs, want)
	}
}
