package semaphore_test

import (
	"context"
	"fmt"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/semaphore"
)

// endpoints is the etcd cluster the examples use; the tests start it.
var endpoints []string

// At most two migrations run at once, across every process that uses
// the name; a third waits for a permit.
func ExampleSemaphore() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	s, err := etcdlock.NewSession(cli) // or a *zklock.Session: the same code runs on ZooKeeper
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	var sems []*semaphore.Semaphore
	for range 3 {
		sems = append(sems, semaphore.New(s, "/permits/migrations", 2))
	}
	for _, sem := range sems[:2] {
		if err := sem.Acquire(ctx); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("two hold:", sems[0].Token() > 0, sems[1].Token() > sems[0].Token())
	third := make(chan error)
	go func() { third <- sems[2].Acquire(ctx) }() // waits for a permit
	if err := sems[0].Release(ctx); err != nil {
		log.Fatal(err)
	}
	if err := <-third; err != nil {
		log.Fatal(err)
	}
	fmt.Println("the third holds, with a later token:", sems[2].Token() > sems[1].Token())
	for _, sem := range sems[1:] {
		if err := sem.Release(ctx); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// two hold: true true
	// the third holds, with a later token: true
}
