// Dlock runs a command while holding a lock, or leadership, shared by
// every machine that runs it on the same name: cron across machines.
//
//	go run ./examples/dlock -etcd host:2379 -name /locks/backup -- ./backup.sh
//	go run ./examples/dlock -zk host:2181 -name /locks/backup -try -- ./backup.sh
//	go run ./examples/dlock -etcd host:2379 -name /elections/indexer -leader "$(hostname)" -- ./indexer
//	go run ./examples/dlock -etcd host:2379 -name /permits/migrations -permits 2 -- ./migrate.sh
//	go run ./examples/dlock -zk host:2181 -name /locks/backup -ls
//
// The command gets the hold in its environment: TURNSTILE_NAME, and
// TURNSTILE_TOKEN and TURNSTILE_SEQUENCER to pass on to whatever it
// writes, so that a resource can refuse it once a later holder has come.
// If the hold is lost while the command runs, dlock stops the command
// (SIGTERM, then SIGKILL after a grace period) and exits 1; otherwise it
// exits with the command's status (128 plus the signal's number if a
// signal ended it), also when dlock itself is interrupted and passes
// SIGTERM on. On Linux the command is killed if dlock dies, and, unless
// dlock runs on a terminal, runs in a process group of its own, which
// dlock stops whole. Endpoints also come from
// ETCD_ENDPOINTS or ZK_SERVERS.
//
// With -permits N the command runs under one of N permits of a
// semaphore instead of a lock. With -ls, dlock runs nothing: it prints
// the name's queue, holders first, with each contender's identity,
// token, client and, on ZooKeeper, how long ago it joined.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/election"
	"github.com/turnstile-go/turnstile/examples/internal/session"
	"github.com/turnstile-go/turnstile/mutex"
	"github.com/turnstile-go/turnstile/semaphore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Stdout, os.Args[1:])
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			os.Exit(128 + int(ws.Signal())) // as a shell reports it
		}
		os.Exit(exit.ExitCode())
	case errors.Is(err, errSkipped):
		fmt.Fprintln(os.Stderr, err)
	case err != nil:
		log.Fatal(err)
	}
}

// errSkipped ends a -try run that found the lock held: not a failure,
// the next run will try again.
var errSkipped = errors.New("dlock: held by another; skipped")

// grace is how long a command whose hold was lost has between SIGTERM and
// SIGKILL.
const grace = 5 * time.Second

// A hold is a lock or leadership, taken and given back.
type hold struct {
	acquire, release func(context.Context) error
	sequencer        func() turnstile.Sequencer
	lost             func() <-chan struct{}
}

func run(ctx context.Context, out io.Writer, args []string) error {
	flags := flag.NewFlagSet("dlock", flag.ContinueOnError)
	etcdAddr := flags.String("etcd", os.Getenv("ETCD_ENDPOINTS"), "etcd endpoints, comma-separated")
	zkAddr := flags.String("zk", os.Getenv("ZK_SERVERS"), "ZooKeeper servers, comma-separated (instead of etcd)")
	name := flags.String("name", "", "the lock's or election's name, such as /locks/backup")
	leader := flags.String("leader", "", "campaign for leadership with this id, instead of taking a lock")
	try := flags.Bool("try", false, "if another holds the lock, exit at once instead of waiting")
	permits := flags.Int("permits", 0, "run under one of this many permits of a semaphore, instead of a lock")
	id := flags.String("id", "", "the identity a lock's or semaphore's contender stores (default host:pid)")
	ls := flags.Bool("ls", false, "print the name's queue, holders first, and run nothing")
	ttl := flags.Duration("ttl", 10*time.Second, "session lifetime: how long a crashed holder keeps the lock")
	if err := flags.Parse(args); err != nil {
		return err
	}
	command := flags.Args()
	switch {
	case len(command) == 0 && !*ls:
		return errors.New("dlock: no command given after --")
	case len(command) > 0 && *ls:
		return errors.New("dlock: -ls runs no command")
	case *etcdAddr == "" && *zkAddr == "":
		return errors.New("dlock: give -etcd or -zk (or ETCD_ENDPOINTS or ZK_SERVERS)")
	case *try && *leader != "":
		return errors.New("dlock: -try is for locks; a candidate waits its turn")
	case *permits != 0 && *leader != "":
		return errors.New("dlock: -permits is for a semaphore, -leader for an election: give one")
	case *permits < 0 || *permits > semaphore.MaxPermits:
		return fmt.Errorf("dlock: -permits %d, want 1 to %d", *permits, semaphore.MaxPermits)
	}
	if err := turnstile.ValidateName(*name); err != nil {
		return err
	}

	s, closeAll, err := session.Open(*etcdAddr, *zkAddr, *ttl)
	if err != nil {
		return err
	}
	defer closeAll()
	if *ls {
		return list(ctx, out, s, *name)
	}
	h, err := newHold(s, *name, *leader, *id, *permits, *try)
	if err != nil {
		return err
	}

	t0 := time.Now()
	waiting := progress(out, *name, t0)
	err = h.acquire(ctx)
	waiting()
	if errors.Is(err, turnstile.ErrLocked) {
		return errSkipped
	}
	if err != nil {
		return err
	}
	seq := h.sequencer()
	fmt.Fprintf(out, "dlock: holding %s (token %d) after %.1fs; running %s\n", *name, seq.Token, time.Since(t0).Seconds(), strings.Join(command, " "))
	runErr := runHolding(ctx, out, command, seq, h.lost())
	relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := h.release(relCtx); err != nil && !errors.Is(err, turnstile.ErrLost) {
		fmt.Fprintf(out, "dlock: releasing %s: %v\n", *name, err)
	}
	fmt.Fprintf(out, "dlock: released %s\n", *name)
	return runErr
}

