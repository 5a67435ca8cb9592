package etcdlock_test

import (
	"context"
	"fmt"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/mutex"
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

// A lock-delay for a resource that cannot check a token: after a holder
// whose session ended, the next holder waits 5 seconds; after an
// Unlock, no one waits.
func ExampleNewMutex_lockDelay() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	s, err := etcdlock.NewSession(cli)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	first := etcdlock.NewMutex(s, "/locks/printer", mutex.WithLockDelay(5*time.Second))
	second := etcdlock.NewMutex(s, "/locks/printer", mutex.WithLockDelay(5*time.Second))
	if err := first.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- second.Lock(ctx) }()
	// An Unlock marks its release, so that the second, once it watches
	// the first, is let in at once; had the first's session ended, the
	// second would wait 5 seconds from when it saw that.
	if err := first.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	fmt.Println("the second holds:", second.Token() > 0)
	if err := second.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: the second holds: true
}

// Who holds a lock and who waits, whichever client they run.
func ExampleSession_Participants() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	s, err := etcdlock.NewSession(cli)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	m := etcdlock.NewMutex(s, "/locks/reports", mutex.WithIdentity("report-builder-1"))
	if err := m.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	defer m.Unlock(ctx)
	ps, err := s.Participants(ctx, "/locks/reports")
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range ps {
		fmt.Println(p.Holds, p.Kind, p.Client, p.Identity, p.Token == m.Token())
	}
	// Output: true exclusive turnstile report-builder-1 true
}
