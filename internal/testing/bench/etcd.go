package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/version"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/internal/testing/etcdtest"
)

// Etcd returns the etcd member at endpoint (host:port) with turnstile's
// etcdlock, etcd's concurrency.Mutex and a herd as contestants. Its
// counters come from the member's metrics, which an embedded member
// shares with everything else in the process: run one at a time.
func Etcd(endpoint string) (*Server, error) {
	reader, err := clientv3.New(etcdtest.ClientConfig(endpoint))
	if err != nil {
		return nil, err
	}
	return &Server{
		Name:    "etcd",
		Version: version.Version,
		Contestants: [3]Contestant{
			{Name: "turnstile", Open: openEtcd(endpoint, ours, oursOn), Session: etcdSession(endpoint, ours, oursOn)},
			{Name: "concurrency.Mutex", Open: openEtcd(endpoint, leased, theirsOn), Session: etcdSession(endpoint, leased, theirsOn)},
			{Name: "herd", Open: openEtcdApart(endpoint, leased, etcdHerdOn(1))},
		},
		// A semaphore's waiting room is under its prefix: Queued counts
		// its waiters.
		Semaphores: func(permits int) [2]Contestant {
			return [2]Contestant{
				{Name: "turnstile", Open: openEtcd(endpoint, ours, permitOn[*etcdlock.Session](permits))},
				{Name: "naive", Open: openEtcd(endpoint, leased, etcdNaiveOn(permits))},
			}
		},
		Delayed: func(d time.Duration) Contestant {
			return Contestant{Name: "turnstile", Open: openEtcd(endpoint, ours, delayedOn[*etcdlock.Session](d))}
		},
		Read: func(ctx context.Context) (Counters, error) {
			var c Counters
			var errs [3]error
			// Streams (watches, lease keep-alives) are counted when they
			// end, if ever: unary calls are the requests.
			c.Requests, errs[0] = etcdtest.Metric(ctx, endpoint, "grpc_server_handled_total", map[string]string{"grpc_type": "unary"})
			c.Notifications, errs[1] = etcdtest.Metric(ctx, endpoint, "etcd_debugging_mvcc_events_total", nil)
			c.Watches, errs[2] = etcdtest.Metric(ctx, endpoint, "etcd_debugging_mvcc_watcher_total", nil)
			return c, errors.Join(errs[:]...)
		},
		Queued: func(ctx context.Context, name string) (int, error) {
			resp, err := reader.Get(ctx, name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil {
				return 0, err
			}
			return int(resp.Count), nil
		},
		Put: func(ctx context.Context, key string) error {
			_, err := reader.Put(ctx, key, "x")
			return err
		},
		Close: func() { reader.Close() },
	}, nil
}

func ours(cli *clientv3.Client) (*etcdlock.Session, error) {
	return etcdlock.NewSession(cli, etcdlock.WithTTL(lifetime))
}

func oursOn(s *etcdlock.Session, name string) Locker { return etcdlock.NewMutex(s, name) }

func theirsOn(s *concurrency.Session, name string) Locker { return concurrency.NewMutex(s, name) }

// leased is the session etcd's concurrency package offers: a lease kept
// alive.
func leased(cli *clientv3.Client) (*concurrency.Session, error) {
	return concurrency.NewSession(cli, concurrency.WithTTL(int(lifetime.Seconds())))
}

// openEtcd opens each contender as a session (a lease) of its own, on one
// client for the round, as a program with many locks would.
func openEtcd[S interface{ Close() error }](endpoint string, session func(*clientv3.Client) (S, error), lock func(s S, name string) Locker) func(context.Context, string, int) ([]Locker, func(), error) {
	return func(ctx context.Context, name string, n int) ([]Locker, func(), error) {
		cli, err := clientv3.New(etcdtest.ClientConfig(endpoint))
		if err != nil {
			return nil, nil, err
		}
		open := sessions(func() (S, func(), error) {
			s, err := session(cli)
			return s, closer(s), err
		}, lock)
		ls, closeAll, err := open(ctx, name, n)
		if err != nil {
			cli.Close()
			return nil, nil, err
		}
		return ls, func() { closeAll(); cli.Close() }, nil
	}
}

// openEtcdApart opens each contender as a session on a client of its own.
// The herd's contenders need theirs: a client creates its watches one
// at a time, and behind a herd's stream of events 256 waiters sharing
// one took minutes to start watching, and so to queue.
func openEtcdApart[S interface{ Close() error }](endpoint string, session func(*clientv3.Client) (S, error), lock func(s S, name string) Locker) func(context.Context, string, int) ([]Locker, func(), error) {
	return sessions(func() (S, func(), error) {
		var none S
		cli, err := clientv3.New(etcdtest.ClientConfig(endpoint))
		if err != nil {
			return none, nil, err
		}
		s, err := session(cli)
		if err != nil {
			cli.Close()
			return none, nil, err
		}
		return s, func() { closer(s)(); cli.Close() }, nil
	}, lock)
}

// etcdSession opens a session on a client of its own.
func etcdSession[S interface{ Close() error }](endpoint string, session func(*clientv3.Client) (S, error), lock func(s S, name string) Locker) func(context.Context) (func(string) Locker, func(), error) {
	return func(context.Context) (func(string) Locker, func(), error) {
		cli, err := clientv3.New(etcdtest.ClientConfig(endpoint))
		if err != nil {
			return nil, nil, err
		}
		s, err := session(cli)
		if err != nil {
			cli.Close()
			return nil, nil, err
		}
		return func(name string) Locker { return lock(s, name) }, func() { s.Close(); cli.Close() }, nil
	}
}

// etcdHerd is the lock everyone writes first: each waiter watches every
// key under the prefix, and reads them all again on every change. A
// release, and every arrival too, wakes every waiter. A waiter holds
// once fewer than permits keys are ahead of it: 1 for the lock, more for
// etcdNaive, which reads the queue as it does.
type etcdHerd struct {
	cli     *clientv3.Client
	lease   clientv3.LeaseID
	prefix  string
	permits int
	key     string
}

// etcdHerdOn returns the herd of permits holders at once on a session.
func etcdHerdOn(permits int) func(*concurrency.Session, string) Locker {
	return func(s *concurrency.Session, name string) Locker {
		return &etcdHerd{cli: s.Client(), lease: s.Lease(), prefix: name + "/", permits: permits}
	}
}

func (h *etcdHerd) Lock(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Watching from before the put misses no change after the read.
	changes := h.cli.Watch(wctx, h.prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if w, ok := <-changes; watchErr(w, ok) != nil {
		return watchErr(w, ok)
	}
	key := fmt.Sprintf("%s%x", h.prefix, h.lease)
	if _, err := h.cli.Put(ctx, key, "", clientv3.WithLease(h.lease)); err != nil {
		return err
	}
	for {
		if held, err := h.holds(ctx, key); held || err != nil {
			return err
		}
		// A waiter given up leaves its key to the session's end.
		if err := next(ctx, changes); err != nil {
			return err
		}
	}
}

func (h *etcdHerd) Unlock(ctx context.Context) error {
	_, err := h.cli.Delete(ctx, h.key)
	return err
}

// holds reads every key under the prefix, in the order of their
// creation, and holds if key is among the first permits.
func (h *etcdHerd) holds(ctx context.Context, key string) (bool, error) {
	resp, err := h.cli.Get(ctx, h.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return false, err
	}
	for _, kv := range resp.Kvs[:min(h.permits, len(resp.Kvs))] {
		if string(kv.Key) == key {
			h.key = key
			return true, nil
		}
	}
	return false, nil
}

// etcdNaive is the naive semaphore: a waiter puts its key and reads the
// queue, and holds if fewer than permits keys are ahead of it; if not,
// it watches every key under the prefix, and reads them all again on
// every change. Unlike the herd lock it joins before it watches: a
// client creates its watches one at a time, and contenders that let go
// at once would otherwise wait there, out of the queue and of the herd.
type etcdNaive struct{ etcdHerd }

// etcdNaiveOn returns the naive semaphore of permits on a session.
func etcdNaiveOn(permits int) func(*concurrency.Session, string) Locker {
	return func(s *concurrency.Session, name string) Locker {
		return &etcdNaive{etcdHerd{cli: s.Client(), lease: s.Lease(), prefix: name + "/", permits: permits}}
	}
}

func (n *etcdNaive) Lock(ctx context.Context) error {
	key := fmt.Sprintf("%s%x", n.prefix, n.lease)
	if _, err := n.cli.Put(ctx, key, "", clientv3.WithLease(n.lease)); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var changes clientv3.WatchChan
	for {
		if held, err := n.holds(ctx, key); held || err != nil {
			return err
		}
		if changes == nil {
			// Watching from now, and reading again once the watch is
			// created, misses no change.
			changes = n.cli.Watch(wctx, n.prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		}
		// A waiter given up leaves its key to the session's end.
		if err := next(ctx, changes); err != nil {
			return err
		}
	}
}

// next waits for the next change a watch reports, or for ctx's end.
func next(ctx context.Context, changes clientv3.WatchChan) error {
	select {
	case w, ok := <-changes:
		return watchErr(w, ok)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// watchErr reports a watch that ended or failed.
func watchErr(w clientv3.WatchResponse, ok bool) error {
	if !ok {
		return errors.New("watch ended")
	}
	return w.Err()
}
