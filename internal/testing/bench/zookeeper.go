package bench

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/turnstile-go/turnstile/internal/recipe"
	"github.com/turnstile-go/turnstile/internal/testing/zktest"
	"github.com/turnstile-go/turnstile/zklock"
)

// lifetime is the session timeout and lease TTL of every contender: long,
// because a ZooKeeper client pings every third of it, and pings count as
// requests the server received.
const lifetime = 60 * time.Second

// ZooKeeper returns the server of c with turnstile's zklock, go-zookeeper's
// zk.Lock and a herd as contestants. It reads the first node's counters.
func ZooKeeper(ctx context.Context, c *zktest.Cluster) (*Server, error) {
	addrs := c.Servers()
	srvr, err := c.Node(0).FourLetter(ctx, "srvr")
	if err != nil {
		return nil, err
	}
	version, _, _ := strings.Cut(strings.TrimPrefix(srvr, "Zookeeper version: "), ",")
	version, _, _ = strings.Cut(version, "-")
	reader, err := dialZK(addrs)
	if err != nil {
		return nil, err
	}
	dial := func() (*zk.Conn, func(), error) {
		conn, err := dialZK(addrs)
		return conn, conn.Close, err
	}
	connect := func() (*zklock.Session, func(), error) {
		s, err := zklock.Connect(addrs, zklock.WithSessionTimeout(lifetime))
		if err != nil {
			return nil, nil, err
		}
		return s, closer(s), nil
	}
	oursOn := func(s *zklock.Session, name string) Locker { return zklock.NewMutex(s, name) }
	theirsOn := func(conn *zk.Conn, name string) Locker {
		return zkLock{zk.NewLock(conn, name, zk.WorldACL(zk.PermAll))}
	}
	var mu sync.Mutex
	mntrs := 0.0
	return &Server{
		Name:    "ZooKeeper",
		Version: version,
		Contestants: [3]Contestant{
			{Name: "turnstile", Open: sessions(connect, oursOn), Session: session(connect, oursOn)},
			{Name: "zk.Lock", Open: sessions(dial, theirsOn), Session: session(dial, theirsOn)},
			{Name: "herd", Open: sessions(dial, zkHerdOn(1))},
		},
		Semaphores: func(permits int) [2]Contestant {
			return [2]Contestant{
				{Name: "turnstile", Open: sessions(connect, permitOn[*zklock.Session](permits))},
				{Name: "naive", Open: sessions(dial, zkHerdOn(permits))},
			}
		},
		Delayed: func(d time.Duration) Contestant {
			return Contestant{Name: "turnstile", Open: sessions(connect, delayedOn[*zklock.Session](d))}
		},
		Read: func(ctx context.Context) (Counters, error) {
			m, err := c.Node(0).Mntr(ctx)
			if err != nil {
				return Counters{}, err
			}
			v, err := mntrValues(m, "zk_packets_received", "zk_sum_node_deleted_watch_count", "zk_sum_node_changed_watch_count",
				"zk_sum_node_created_watch_count", "zk_sum_node_children_watch_count", "zk_watch_count")
			mu.Lock()
			defer mu.Unlock()
			// Each four-letter word counts as a packet received.
			mntrs++
			return Counters{Requests: v[0] - mntrs, Notifications: v[1] + v[2] + v[3] + v[4], Watches: v[5]}, err
		},
		Queued: func(ctx context.Context, name string) (int, error) {
			children, _, err := reader.Children(name)
			if errors.Is(err, zk.ErrNoNode) {
				return 0, nil
			}
			if err != nil || !slices.Contains(children, recipe.WaitingRoom) {
				return len(children), err
			}
			// A semaphore's waiters queue in a node of its name's.
			waiting, _, err := reader.Children(name + "/" + recipe.WaitingRoom)
			return len(children) - 1 + len(waiting), err
		},
		Close: reader.Close,
	}, nil
}

// session adapts a session's start and a lock over it to a Contestant's
// Session.
func session[S any](start func() (S, func(), error), lock func(s S, name string) Locker) func(context.Context) (func(string) Locker, func(), error) {
	return func(context.Context) (func(string) Locker, func(), error) {
		s, close, err := start()
		if err != nil {
			return nil, nil, err
		}
		return func(name string) Locker { return lock(s, name) }, close, nil
	}
}

// mntrValues reads the named mntr variables as numbers.
func mntrValues(m map[string]string, keys ...string) ([]float64, error) {
	v := make([]float64, len(keys))
	for i, k := range keys {
		var err error
		if v[i], err = strconv.ParseFloat(m[k], 64); err != nil {
			return nil, fmt.Errorf("mntr %s: %w", k, err)
		}
	}
	return v, nil
}

// zkLock is go-zookeeper's lock, whose calls take no context.
type zkLock struct{ l *zk.Lock }

func (z zkLock) Lock(context.Context) error   { return z.l.Lock() }
func (z zkLock) Unlock(context.Context) error { return z.l.Unlock() }

// dialZK returns a connection once the server has granted its session.
// The client connects in the background; not waiting would have every
// contender dial at once, past what the server's listen backlog holds.
func dialZK(addrs []string) (*zk.Conn, error) {
	conn, events, err := zk.Connect(addrs, lifetime, zk.WithLogger(quiet{}))
	if err != nil {
		return nil, err
	}
	timeout := time.After(lifetime)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn, nil
			}
		case <-timeout:
			conn.Close()
			return nil, fmt.Errorf("zk: no session after %v", lifetime)
		}
	}
}

// quiet drops go-zookeeper's log, which reports every connection.
type quiet struct{}

func (quiet) Printf(string, ...any) {}

// zkHerd is the lock everyone writes first: each waiter watches the lock's
// children, all of them, and reads them all again on every change. A
// release, and every arrival too, wakes every waiter. With more than one
// permit it is the naive semaphore: a waiter holds once fewer than
// permits nodes are ahead of it.
type zkHerd struct {
	conn    *zk.Conn
	dir     string
	permits int
	node    string
}

// zkHerdOn returns the herd of permits holders at once on a connection.
func zkHerdOn(permits int) func(*zk.Conn, string) Locker {
	return func(conn *zk.Conn, name string) Locker { return &zkHerd{conn: conn, dir: name, permits: permits} }
}

func (h *zkHerd) Lock(ctx context.Context) error {
	node, err := h.conn.Create(h.dir+"/herd-", nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNoNode) {
		if err = h.makeParents(); err == nil {
			node, err = h.conn.Create(h.dir+"/herd-", nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
		}
	}
	if err != nil {
		return err
	}
	for {
		children, _, changed, err := h.conn.ChildrenW(h.dir)
		if err != nil {
			return err
		}
		if admitted(children, path.Base(node), h.permits) {
			h.node = node
			return nil
		}
		select {
		case ev := <-changed:
			if ev.Err != nil {
				return ev.Err
			}
		case <-ctx.Done():
			return errors.Join(ctx.Err(), h.conn.Delete(node, -1))
		}
	}
}

func (h *zkHerd) Unlock(context.Context) error { return h.conn.Delete(h.node, -1) }

// admitted reports whether self is among children with fewer than
// permits ahead of it. The herd's nodes share their prefix, so that the
// sequence suffix orders them as the server queued them.
func admitted(children []string, self string, permits int) bool {
	ahead, queued := 0, false
	for _, c := range children {
		if c < self {
			ahead++
		}
		queued = queued || c == self
	}
	return queued && ahead < permits
}

func (h *zkHerd) makeParents() error {
	p := ""
	for _, part := range strings.Split(h.dir, "/")[1:] {
		p += "/" + part
		if _, err := h.conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	return nil
}
