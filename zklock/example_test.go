package zklock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/zklock"
)

// servers is the ensemble the examples use; the tests start it.
var servers []string

func ExampleMutex() {
	s, err := zklock.Connect(servers, zklock.WithSessionTimeout(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	m := zklock.NewMutex(s, "/locks/orders")
	if err := m.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	// Hand the token to the resource, which refuses tokens older than
	// the newest it has seen; stop as soon as the hold is lost.
	token := m.Token()
	select {
	case <-m.Lost():
		log.Print("lost the lock; stopping")
	default:
		fmt.Println("holding /locks/orders with a token:", token > 0)
	}
	if err := m.Unlock(ctx); err != nil && !errors.Is(err, turnstile.ErrLost) {
		log.Fatal(err)
	}
	// Output: holding /locks/orders with a token: true
}

func ExampleMutex_TryLock() {
	a, err := zklock.Connect(servers)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	b, err := zklock.Connect(servers)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	ctx := context.Background()
	held := zklock.NewMutex(a, "/locks/report")
	if err := held.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	err = zklock.NewMutex(b, "/locks/report").TryLock(ctx)
	fmt.Println(errors.Is(err, turnstile.ErrLocked))
	if err := held.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: true
}
