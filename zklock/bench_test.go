package zklock_test

import (
	"context"
	"testing"

	"github.com/turnstile-go/turnstile/internal/testing/bench"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
)

// BenchmarkMutex runs turnstile's Mutex beside go-zookeeper's zk.Lock
// and a herd-prone lock on the same server in the same run; see
// locktest.Bench for the scenarios.
func BenchmarkMutex(b *testing.B) {
	srv, err := bench.ZooKeeper(context.Background(), shared.Get(b))
	locktest.Bench(b, srv, err)
}
