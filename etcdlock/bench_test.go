package etcdlock_test

import (
	"testing"

	"github.com/turnstile-go/turnstile/internal/testing/bench"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
)

// BenchmarkMutex runs turnstile's Mutex beside etcd's concurrency.Mutex
// and a herd-prone lock on the same member in the same run; see
// locktest.Bench for the scenarios.
func BenchmarkMutex(b *testing.B) {
	srv, err := bench.Etcd(shared.Get(b).Endpoint())
	locktest.Bench(b, srv, err)
}
