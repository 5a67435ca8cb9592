// Fencing: why a lock's token must be checked at the resource it
// protects. Client 1 takes the lock and is paused (cut off from the
// coordination service) for longer than its session lives. Client 2 takes
// the lock with a larger token and writes to a storage service. Client 1
// wakes, still believing it holds, and writes with its old token: the
// storage, guarded by a turnstile.Fence, refuses it.
//
//	go run ./examples/fencing                  # on an etcd started in this process
//	go run ./examples/fencing -etcd host:2379  # on an etcd cluster
//	go run ./examples/fencing -zk host:2181    # on ZooKeeper
//
// It exits with status 0 only if the late write was refused.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/examples/internal/session"
	"github.com/turnstile-go/turnstile/internal/testing/embedetcd"
	"github.com/turnstile-go/turnstile/internal/testing/proxy"
	"github.com/turnstile-go/turnstile/mutex"
)

func main() {
	if err := run(context.Background(), os.Stdout, os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

// lifetime is the session timeout, or lease TTL: how long a paused holder
// keeps the lock.
const lifetime = 2 * time.Second

// header carries a hold's sequencer to the storage.
const header = "Turnstile-Sequencer"

// A service is where the clients hold the lock: the first server of
// ZooKeeper or etcd, which a proxy can stand in front of.
type service struct {
	what string
	zk   bool
	addr string
}

// open opens a session of its own on the service at addr (the server
// or a proxy to it), and returns a mutex on name, the session's validity
// check, and how to close it all.
func (svc service) open(addr, name string) (*mutex.Mutex, func(context.Context, turnstile.Sequencer) error, func(), error) {
	etcdAddr, zkAddr := addr, ""
	if svc.zk {
		etcdAddr, zkAddr = "", addr
	}
	s, closeAll, err := session.Open(etcdAddr, zkAddr, lifetime)
	if err != nil {
		return nil, nil, nil, err
	}
	check := s.(interface {
		Check(context.Context, turnstile.Sequencer) error
	}).Check
	return mutex.New(s, name), check, closeAll, nil
}

func run(ctx context.Context, w io.Writer, args []string) error {
	flags := flag.NewFlagSet("fencing", flag.ContinueOnError)
	etcdAddr := flags.String("etcd", os.Getenv("ETCD_ENDPOINTS"), "etcd endpoint (default: start one in this process)")
	zkAddr := flags.String("zk", os.Getenv("ZK_SERVERS"), "ZooKeeper server (instead of etcd)")
	name := flags.String("name", "/locks/fencing-demo", "the lock's name")
	if err := flags.Parse(args); err != nil {
		return err
	}
	out := &timeline{w: w, start: time.Now()}
	var svc service
	switch {
	case *zkAddr != "":
		svc = service{what: "ZooKeeper at " + *zkAddr, zk: true, addr: strings.Split(*zkAddr, ",")[0]}
	case *etcdAddr != "":
		svc = service{what: "etcd at " + *etcdAddr, addr: strings.Split(*etcdAddr, ",")[0]}
	default:
		addr, stop, err := embedetcd.StartTemp()
		if err != nil {
			return err
		}
		defer stop()
		svc = service{what: "an etcd started in this process (" + addr + ")", addr: addr}
	}
	out.printf("lock %s on %s; sessions live %v", *name, svc.what, lifetime)
	return scenario(ctx, out, svc, *name)
}

func scenario(ctx context.Context, out *timeline, svc service, name string) error {
	store, err := startStorage(out)
	if err != nil {
		return err
	}
	defer store.close()

	// Client 1 reaches the coordination service through a proxy that can
	// cut it off, as a pause would: nothing it sends arrives, its session
	// is not renewed. The storage it still reaches directly.
	p, err := proxy.Start(svc.addr)
	if err != nil {
		return err
	}
	defer p.Close()
	m1, _, close1, err := svc.open(p.Addr(), name)
	if err != nil {
		return err
	}
	defer close1()
	if err := m1.Lock(ctx); err != nil {
		return err
	}
	seq1 := m1.Sequencer()
	out.printf("client 1 holds the lock: token %d", seq1.Token)
	if err := store.write(seq1, "written by client 1"); err != nil {
		return err
	}

	p.Cut()
	out.printf("client 1 pauses (a GC pause, a stalled VM): it can neither renew its session nor look at Lost()")

	m2, check, close2, err := svc.open(svc.addr, name)
	if err != nil {
		return err
	}
	defer close2()
	out.printf("client 2 asks for the lock and waits")
	t0 := time.Now()
	if err := m2.Lock(ctx); err != nil {
		return err
	}
	seq2 := m2.Sequencer()
	out.printf("client 2 holds the lock after %.1fs: client 1's session expired; token %d", time.Since(t0).Seconds(), seq2.Token)
	if err := store.write(seq2, "written by client 2"); err != nil {
		return err
	}

	out.printf("client 1 wakes, still believing it holds, and writes with token %d", seq1.Token)
	late := store.write(seq1, "late write by client 1")
	if !errors.Is(late, turnstile.ErrStaleToken) {
		return fmt.Errorf("the storage took the late write (%v): the fence failed", late)
	}
	out.printf("the service agrees: %v", check(ctx, seq1))
	p.Restore()
	select {
	case <-m1.Lost():
		out.printf("client 1 sees Lost() closed; its Unlock says: %v", m1.Unlock(ctx))
	case <-time.After(2 * lifetime):
		return errors.New("client 1 never saw its hold lost")
	}
	if err := m2.Unlock(ctx); err != nil {
		return err
	}
	if got := store.value(); got != "written by client 2" {
		return fmt.Errorf("the storage holds %q, want client 2's write", got)
	}
	out.printf("done: the storage holds %q; the late write was refused", store.value())
	return nil
}

// storage is a service guarded by a Fence: it reads the writer's
// sequencer from a header and writes under the Fence, so that a write
// with an older token than one already admitted is refused.
type storage struct {
	url   string
	srv   *http.Server
	fence turnstile.Fence
	mu    sync.Mutex
	data  string
	out   *timeline
}

func startStorage(out *timeline) (*storage, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &storage{url: "http://" + ln.Addr().String() + "/data", out: out}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.put), ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	out.printf("storage listens on %s, fenced", ln.Addr())
	return s, nil
}

func (s *storage) put(w http.ResponseWriter, r *http.Request) {
	seq, err := turnstile.ParseSequencer(r.Header.Get(header))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	err = s.fence.Do(seq, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.data = string(body)
		return nil
	})
	if err != nil {
		s.out.printf("storage refuses %q: %v", body, err)
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	s.out.printf("storage accepts %q from token %d", body, seq.Token)
}

// write sends data with seq, and returns an error matching
// turnstile.ErrStaleToken if the storage refused the token.
func (s *storage) write(seq turnstile.Sequencer, data string) error {
	req, err := http.NewRequest(http.MethodPut, s.url, strings.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set(header, seq.String())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusConflict:
		return fmt.Errorf("%w (storage said: %s)", turnstile.ErrStaleToken, strings.TrimSpace(string(msg)))
	}
	return fmt.Errorf("storage: %s: %s", resp.Status, msg)
}

func (s *storage) value() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

func (s *storage) close() { s.srv.Close() }

// timeline prints lines stamped with the time since the start, from
// several goroutines.
type timeline struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (t *timeline) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%6.2fs  %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}
