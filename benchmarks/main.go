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
// longer and more often. -scenarios adds what a lock costs the client
// (cost), many names on a session (names) and the cost of a name's
// history on etcd (history), turnstile's semaphore beside a naive one
// (semaphore), and turnstile's Mutex with a lock-delay beside the Mutex
// without (lockdelay); those run etcd in a process of its own, so that
// the client's CPU, allocations and goroutines are this process's.
//
//	go run ./benchmarks -scenarios cost,names,history
//	go run ./benchmarks -scenarios semaphore
//	go run ./benchmarks -scenarios lockdelay
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

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
	scenarios := flag.String("scenarios", "matrix", "the scenarios to run, comma-separated, of "+strings.Join(bench.Scenarios, ",")+" (history on etcd only)")
	depths := flag.String("depths", join(o.Depths), "history: past holds on the name before each measurement, comma-separated")
	flag.IntVar(&o.Seeders, "seeders", o.Seeders, "history: contenders that make the past holds, taking turns")
	flag.IntVar(&o.HistoryPairs, "history-pairs", o.HistoryPairs, "history: Lock+Unlock `pairs` per round alone, and as many beside an unrelated Put loop")
	names := flag.String("names", join(o.Names), "names: numbers of names on a session, comma-separated")
	flag.IntVar(&o.NamesRounds, "names-rounds", o.NamesRounds, "names: `runs` of each contestant per size, in alternating order")
	flag.DurationVar(&o.NamesWindow, "names-window", o.NamesWindow, "names: how long a round loops")
	flag.IntVar(&o.Held, "held", o.Held, "cost: locks held at once on one session")
	flag.IntVar(&o.Permits, "permits", o.Permits, "semaphore: the semaphore's permits")
	semaphoreNs := flag.String("semaphore-n", join(o.SemaphoreNs), "semaphore: numbers of contenders, comma-separated")
	flag.DurationVar(&o.LockDelay, "lock-delay", o.LockDelay, "lockdelay: the Mutex's lock-delay, more than "+bench.SlowHandOff.String())
	lockDelayNs := flag.String("lockdelay-n", join(o.LockDelayNs), "lockdelay: numbers of contenders, comma-separated")
	chart := flag.String("chart", "benchmarks/chart.svg", "where to write the chart (empty: nowhere); only the matrix draws one")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to `file`, labelled by contestant")
	serve := flag.Bool("serve-etcd", false, "serve as the etcd member of a run, not run one (the command starts itself so)")
	flag.Parse()
	if *serve {
		if err := serveEtcd(); err != nil {
			fmt.Fprintln(os.Stderr, "etcd:", err)
			os.Exit(1)
		}
		return
	}
	var err error
	for _, l := range []struct {
		to    *[]int
		from  string
		least int
	}{{&o.Ns, *ns, 1}, {&o.Drains, *drains, 1}, {&o.Depths, *depths, 0}, {&o.Names, *names, 1}, {&o.SemaphoreNs, *semaphoreNs, 1}, {&o.LockDelayNs, *lockDelayNs, 1}} {
		if *l.to, err = ints(l.from, l.least); err != nil {
			break
		}
	}
	if err == nil && o.Permits < 1 {
		err = fmt.Errorf("-permits %d: want 1 or more", o.Permits)
	}
	// A hand-off that waited the delay must count as slow.
	if err == nil && o.LockDelay <= bench.SlowHandOff {
		err = fmt.Errorf("-lock-delay %v: want more than %v", o.LockDelay, bench.SlowHandOff)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Stopped, the run still prints what it measured.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = profile(*cpuprofile, func() error {
		return run(ctx, o, strings.Split(*servers, ","), strings.Split(*scenarios, ","), *chart)
	})
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

// ints reads a list of numbers, none below least.
func ints(s string, least int) ([]int, error) {
	var v []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' }) {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < least {
			return nil, fmt.Errorf("%q: not a list of numbers from %d up", s, least)
		}
		v = append(v, n)
	}
	return v, nil
}

func run(ctx context.Context, o bench.Options, servers, scenarios []string, chart string) error {
	dir, err := os.MkdirTemp("", "turnstile-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	var results []bench.Result
	var failed error
	for _, name := range servers {
		var result *bench.Result
		for _, scenario := range scenarios {
			if scenario == "history" && name != "etcd" {
				continue
			}
			srv, stop, err := launch(ctx, name, dir, scenario != "matrix")
			if err != nil {
				failed = fmt.Errorf("%s: %w", name, err)
				break
			}
			r, err := srv.Scenario(ctx, o, scenario, func(done string) { fmt.Fprintln(os.Stderr, done) })
			srv.Close()
			stop()
			if result == nil {
				result = &r
			} else {
				result.Merge(r)
			}
			if err != nil {
				failed = err
				break
			}
		}
		if result != nil {
			results = append(results, *result)
		}
		if failed != nil {
			break
		}
	}
	matrix := slices.Contains(scenarios, "matrix")
	fmt.Printf("Run with `go run ./benchmarks %s` in %v, on %d cores (%s), %s, %s/%s; clients: %s.\n\n",
		strings.Join(os.Args[1:], " "), time.Since(start).Round(time.Second),
		runtime.NumCPU(), cpu(), runtime.Version(), runtime.GOOS, runtime.GOARCH, clients())
	if matrix {
		fmt.Printf("Every figure is the median of %d rounds per contestant, run in alternating order, "+
			"except the uncontended latencies, which pool every pair of every round. "+
			"A ratio is turnstile's figure divided by the baseline's.\n\n", o.Rounds)
	} else {
		fmt.Printf("Each contestant ran %d rounds per scenario (%d per size of names), in alternating order; "+
			"what each table's figures are is said above it. A ratio is turnstile's figure divided by the baseline's.\n\n", o.Rounds, o.NamesRounds)
	}
	if failed != nil {
		fmt.Printf("The run stopped early (%v); the tables hold what it had measured.\n\n", failed)
	}
	bench.Markdown(os.Stdout, results)
	if chart == "" || !matrix || failed != nil {
		return failed
	}
	f, err := os.Create(chart)
	if err != nil {
		return err
	}
	bench.Chart(f, results)
	return f.Close()
}

// launch starts a server: ZooKeeper with its data under dir, etcd with
// its data in a temporary directory of its own, in this process or, if
// apart, in a process of its own.
func launch(ctx context.Context, name, dir string, apart bool) (*bench.Server, func(), error) {
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
		start := embedetcd.StartTemp
		if apart {
			start = startEtcd
		}
		endpoint, stop, err := start()
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

// startEtcd starts this command again as an etcd member (-serve-etcd),
// and returns its client address once it serves. stop closes its
// standard input, on which it ends, and waits for it.
func startEtcd() (endpoint string, stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(self, "-serve-etcd")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		in.Close()
		cmd.Wait()
		return "", nil, fmt.Errorf("starting etcd apart: %w", err)
	}
	return strings.TrimSpace(line), func() { in.Close(); cmd.Wait() }, nil
}

// serveEtcd is the command as started by startEtcd: a member with its
// data in a temporary directory, which never compacts its history, as
// etcd's default is. It prints its client address, and serves until its
// standard input ends.
func serveEtcd() error {
	dir, err := os.MkdirTemp("", "turnstile-etcd")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	server, addr, err := embedetcd.Start(dir, func(cfg *embed.Config) { cfg.AutoCompactionRetention = "0" })
	if err != nil {
		return err
	}
	defer server.Close()
	fmt.Println(addr)
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
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
