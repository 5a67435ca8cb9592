// Command benchmarks runs the whole benchmark matrix: turnstile beside
// go-zookeeper's zk.Lock on a ZooKeeper server, beside etcd's
// concurrency.Mutex on an etcd member, and a herd-prone lock on each. It
// starts the servers itself, on loopback ports (ZooKeeper from the
// Debian zookeeper package, etcd inside this process), prints markdown
// tables of medians to standard output, and writes an SVG chart.
//
//	go run ./benchmarks > results.md
//
// The defaults take about seven minutes on two cores; -long measures
// longer and more often.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/bench"
	"github.com/turnstile-go/turnstile/internal/testing/embedetcd"
	"github.com/turnstile-go/turnstile/internal/testing/zktest"
)

func main() {
	o := bench.Defaults()
	flag.IntVar(&o.Rounds, "rounds", o.Rounds, "`runs` of each contestant per scenario, in alternating order")
	flag.IntVar(&o.Pairs, "pairs", o.Pairs, "uncontended Lock+Unlock `pairs` per round")
	flag.DurationVar(&o.Window, "window", o.Window, "how long a contended round counts hand-offs")
	ns := flag.String("n", join(o.Ns), "numbers of contenders, comma-separated")
	drains := flag.String("drain", join(o.Drains), "queue lengths to drain, comma-separated")
	flag.BoolFunc("long", "the long run, as -rounds 9 -pairs 3000 -window 5s; flags after it still count", func(string) error {
		o.Rounds, o.Pairs, o.Window = 9, 3000, 5*time.Second
		return nil
	})
	servers := flag.String("servers", "zookeeper,etcd", "the servers to run, comma-separated")
	chart := flag.String("chart", "benchmarks/chart.svg", "where to write the chart (empty: nowhere)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to `file`, labelled by contestant")
	flag.Parse()
	var err error
	if o.Ns, err = ints(*ns); err == nil {
		o.Drains, err = ints(*drains)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err = profile(*cpuprofile, func() error { return run(ctx, o, strings.Split(*servers, ","), *chart) })
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmarks:", err)
		os.Exit(1)
	}
}

// profile runs f under the CPU profiler when path is not empty. Read
// one contestant's share with, for example,
//
//	go tool pprof -tags FILE
//	go tool pprof -tagfocus contestant=etcd/turnstile -top FILE
func profile(path string, f func() error) error {
	if path == "" {
		return f()
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		return err
	}
	err = f()
	pprof.StopCPUProfile()
	return errors.Join(err, out.Close())
}

func join(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func ints(s string) ([]int, error) {
	var v []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' }) {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: not a list of positive numbers", s)
		}
		v = append(v, n)
	}
	return v, nil
}

func run(ctx context.Context, o bench.Options, servers []string, chart string) error {
	dir, err := os.MkdirTemp("", "turnstile-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	var results []bench.Result
	for _, name := range servers {
		srv, stop, err := launch(ctx, name, dir)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r, err := srv.Run(ctx, o, func(done string) { fmt.Fprintln(os.Stderr, done) })
		srv.Close()
		stop()
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	fmt.Printf("Run with `go run ./benchmarks %s` in %v, on %d cores (%s), %s, %s/%s; clients: %s.\n\n",
		strings.Join(os.Args[1:], " "), time.Since(start).Round(time.Second),
		runtime.NumCPU(), cpu(), runtime.Version(), runtime.GOOS, runtime.GOARCH, clients())
	fmt.Printf("Every figure is the median of %d rounds per contestant, run in alternating order, "+
		"except the uncontended latencies, which pool every pair of every round. "+
		"A ratio is turnstile's figure divided by the baseline's.\n\n", o.Rounds)
	bench.Markdown(os.Stdout, results)
	if chart == "" {
		return nil
	}
	f, err := os.Create(chart)
	if err != nil {
		return err
	}
	bench.Chart(f, results)
	return f.Close()
}

// launch starts a server: ZooKeeper with its data under dir, etcd in this
// process with its data in a temporary directory of its own.
func launch(ctx context.Context, name, dir string) (*bench.Server, func(), error) {
	switch name {
	case "zookeeper":
		c, err := zktest.Launch(dir, 1)
		if err != nil {
			return nil, nil, fmt.Errorf("%w (on Debian: apt-get install zookeeper, or make deps)", err)
		}
		srv, err := bench.ZooKeeper(ctx, c)
		if err != nil {
			c.Stop()
			return nil, nil, err
		}
		return srv, c.Stop, nil
	case "etcd":
		endpoint, stop, err := embedetcd.StartTemp()
		if err != nil {
			return nil, nil, err
		}
		srv, err := bench.Etcd(endpoint)
		if err != nil {
			stop()
			return nil, nil, err
		}
		return srv, stop, nil
	}
	return nil, nil, fmt.Errorf("no server %q: zookeeper or etcd", name)
}

// cpu names the processor, for the record.
func cpu() string {
	info, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(info), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown processor"
}

// clients lists the versions of the client libraries the baselines use.
func clients() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var v []string
	for _, d := range info.Deps {
		if d.Path == "github.com/go-zookeeper/zk" || d.Path == "go.etcd.io/etcd/client/v3" {
			v = append(v, d.Path+" "+d.Version)
		}
	}
	return strings.Join(v, ", ")
}
