package etcdtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestCluster shares one three-member cluster between its subtests, which
// run one after another and each leave every member running, healthy
// and agreeing on a leader, as they found it. The members reach each
// other through proxies, which the subtests that kill or pause one show
// to carry a fail-over.
func TestCluster(t *testing.T) {
	etcdBinary(t) // built, or found, before the clock starts
	start := time.Now()
	c := StartCluster(t, 3, PeerProxies())
	t.Logf("3 members healthy in %v", time.Since(start).Round(time.Millisecond))

	t.Run("Writes", func(t *testing.T) {
		ctx := testContext(t)
		requireSettled(ctx, t, c)
		if _, err := c.Client(t).Put(ctx, "writes", "1"); err != nil {
			t.Fatal(err)
		}
		// Each member alone serves the write, and not from a stale copy.
		for i := range 3 {
			requireValue(ctx, t, c.Client(t, c.Member(i).Endpoint()), "writes", "1")
		}
	})

	t.Run("PauseFollower", func(t *testing.T) {
		ctx := testContext(t)
		leader := requireSettled(ctx, t, c)
		paused := (leader + 1) % 3
		pauseAndResume(ctx, t, c, paused, "pause-follower")
	})

	t.Run("PauseLeader", func(t *testing.T) {
		ctx := testContext(t)
		leader := requireSettled(ctx, t, c)
		pauseAndResume(ctx, t, c, leader, "pause-leader")
	})

	t.Run("KillLeader", func(t *testing.T) {
		ctx := testContext(t)
		leader := requireSettled(ctx, t, c)
		others := c.Client(t, othersThan(c, leader)...)
		if _, err := others.Put(ctx, "kill", "before"); err != nil {
			t.Fatal(err)
		}

		killed := time.Now()
		if err := c.Member(leader).Kill(); err != nil {
			t.Fatal(err)
		}
		next, err := c.WaitLeader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("member %d leads %v after member %d was killed", next, time.Since(killed).Round(time.Millisecond), leader)
		if next == leader {
			t.Fatalf("killed member %d still leads", leader)
		}
		writeUntilServed(ctx, t, others, "kill", "after")

		restarted := time.Now()
		if err := c.Member(leader).Restart(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("member %d back and healthy %v after restart", leader, time.Since(restarted).Round(time.Millisecond))
		// The write it missed while dead reaches it, through its own
		// endpoint alone.
		requireValue(ctx, t, c.Client(t, c.Member(leader).Endpoint()), "kill", "after")
		requireSettled(ctx, t, c)
	})

	t.Run("IsolateFollower", func(t *testing.T) {
		ctx := testContext(t)
		leader := requireSettled(ctx, t, c)
		isolateAndRejoin(ctx, t, c, (leader+1)%3, "isolate-follower")
	})

	t.Run("IsolateLeader", func(t *testing.T) {
		ctx := testContext(t)
		leader := requireSettled(ctx, t, c)
		isolateAndRejoin(ctx, t, c, leader, "isolate-leader")
	})
}

// isolateAndRejoin cuts member i off from the others, shows that they
// agree on a leader among themselves and serve writes, while i still
// answers its own clients from its stale copy, then lets it rejoin and
// shows it catches up.
func isolateAndRejoin(ctx context.Context, t *testing.T, c *Cluster, i int, key string) {
	t.Helper()
	others := c.Client(t, othersThan(c, i)...)
	if _, err := others.Put(ctx, key, "before"); err != nil {
		t.Fatal(err)
	}
	alone := c.Client(t, c.Member(i).Endpoint())
	requireValue(ctx, t, alone, key, "before")
	self, err := c.status.Status(ctx, c.Member(i).Endpoint())
	if err != nil {
		t.Fatal(err)
	}

	isolated := time.Now()
	if err := c.Member(i).Isolate(); err != nil {
		t.Fatal(err)
	}
	for {
		var leaders []uint64
		for _, ep := range othersThan(c, i) {
			if st, err := c.status.Status(ctx, ep); err == nil && st.Leader != 0 && st.Leader != self.Header.MemberId {
				leaders = append(leaders, st.Leader)
			}
		}
		if len(leaders) == 2 && leaders[0] == leaders[1] {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the others agree on no leader but member %d: %v", i, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Logf("the others agree on a leader %v after member %d was isolated", time.Since(isolated).Round(time.Millisecond), i)
	writeUntilServed(ctx, t, others, key, "during")
	resp, err := alone.Get(ctx, key, clientv3.WithSerializable())
	if err != nil {
		t.Fatalf("the isolated member no longer answers its client: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "before" {
		t.Fatalf("the isolated member answered %v, which it cannot know", resp.Kvs)
	}

	if err := c.Member(i).Rejoin(); err != nil {
		t.Fatal(err)
	}
	requireValue(ctx, t, alone, key, "during")
	requireSettled(ctx, t, c)
}

// pauseAndResume freezes member i, shows the others go on serving
// writes, then thaws it and shows it catches up.
func pauseAndResume(ctx context.Context, t *testing.T, c *Cluster, i int, key string) {
	t.Helper()
	others := c.Client(t, othersThan(c, i)...)
	if _, err := others.Put(ctx, key, "before"); err != nil {
		t.Fatal(err)
	}

	paused := time.Now()
	if err := c.Member(i).Pause(); err != nil {
		t.Fatal(err)
	}
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("member %d leads %v after member %d was paused", leader, time.Since(paused).Round(time.Millisecond), i)
	if leader == i {
		t.Fatalf("paused member %d still leads", i)
	}
	writeUntilServed(ctx, t, others, key, "during")

	if err := c.Member(i).Resume(); err != nil {
		t.Fatal(err)
	}
	requireValue(ctx, t, c.Client(t, c.Member(i).Endpoint()), key, "during")
	requireSettled(ctx, t, c)
}

// writeUntilServed puts key until the cluster serves a write — an
// election may still be settling — and then shows that a run of further
// writes is served without a failure.
func writeUntilServed(ctx context.Context, t *testing.T, cli *clientv3.Client, key, value string) {
	t.Helper()
	start := time.Now()
	for {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Put(wctx, key, value)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no write served in %v: %v", time.Since(start), err)
		}
	}
	for i := range 20 {
		if _, err := cli.Put(ctx, fmt.Sprintf("%s/%d", key, i), value); err != nil {
			t.Fatal(err)
		}
	}
	// The last write is the value the paused or killed member must catch
	// up with.
	if _, err := cli.Put(ctx, key, value); err != nil {
		t.Fatal(err)
	}
}

// requireSettled waits until every member runs and all agree on a
// leader, and returns it.
func requireSettled(ctx context.Context, t *testing.T, c *Cluster) int {
	t.Helper()
	for i := range 3 {
		if !c.Member(i).proc.Live() {
			t.Fatalf("member %d is not running", i)
		}
	}
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return leader
}

func othersThan(c *Cluster, i int) []string {
	var eps []string
	for j, ep := range c.Endpoints() {
		if j != i {
			eps = append(eps, ep)
		}
	}
	return eps
}
