// Quickstart: a few workers take turns holding one lock, each hold with
// its fencing token.
//
//	go run ./examples/quickstart                  # on an etcd started in this process
//	go run ./examples/quickstart -etcd host:2379  # on your etcd cluster
//	go run ./examples/quickstart -zk host:2181    # on your ZooKeeper ensemble
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/internal/testing/embedetcd"
	"github.com/turnstile-go/turnstile/zklock"
)

func main() {
	if err := run(context.Background(), os.Stdout, os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

// mutex is what the two backends' Mutex types have in common here.
type mutex interface {
	Lock(ctx context.Context) error
	Unlock(ctx context.Context) error
	Token() int64
}

func run(ctx context.Context, out io.Writer, args []string) error {
	flags := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	etcdAddr := flags.String("etcd", os.Getenv("ETCD_ENDPOINTS"), "etcd endpoints, comma-separated (default: start one in this process)")
	zkAddr := flags.String("zk", os.Getenv("ZK_SERVERS"), "ZooKeeper servers, comma-separated (instead of etcd)")
	workers := flags.Int("workers", 4, "how many workers contend")
	rounds := flags.Int("rounds", 2, "how many times each worker takes the lock")
	name := flags.String("name", "/locks/quickstart", "the lock's name")
	if err := flags.Parse(args); err != nil {
		return err
	}

	newMutex, backend, closeAll, err := connect(*etcdAddr, *zkAddr, out)
	if err != nil {
		return err
	}
	defer closeAll()
	fmt.Fprintf(out, "%d workers take %s %d times each, on %s\n", *workers, *name, *rounds, backend)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var tokens []int64 // in the order the lock was granted
	errs := make(chan error, *workers)
	for w := 1; w <= *workers; w++ {
		m, err := newMutex(*name)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range *rounds {
				asked := time.Now()
				if err := m.Lock(ctx); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				mu.Lock()
				tokens = append(tokens, m.Token())
				mu.Unlock()
				fmt.Fprintf(out, "worker %d holds %s with token %d after waiting %v\n",
					w, *name, m.Token(), time.Since(asked).Round(time.Millisecond))
				time.Sleep(20 * time.Millisecond) // the work the lock protects
				if err := m.Unlock(ctx); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			return fmt.Errorf("token %d granted after token %d: fencing would break", tokens[i], tokens[i-1])
		}
	}
	fmt.Fprintf(out, "done: %d holds, each with a larger token than the one before\n", len(tokens))
	return nil
}

// connect returns a constructor of mutexes, each on a session of its
// own, as separate processes would have, and a function that closes
// everything.
func connect(etcdAddr, zkAddr string, out io.Writer) (func(string) (mutex, error), string, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if zkAddr != "" {
		servers := strings.Split(zkAddr, ",")
		return func(name string) (mutex, error) {
			s, err := zklock.Connect(servers, zklock.WithSessionTimeout(10*time.Second))
			if err != nil {
				return nil, err
			}
			closers = append(closers, func() { s.Close() })
			return zklock.NewMutex(s, name), nil
		}, "ZooKeeper at " + zkAddr, closeAll, nil
	}

	backend := "etcd at " + etcdAddr
	if etcdAddr == "" {
		addr, stop, err := embedetcd.StartTemp()
		if err != nil {
			closeAll()
			return nil, "", nil, err
		}
		closers = append(closers, stop)
		etcdAddr, backend = addr, "an etcd started in this process ("+addr+")"
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(etcdAddr, ","), DialTimeout: 5 * time.Second})
	if err != nil {
		closeAll()
		return nil, "", nil, err
	}
	closers = append(closers, func() { cli.Close() })
	return func(name string) (mutex, error) {
		s, err := etcdlock.NewSession(cli, etcdlock.WithTTL(10*time.Second))
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { s.Close() })
		return etcdlock.NewMutex(s, name), nil
	}, backend, closeAll, nil
}
