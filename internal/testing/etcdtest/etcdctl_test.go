package etcdtest

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type heldOrErr struct {
	h   *Held
	err error
}

// TestEtcdctl shares one member between its subtests, each on a name of
// its own.
func TestEtcdctl(t *testing.T) {
	Etcdctl(t) // built, or found, before the clock starts
	e := StartServer(t)
	cli := e.Client(t)
	eps := e.Endpoints()

	t.Run("Lock", func(t *testing.T) {
		ctx := testContext(t)
		a, err := EtcdctlLock(ctx, t, eps, "lock")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(a.Key(), "lock/") {
			t.Fatalf("etcdctl holds %q, not a key under lock/", a.Key())
		}
		requireKeys(ctx, t, cli, "lock/", 1)

		var released atomic.Bool
		second := make(chan heldOrErr, 1)
		go func() {
			h, err := EtcdctlLock(ctx, t, eps, "lock")
			if err == nil && !released.Load() {
				err = errors.New("acquired while the first still held")
			}
			second <- heldOrErr{h, err}
		}()
		requireKeys(ctx, t, cli, "lock/", 2) // the second waits in line

		released.Store(true)
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		b := <-second
		if b.err != nil {
			t.Fatal(b.err)
		}
		requireKeys(ctx, t, cli, "lock/", 1)
		if err := b.h.Release(ctx); err != nil {
			t.Fatal(err)
		}
		requireKeys(ctx, t, cli, "lock/", 0)
	})

	// A waiter given up on leaves no key in line: the next one in is
	// not held up until its lease lapses.
	t.Run("LockCancel", func(t *testing.T) {
		ctx := testContext(t)
		a, err := EtcdctlLock(ctx, t, eps, "cancel")
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		second := make(chan error, 1)
		go func() {
			_, err := EtcdctlLock(wctx, t, eps, "cancel")
			second <- err
		}()
		requireKeys(ctx, t, cli, "cancel/", 2)
		cancel()
		if err := <-second; !errors.Is(err, context.Canceled) {
			t.Fatalf("waiter whose context ended returned %v", err)
		}
		requireKeys(ctx, t, cli, "cancel/", 1)
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Elect", func(t *testing.T) {
		ctx := testContext(t)
		a, err := EtcdctlElect(ctx, t, eps, "elect", "a")
		if err != nil {
			t.Fatal(err)
		}
		requireLeader(ctx, t, eps, "elect", "a")

		second := make(chan heldOrErr, 1)
		go func() {
			h, err := EtcdctlElect(ctx, t, eps, "elect", "b")
			second <- heldOrErr{h, err}
		}()
		requireKeys(ctx, t, cli, "elect/", 2)
		requireLeader(ctx, t, eps, "elect", "a")

		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		b := <-second
		if b.err != nil {
			t.Fatal(b.err)
		}
		if b.h.Key() == a.Key() {
			t.Fatalf("both candidates led with %s", a.Key())
		}
		requireLeader(ctx, t, eps, "elect", "b")
		if err := b.h.Release(ctx); err != nil {
			t.Fatal(err)
		}
		requireKeys(ctx, t, cli, "elect/", 0)
	})
}

func requireLeader(ctx context.Context, t *testing.T, eps []string, name, want string) {
	t.Helper()
	got, err := EtcdctlLeader(ctx, t, eps, name)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("etcdctl sees %q lead %s, want %q", got, name, want)
	}
}

// requireKeys waits until n keys are under prefix, as there are once a
// waiter has joined the line or a holder has let go.
func requireKeys(ctx context.Context, t *testing.T, cli *clientv3.Client, prefix string, n int64) {
	t.Helper()
	for {
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d keys under %s, want %d", resp.Count, prefix, n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
