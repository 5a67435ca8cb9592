package zklock_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/turnstile-go/turnstile/internal/locktest"
	"github.com/turnstile-go/turnstile/zklock"
)

// The benchmarks run turnstile's Mutex beside go-zookeeper's zk.Lock on
// the same server in the same run.
func contestants(b *testing.B) [2]locktest.Contestant {
	c := server(b)
	return [2]locktest.Contestant{
		{Name: "turnstile", Lockers: func(b *testing.B, name string, n int) []locktest.BenchLocker {
			ls := make([]locktest.BenchLocker, n)
			for i := range ls {
				m := zklock.NewMutex(connect(b, c), name)
				ctx := context.Background()
				ls[i] = locktest.BenchLocker{Lock: func() error { return m.Lock(ctx) }, Unlock: func() error { return m.Unlock(ctx) }}
			}
			return ls
		}},
		{Name: "zk.Lock", Lockers: func(b *testing.B, name string, n int) []locktest.BenchLocker {
			ls := make([]locktest.BenchLocker, n)
			for i := range ls {
				conn, _, err := zk.Connect(c.Servers(), 4*time.Second, zk.WithLogger(quiet{}))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(conn.Close)
				l := zk.NewLock(conn, name, zk.WorldACL(zk.PermAll))
				ls[i] = locktest.BenchLocker{Lock: l.Lock, Unlock: l.Unlock}
			}
			return ls
		}},
	}
}

// serverWork reads the server's count of packets received, less the
// mntr requests that read it; pings add a little noise.
func serverWork(b *testing.B) []locktest.Meter {
	c := server(b)
	reads := 0
	return []locktest.Meter{{Unit: "requests", Read: func(b *testing.B) float64 {
		m, err := c.Node(0).Mntr(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		v, err := strconv.ParseFloat(m["zk_packets_received"], 64)
		if err != nil {
			b.Fatal(err)
		}
		reads++
		return v - float64(reads)
	}}}
}

// BenchmarkUncontended: one Lock and Unlock with nobody else around.
func BenchmarkUncontended(b *testing.B) {
	locktest.Uncontended(b, contestants(b), serverWork(b))
}

// BenchmarkContended: hand-offs per second among 2 and 8 contenders.
func BenchmarkContended(b *testing.B) {
	locktest.Contended(b, contestants(b), serverWork(b), 2, 8)
}

// quiet drops the client's log, which would bury the benchmark's lines.
type quiet struct{}

func (quiet) Printf(string, ...any) {}
