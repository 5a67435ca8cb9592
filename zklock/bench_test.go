package zklock_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/turnstile-go/turnstile/internal/locktest"
	"github.com/turnstile-go/turnstile/internal/zktest"
	"github.com/turnstile-go/turnstile/zklock"
)

// The benchmarks run turnstile's Mutex beside go-zookeeper's zk.Lock on
// the same server in the same run, alternating between them, and report
// each one's figures and the ratio (theirs over ours: above 1, ours is
// better).

// contestant is one lock implementation: lockers returns n lock values on
// one name, each over its own session.
type contestant struct {
	name    string
	lockers func(b *testing.B, c *zktest.Cluster, name string, n int) []locker
}

type locker struct {
	lock, unlock func() error
}

var contestants = []contestant{
	{"turnstile", func(b *testing.B, c *zktest.Cluster, name string, n int) []locker {
		ls := make([]locker, n)
		for i := range ls {
			m := zklock.NewMutex(connect(b, c), name)
			ctx := context.Background()
			ls[i] = locker{func() error { return m.Lock(ctx) }, func() error { return m.Unlock(ctx) }}
		}
		return ls
	}},
	{"zk.Lock", func(b *testing.B, c *zktest.Cluster, name string, n int) []locker {
		ls := make([]locker, n)
		for i := range ls {
			conn, _, err := zk.Connect(c.Servers(), 4*time.Second, zk.WithLogger(quiet{}))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(conn.Close)
			l := zk.NewLock(conn, name, zk.WorldACL(zk.PermAll))
			ls[i] = locker{l.Lock, l.Unlock}
		}
		return ls
	}},
}

// packets reads the server's count of requests received (pings included).
func packets(b *testing.B, c *zktest.Cluster) float64 {
	m, err := c.Node(0).Mntr(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	v, err := strconv.ParseFloat(m["zk_packets_received"], 64)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkUncontended measures one Lock and Unlock with nobody else
// around: the median and 99th percentile in ms per pair, and the server
// requests per pair (pings included, so slightly above the true count).
func BenchmarkUncontended(b *testing.B) {
	c := server(b)
	var took [2][]float64
	var reqs [2]float64
	lockers := make([][]locker, len(contestants))
	for i, k := range contestants {
		lockers[i] = k.lockers(b, c, locktest.Name(), 1)
	}
	for range b.N {
		for i := range contestants {
			l := lockers[i][0]
			p0, t0 := packets(b, c), time.Now()
			if err := l.lock(); err != nil {
				b.Fatal(err)
			}
			if err := l.unlock(); err != nil {
				b.Fatal(err)
			}
			took[i] = append(took[i], float64(time.Since(t0).Microseconds())/1000)
			reqs[i] += packets(b, c) - p0 - 1 // less the mntr request itself
		}
	}
	report(b, "ms/lock", [2]float64{quantile(took[0], 0.5), quantile(took[1], 0.5)}, true)
	report(b, "p99-ms/lock", [2]float64{quantile(took[0], 0.99), quantile(took[1], 0.99)}, true)
	report(b, "requests/lock", [2]float64{reqs[0] / float64(b.N), reqs[1] / float64(b.N)}, true)
}

// BenchmarkContended measures hand-offs per second among n contenders,
// each on its own session, looping Lock and Unlock, and the server
// requests per hand-off. The contestants run in rounds A B, B A, so that
// neither gains from when it runs; each figure is the median of rounds.
func BenchmarkContended(b *testing.B) {
	c := server(b)
	const rounds = 8
	for _, n := range []int{2, 8} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var rate, reqs [2][]float64
			for r := range rounds {
				for _, i := range [][]int{{0, 1}, {1, 0}}[r%2] {
					lockers := contestants[i].lockers(b, c, locktest.Name(), n)
					handoffs := max(b.N/rounds, n)
					p0, t0 := packets(b, c), time.Now()
					cycle(b, lockers, handoffs)
					rate[i] = append(rate[i], float64(handoffs)/time.Since(t0).Seconds())
					reqs[i] = append(reqs[i], (packets(b, c)-p0)/float64(handoffs))
				}
			}
			report(b, "handoffs/s", [2]float64{quantile(rate[0], 0.5), quantile(rate[1], 0.5)}, false)
			report(b, "requests/handoff", [2]float64{quantile(reqs[0], 0.5), quantile(reqs[1], 0.5)}, true)
		})
	}
}

func quantile(v []float64, q float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// cycle has every locker take and release the lock until total grants
// reach handoffs.
func cycle(b *testing.B, lockers []locker, handoffs int) {
	var mu sync.Mutex
	left := handoffs
	var wg sync.WaitGroup
	for _, l := range lockers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := l.lock(); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				left--
				done := left <= 0
				mu.Unlock()
				if err := l.unlock(); err != nil {
					b.Error(err)
					return
				}
				if done {
					return
				}
			}
		}()
	}
	wg.Wait()
}

// report prints each contestant's value of a metric and the gain:
// baseline over ours where less is better, ours over baseline otherwise.
func report(b *testing.B, unit string, v [2]float64, lessIsBetter bool) {
	b.ReportMetric(0, "ns/op")
	for i, k := range contestants {
		b.ReportMetric(v[i], k.name+"-"+unit)
	}
	gain := v[0] / v[1]
	if lessIsBetter {
		gain = v[1] / v[0]
	}
	b.ReportMetric(gain, "gain-"+unit)
}

// quiet drops the client's log, which would bury the benchmark's lines.
type quiet struct{}

func (quiet) Printf(string, ...any) {}
