package rwlock_test

import (
	"context"
	"fmt"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/rwlock"
)

// endpoints is the etcd cluster the examples use; the tests start it.
var endpoints []string

// Readers of a shared configuration hold the read lock together; the
// process that rewrites it takes the write lock, which waits for the
// readers ahead of it and holds back those that come after it.
func ExampleRWMutex() {
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
	reader, writer := rwlock.New(s, "/locks/config"), rwlock.New(s, "/locks/config")
	if err := reader.RLock(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("reading, mode:", reader.Mode())
	read := reader.Token()
	done := make(chan error)
	go func() { done <- writer.Lock(ctx) }() // waits for the reader
	if err := reader.RUnlock(ctx); err != nil {
		log.Fatal(err)
	}
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	fmt.Println("writing, mode:", writer.Mode(), "token after the reader's:", writer.Token() > read)
	if err := writer.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// reading, mode: shared
	// writing, mode: exclusive token after the reader's: true
}
