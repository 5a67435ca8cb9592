package election_test

import (
	"context"
	"fmt"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/turnstile-go/turnstile/election"
	"github.com/turnstile-go/turnstile/etcdlock"
)

// endpoints is the etcd cluster the examples use; the tests start it.
var endpoints []string

// A leader-elected worker: of all the copies of a program running Run on
// one name, one works at a time, and its work stops the moment it loses
// leadership.
func ExampleRun() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	s, err := etcdlock.NewSession(cli) // or a *zklock.Session
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx, stop := context.WithCancel(context.Background())
	err = election.Run(ctx, s, "/elections/compactor", "worker-1", func(ctx context.Context, term int64) error {
		// Lead: pass term to every resource written, which refuses terms
		// older than the newest it has seen. Return when ctx ends.
		fmt.Println("leading, with a term:", term > 0)
		stop() // this example stops after one term
		<-ctx.Done()
		return nil
	})
	fmt.Println("Run returned:", err)
	// Output:
	// leading, with a term: true
	// Run returned: context canceled
}
