package etcdlock_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/turnstile-go/turnstile/etcdlock"
	"github.com/turnstile-go/turnstile/internal/etcdtest"
	"github.com/turnstile-go/turnstile/internal/locktest"
)

// The benchmarks run turnstile's Mutex beside etcd's concurrency.Mutex
// on the same server in the same run. Each contender has a session
// (lease) of its own on a client shared by the contestant.
func contestants(b *testing.B) [2]locktest.Contestant {
	ctx := context.Background()
	return [2]locktest.Contestant{
		{Name: "turnstile", Lockers: func(b *testing.B, name string, n int) []locktest.BenchLocker {
			cli := server(b).Client(b)
			ls := make([]locktest.BenchLocker, n)
			for i := range ls {
				m := etcdlock.NewMutex(session(b, cli, etcdlock.WithTTL(10*time.Second)), name)
				ls[i] = locktest.BenchLocker{Lock: func() error { return m.Lock(ctx) }, Unlock: func() error { return m.Unlock(ctx) }}
			}
			return ls
		}},
		{Name: "concurrency.Mutex", Lockers: func(b *testing.B, name string, n int) []locktest.BenchLocker {
			cli := server(b).Client(b)
			ls := make([]locktest.BenchLocker, n)
			for i := range ls {
				s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
				require.NoError(b, err)
				b.Cleanup(func() { s.Close() })
				m := concurrency.NewMutex(s, name)
				ls[i] = locktest.BenchLocker{Lock: func() error { return m.Lock(ctx) }, Unlock: func() error { return m.Unlock(ctx) }}
			}
			return ls
		}},
	}
}

// serverWork reads, from the server's own metrics, the requests it
// answered (streams aside) and the watch events it sent.
func serverWork(b *testing.B) []locktest.Meter {
	metric := func(name string, labels map[string]string) func(*testing.B) float64 {
		return func(b *testing.B) float64 {
			v, err := etcdtest.Metric(context.Background(), server(b).Endpoint(), name, labels)
			require.NoError(b, err)
			return v
		}
	}
	return []locktest.Meter{
		{Unit: "requests", Read: metric("grpc_server_handled_total", map[string]string{"grpc_type": "unary"})},
		{Unit: "events", Read: metric("etcd_debugging_mvcc_events_total", nil)},
	}
}

// BenchmarkUncontended: one Lock and Unlock with nobody else around.
func BenchmarkUncontended(b *testing.B) {
	locktest.Uncontended(b, contestants(b), serverWork(b))
}

// BenchmarkContended: hand-offs per second among 2 and 8 contenders.
func BenchmarkContended(b *testing.B) {
	locktest.Contended(b, contestants(b), serverWork(b), 2, 8)
}
