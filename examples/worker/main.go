// Worker: a leader-elected worker. Of all the copies running on one
// election name, one works at a time; when it dies or is cut off, the
// next one takes over with a larger term.
//
//	go run ./examples/worker                    # three copies in this process on an etcd started in it; the first leader crashes
//	go run ./examples/worker -etcd host:2379    # one copy: start several, then kill the one that works
//	go run ./examples/worker -zk host:2181      # the same on ZooKeeper
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/election"
	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/examples/internal/session"
	"github.com/turnstile-go/turnstile/internal/testing/embedetcd"
	"github.com/turnstile-go/turnstile/internal/testing/syncbuf"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// lifetime is the session timeout, or lease TTL: how long a crashed
// leader keeps leadership before the next worker takes over.
const lifetime = 2 * time.Second

func run(ctx context.Context, out io.Writer, args []string) error {
	flags := flag.NewFlagSet("worker", flag.ContinueOnError)
	etcdAddr := flags.String("etcd", os.Getenv("ETCD_ENDPOINTS"), "etcd endpoints, comma-separated (default: start one in this process and run three copies)")
	zkAddr := flags.String("zk", os.Getenv("ZK_SERVERS"), "ZooKeeper servers, comma-separated (instead of etcd)")
	name := flags.String("name", "/elections/worker", "the election's name")
	host, _ := os.Hostname()
	id := flags.String("id", fmt.Sprintf("%s-%d", host, os.Getpid()), "this copy's id")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *etcdAddr == "" && *zkAddr == "" {
		return demo(ctx, out, *name)
	}
	s, closeAll, err := session.Open(*etcdAddr, *zkAddr, lifetime)
	if err != nil {
		return err
	}
	defer closeAll()
	fmt.Fprintf(out, "%s campaigns for %s\n", *id, *name)
	return election.Run(ctx, s, *name, *id, func(ctx context.Context, term int64) error {
		return work(ctx, out, *id, term)
	})
}

// work is the leader's job: here, a heartbeat until leadership ends. A
// real job passes term to every resource it writes, which refuses terms
// older than the newest it has seen.
func work(ctx context.Context, out io.Writer, id string, term int64) error {
	fmt.Fprintf(out, "%s leads with term %d\n", id, term)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			fmt.Fprintf(out, "%s works (term %d)\n", id, term)
		case <-ctx.Done():
			fmt.Fprintf(out, "%s stops working (term %d)\n", id, term)
			return nil
		}
	}
}

// demo runs three copies on an etcd started in this process, each with a
// client of its own as separate processes would have. The first leader
// crashes after a while: its client stops talking to the server without
// revoking its lease, as a killed process would, and the next copy takes
// over once the lease has expired. The demo ends once that one has worked.
func demo(ctx context.Context, w io.Writer, name string) error {
	out := &syncbuf.Writer{W: w} // three workers print
	addr, stop, err := embedetcd.StartTemp()
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(out, "three workers campaign for %s on an etcd started in this process (%s)\n", name, addr)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var terms []int64
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("worker-%d", i)
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second})
		if err != nil {
			return err
		}
		s, err := etcdlock.NewSession(cli, etcdlock.WithTTL(lifetime))
		if err != nil {
			cli.Close()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cli.Close()
			defer s.Close()
			err := election.Run(ctx, s, name, id, func(wctx context.Context, term int64) error {
				mu.Lock()
				terms = append(terms, term)
				first := len(terms) == 1
				mu.Unlock()
				go func() {
					select {
					case <-time.After(1200 * time.Millisecond):
					case <-wctx.Done():
						return
					}
					if first {
						fmt.Fprintf(out, "%s crashes\n", id)
						cli.Close()
					} else {
						cancel() // the demo has shown a fail-over
					}
				}()
				return work(wctx, out, id, term)
			})
			if errors.Is(err, turnstile.ErrLost) {
				fmt.Fprintf(out, "%s is out: %v\n", id, err)
				err = nil
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	if len(terms) < 2 || terms[1] <= terms[0] {
		return fmt.Errorf("terms %v: want a fail-over to a larger term", terms)
	}
	fmt.Fprintf(out, "done: leadership passed from term %d to term %d\n", terms[0], terms[1])
	return nil
}