func newHold(s turnstile.Session, name, leader, id string, permits int, try bool) (hold, error) {
	switch {
	case leader != "":
		e := election.New(s, name, leader)
		return hold{e.Campaign, e.Resign, e.Sequencer, e.Lost}, nil
	case id != "":
		if err := turnstile.ValidateID(id); err != nil {
			return hold{}, err
		}
	}
	if permits > 0 {
		var opts []semaphore.Option
		if id != "" {
			opts = append(opts, semaphore.WithIdentity(id))
		}
		sem := semaphore.New(s, name, permits, opts...)
		acquire := sem.Acquire
		if try {
			acquire = sem.TryAcquire
		}
		return hold{acquire, sem.Release, sem.Sequencer, sem.Lost}, nil
	}
	var opts []mutex.Option
	if id != "" {
		opts = append(opts, mutex.WithIdentity(id))
	}
	m := mutex.New(s, name, opts...)
	acquire := m.Lock
	if try {
		acquire = m.TryLock
	}
	return hold{acquire, m.Unlock, m.Sequencer, m.Lost}, nil
}

// list prints name's queue as a table, holders first.
func list(ctx context.Context, out io.Writer, s turnstile.Session, name string) error {
	ps, err := s.(interface {
		Participants(context.Context, string) ([]turnstile.Participant, error)
	}).Participants(ctx, name)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STATE\tKIND\tTOKEN\tJOINED\tCLIENT\tIDENTITY")
	for _, p := range ps {
		state, joined, client := "waits", "?", p.Client
		if p.Holds {
			state = "holds"
		}
		if !p.Since.IsZero() {
			joined = time.Since(p.Since).Round(100*time.Millisecond).String() + " ago"
		}
		if client == "" {
			client = "?"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%q\n", state, p.Kind, p.Token, joined, client, p.Identity)
	}
	return w.Flush()
}

// progress prints, every few seconds while a wait lasts, how long it has
// lasted, so that a queued run is not silent; the returned function ends
// it.
func progress(out io.Writer, name string, t0 time.Time) func() {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				fmt.Fprintf(out, "dlock: still waiting for %s after %.0fs\n", name, time.Since(t0).Seconds())
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

// runHolding runs command with the hold in its environment, and stops it
// if the hold is lost or ctx ends first. It returns the command's result,
// unless the hold was lost.
func runHolding(ctx context.Context, out io.Writer, command []string, seq turnstile.Sequencer, lost <-chan struct{}) error {
	cmd := exec.Command(command[0], command[1:]...)
	ownGroup(cmd)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, out, os.Stderr
	cmd.Env = append(os.Environ(),
		"TURNSTILE_NAME="+seq.Name,
		"TURNSTILE_TOKEN="+strconv.FormatInt(seq.Token, 10),
		"TURNSTILE_SEQUENCER="+seq.String(),
	)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var stopped error
	select {
	case err := <-exited:
		return err
	case <-lost:
		stopped = fmt.Errorf("%w: %s; the command was stopped", turnstile.ErrLost, seq.Name)
	case <-ctx.Done():
		stopped = ctx.Err()
	}
	fmt.Fprintf(out, "dlock: stopping the command: %v\n", stopped)
	signalGroup(cmd, syscall.SIGTERM)
	var err error
	select {
	case err = <-exited:
	case <-time.After(grace):
		signalGroup(cmd, syscall.SIGKILL)
		err = <-exited
	}
	if errors.Is(stopped, turnstile.ErrLost) {
		return stopped
	}
	return err // dlock was told to stop: the command's own answer to it
}
