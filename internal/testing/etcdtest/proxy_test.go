package etcdtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/proxy"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A client partitioned from its member by a cut proxy: its requests time
// out, its lease expires on the server for want of keep-alives, and once
// the link is restored it is served again without being rebuilt.
func TestProxyPartition(t *testing.T) {
	e := StartServer(t)
	ctx := testContext(t)
	p, err := proxy.Start(e.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	cli := NewClient(t, p.Addr())
	direct := e.Client(t)

	const ttl = 2
	lease, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "owned", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	kctx, stopKeepAlive := context.WithCancel(ctx)
	defer stopKeepAlive()
	keepAlive, err := cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The first answer follows the first request at once; a second one
	// shows the keep-alive loop itself gets through the proxy, so that
	// the expiry below is the cut's doing.
	for range 2 {
		select {
		case _, ok := <-keepAlive:
			if !ok {
				t.Fatal("keep-alive ended before the cut")
			}
		case <-ctx.Done():
			t.Fatal("no keep-alive answer before the cut")
		}
	}

	p.Cut()
	cut := time.Now()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = cli.Get(short, "owned")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get through a cut proxy: %v, want a deadline error", err)
	}

	for {
		ttlResp, err := direct.TimeToLive(ctx, lease.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ttlResp.TTL == -1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("lease %x still alive %v after the cut, TTL %d", lease.ID, time.Since(cut), ttlResp.TTL)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Logf("lease of TTL %ds expired %v after the cut", ttl, time.Since(cut).Round(time.Millisecond))
	resp, err := direct.Get(ctx, "owned")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("key of the expired lease still there: %v", resp.Kvs)
	}

	p.Restore()
	restored := time.Now()
	for {
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := cli.Put(short, "after", "v")
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("client not served %v after the restore: %v", time.Since(restored), err)
		}
	}
	t.Logf("client served again %v after the restore", time.Since(restored).Round(time.Millisecond))
	requireValue(ctx, t, direct, "after", "v")
}
