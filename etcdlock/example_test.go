package etcdlock_test

import (
	"context"
	"fmt"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile/etcdlock"
)

// endpoints is the cluster the examples use; the tests start it.
var endpoints []string

func ExampleMutex() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	s, err := etcdlock.NewSession(cli, etcdlock.WithTTL(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	m := etcdlock.NewMutex(s, "/locks/orders")
	if err := m.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	// Hand the token to the resource, which refuses tokens older than
	// the newest it has seen; stop as soon as the hold is lost.
	select {
	case <-m.Lost():
		log.Print("lost the lock; stopping")
	default:
		fmt.Println("holding /locks/orders with a token:", m.Token() > 0)
	}
	if err := m.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: holding /locks/orders with a token: true
}
