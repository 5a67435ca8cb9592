package chaos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/election"
	"github.com/turnstile-go/turnstile/internal/recipe"
	"github.com/turnstile-go/turnstile/internal/testing/locktest"
	"github.com/turnstile-go/turnstile/internal/testing/servicetest"
	"github.com/turnstile-go/turnstile/mutex"
	"github.com/turnstile-go/turnstile/rwlock"
	"github.com/turnstile-go/turnstile/semaphore"
)

// The faults the nemesis injects.
const (
	KillLeader    = "kill-leader"    // kill the servers' leader, restart it a moment later
	PauseMember   = "pause-member"   // SIGSTOP a server for a session's lifetime
	IsolateMember = "isolate-member" // partition a server, the leader or a follower, from the others but not from its clients, for longer than a session
	CutClient     = "cut-client"     // partition a client for longer than its session
	PauseClient   = "pause-client"   // stall a holder between read and write, cut off, until another holds
)

// The recipes a run exercises.
const (
	Mutex     = "mutex"
	RWMutex   = "rwlock"
	Election  = "election"
	Semaphore = "semaphore" // holds share, and only read
)

// Config is one run.
type Config struct {
	Recipes  []string
	Clients  int           // per recipe, each with a link and sessions of its own
	Lifetime time.Duration // of every session
	Faults   []string      // injected in turn, for Duration
	Duration time.Duration
	// Calm bounds how long after the faults stop every client must hold
	// again.
	Calm time.Duration
	// Guard makes each register's guard: a turnstile.Fence, unless a
	// test breaks it.
	Guard func() Guard
	// Permits is the semaphore's number of holders at once.
	Permits int
	// Foreign is how many clients of each other library that speaks the
	// service's protocol (fleetOf) contend on the mutex's name beside
	// its turnstile clients, each through a link of its own.
	Foreign int
	// Sample is how often the run samples what must stay bounded
	// (goroutines, heap, server watches, nodes under its names) while
	// the faults last, and logs it; 0 for never.
	Sample time.Duration
	// Soak fails the run when one of them grows without bound (Grows).
	Soak bool
}

// Result is one recipe's history and what the checker found in it.
type Result struct {
	Recipe     string
	Ops        []Op
	Writes     []Write
	Violations []string
	Summary    string
	Faults     map[string]int // injected during the run, by kind, for every recipe at once
	// Clients is a line on each client's holds; Excused, the overlaps
	// with a foreign hold that the checker let pass, and why.
	Clients string
	Excused []string
}

// run is the state of one run.
type run struct {
	t   *testing.T
	s   *servicetest.Service
	cfg Config

	mu       sync.Mutex
	faults   map[string]int
	targeted map[string]int
}

// recipeRun is one recipe's clients, register and history.
type recipeRun struct {
	*run
	recipe   string
	name     string
	reg      *Register
	newest   atomic.Int64   // the newest token granted
	grants   atomic.Int64   // holds granted, to any client, foreign ones too
	sessions atomic.Int64   // sessions opened
	closing  sync.WaitGroup // ended sessions being closed

	mu  sync.Mutex
	ops []Op
}

type client struct {
	id     string
	link   *servicetest.Link
	faulty sync.Mutex // held while a fault uses the link
	// pauseNext is shared by the client's group: whichever of them writes
	// next pauses, so that a pause meant for an election's candidates
	// meets the next leader, rather than one that may not lead again
	// before the run ends.
	pauseNext *atomic.Bool
}

// Run runs cfg against s and returns each recipe's checked history.
func Run(t *testing.T, s *servicetest.Service, cfg Config) []Result {
	r := &run{t: t, s: s, cfg: cfg, faults: map[string]int{}, targeted: map[string]int{}}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var recipes []*recipeRun
	// The clients by recipe, and the foreign ones last, for the nemesis
	// to pick from each group in turn; writers leaves out the semaphore's.
	var clients, writers [][]*client
	var wg sync.WaitGroup
	for _, name := range cfg.Recipes {
		rr := &recipeRun{run: r, recipe: name, name: locktest.Name(), reg: NewRegister(cfg.Guard())}
		recipes = append(recipes, rr)
		var group []*client
		pause := new(atomic.Bool)
		for i := range cfg.Clients {
			c := &client{id: fmt.Sprintf("%s-%d", name, i+1), link: s.Linked(t), pauseNext: pause}
			group = append(group, c)
			wg.Go(func() { rr.loop(ctx, c) })
		}
		clients = append(clients, group)
		if name != Semaphore {
			writers = append(writers, group)
		}
		if name != Mutex || cfg.Foreign == 0 {
			continue
		}
		var fleet []*client
		pause = new(atomic.Bool)
		for _, kind := range fleetOf(t, s.Name, *withCurator) {
			for i := range cfg.Foreign {
				c := &client{id: fmt.Sprintf("%s-%d", kind, i+1), link: s.Linked(t), pauseNext: pause}
				l := rr.newLocker(kind, c)
				fleet = append(fleet, c)
				wg.Go(func() { rr.foreignLoop(ctx, c, l) })
			}
		}
		clients = append(clients, fleet)
		writers = append(writers, fleet)
	}

	sampled := make(chan []Sample, 1)
	stopSampling := make(chan struct{})
	if cfg.Sample > 0 {
		go func() { sampled <- r.sampler(cfg.Sample, recipes, stopSampling) }()
	}
	r.nemesis(ctx, clients, writers, time.Now().Add(cfg.Duration))
	calm := time.Now()
	close(stopSampling)
	var violations []string
	for _, rr := range recipes {
		violations = append(violations, rr.awaitCalm(calm)...)
	}
	if cfg.Sample > 0 {
		bad := r.judge(<-sampled, len(slices.Concat(clients...)))
		if cfg.Soak {
			violations = append(violations, bad...)
		}
	}
	stop()
	wg.Wait()
	for _, rr := range recipes {
		rr.closing.Wait()
	}

	var results []Result
	for i, rr := range recipes {
		bad := Check(rr.ops, rr.reg.Writes(), time.Second)
		queues := []string{rr.name}
		if rr.recipe == Semaphore {
			bad = append(bad, CheckPermits(rr.ops, cfg.Permits, time.Second)...)
			queues = append(queues, rr.name+"/"+recipe.WaitingRoom)
		}
		if i == 0 {
			bad = append(bad, violations...)
		}
		for _, q := range queues {
			locktest.Eventually(t, 3*cfg.Lifetime, "contenders left in "+q, func() bool { return s.Queued(t, q) == 0 })
		}
		results = append(results, Result{
			Recipe: rr.recipe, Ops: rr.ops, Writes: rr.reg.Writes(), Violations: bad, Faults: maps.Clone(r.faults),
			Summary: Summary(s.Name+" "+rr.recipe, rr.ops, r.faults, int(rr.sessions.Load())-cfg.Clients, len(bad)),
			Clients: Clients(s.Name+" "+rr.recipe, rr.ops),
			Excused: Excused(rr.ops, time.Second),
		})
	}
	return results
}

// awaitCalm waits until every client of the recipe has completed a hold
// granted after calm, and returns a violation for each that has not
// within the configured bound.
func (rr *recipeRun) awaitCalm(calm time.Time) []string {
	deadline := calm.Add(rr.cfg.Calm)
	for {
		missing := map[string]bool{}
		for i := range rr.cfg.Clients {
			missing[fmt.Sprintf("%s-%d", rr.recipe, i+1)] = true
		}
		rr.mu.Lock()
		for _, op := range rr.ops {
			if op.Granted.After(calm) && (op.Wrote || op.Kind == turnstile.Shared && !op.Refused) {
				delete(missing, op.Client)
			}
		}
		rr.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var bad []string
			for c := range missing {
				bad = append(bad, fmt.Sprintf("%s did not hold within %v after the faults stopped", c, rr.cfg.Calm))
			}
			return bad
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (rr *recipeRun) record(op Op) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.ops = append(rr.ops, op)
}

func (rr *recipeRun) granted(token int64) {
	rr.grants.Add(1)
	for {
		cur := rr.newest.Load()
		if token <= cur || rr.newest.CompareAndSwap(cur, token) {
			return
		}
	}
}

func (r *run) fault(kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults[kind]++
}

// loop runs one client until ctx ends, opening a new session whenever
// the last one ended, or could not start during a fault. The ended one
// is closed meanwhile, which may wait for the server: a lost etcd
// session revokes its lease. The last one stays open until the test
// ends, so that the check for contenders left behind sees what its
// holds left.
func (rr *recipeRun) loop(ctx context.Context, c *client) {
	var b turnstile.Session
	closeIt := func() {}
	for ctx.Err() == nil {
		if b == nil || recipe.Closed(b.Done()) {
			rr.closing.Go(closeIt)
			var err error
			if b, closeIt, err = c.link.Open(rr.cfg.Lifetime); err != nil {
				b, closeIt = nil, func() {}
				time.Sleep(100 * time.Millisecond)
				continue
			}
			rr.sessions.Add(1)
		}
		switch rr.recipe {
		case Election:
			rr.campaign(ctx, c, b)
		default:
			rr.hold(ctx, c, b)
		}
	}
}

// holder is one hold's operations, whichever recipe gives it.
type holder struct {
	acquire, release func(context.Context) error
	sequencer        func() turnstile.Sequencer
	lost             func() <-chan struct{}
}

// holderOf returns the recipe's value on b for one hold of kind: a
// Mutex, a side of an RWMutex, or a Semaphore.
func (rr *recipeRun) holderOf(b turnstile.Session, kind turnstile.Kind) holder {
	switch rr.recipe {
	case Mutex:
		m := mutex.New(b, rr.name)
		return holder{m.Lock, m.Unlock, m.Sequencer, m.Lost}
	case Semaphore:
		sem := semaphore.New(b, rr.name, rr.cfg.Permits)
		return holder{sem.Acquire, sem.Release, sem.Sequencer, sem.Lost}
	}
	rw := rwlock.New(b, rr.name)
	if kind == turnstile.Shared {
		return holder{rw.RLock, rw.RUnlock, rw.Sequencer, rw.Lost}
	}
	return holder{rw.Lock, rw.Unlock, rw.Sequencer, rw.Lost}
}

// hold takes one hold, reads the register and, holding exclusively,
// writes it one more.
func (rr *recipeRun) hold(ctx context.Context, c *client, b turnstile.Session) {
	kind := turnstile.Exclusive
	if rr.recipe == Semaphore || rr.recipe == RWMutex && rand.IntN(2) == 0 {
		kind = turnstile.Shared
	}
	h := rr.holderOf(b, kind)
	lctx, cancel := context.WithTimeout(ctx, 3*rr.cfg.Lifetime)
	err := h.acquire(lctx)
	cancel()
	if err != nil {
		return // a lost session, a timeout during a fault: try again
	}
	seq := h.sequencer()
	op := Op{Recipe: rr.recipe, Client: c.id, Kind: kind, Token: seq.Token, Granted: time.Now()}
	rr.granted(seq.Token)
	noticed := watch(h.lost())
	rr.access(c, seq, &op, func() bool { return recipe.Closed(h.lost()) })
	op.Released = time.Now()
	op.LostAt = noticed()
	for {
		uctx, cancel := context.WithTimeout(context.Background(), 2*rr.cfg.Lifetime)
		err = h.release(uctx)
		cancel()
		if err == nil || errors.Is(err, turnstile.ErrLost) || errors.Is(err, turnstile.ErrNotHeld) {
			break
		}
	}
	if op.Lost = errors.Is(err, turnstile.ErrLost); op.Lost && op.LostAt.IsZero() {
		op.LostAt = time.Now() // lost after the client let go, before its Unlock
	}
	rr.record(op)
}

// access is a holder's work on the register: read, then for an
// exclusive holder write one more, unless it sees its hold lost first or
// the nemesis stalls it, in which case it writes without looking.
func (rr *recipeRun) access(c *client, seq turnstile.Sequencer, op *Op, lost func() bool) {
	v, err := rr.reg.Read(seq)
	if err != nil {
		op.Refused = true
		return
	}
	op.Read = v
	if op.Kind == turnstile.Shared {
		return
	}
	if c.pauseNext.CompareAndSwap(true, false) {
		op.Paused = true
		rr.pause(c, func() bool { return rr.newest.Load() > seq.Token })
	} else if lost() {
		op.Skipped = true
		return
	}
	switch err := rr.reg.Write(seq, c.id, v.Value+1); {
	case errors.Is(err, turnstile.ErrStaleToken):
		op.Refused = true
	case err == nil:
		op.Wrote = true
	}
}

// pause stalls a holder with its link cut, as a stopped process would
// be, until it has been overtaken, another client granted the hold, or
// four lifetimes have passed.
func (rr *recipeRun) pause(c *client, overtaken func() bool) {
	c.faulty.Lock()
	defer c.faulty.Unlock()
	rr.fault(PauseClient)
	c.link.Cut()
	defer c.link.Restore()
	for deadline := time.Now().Add(4 * rr.cfg.Lifetime); !overtaken() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// campaign runs one election.Run until its session ends or ctx does;
// each term reads and writes the register with the term as token, and
// resigns after a moment so that leadership rotates.
//
// A term's loss may show only after its work returned, while Run
// resigns: then Run returns the session's end instead of starting
// another term. The last term is recorded once that is known, as lost
// when the session ended, if it did.
func (rr *recipeRun) campaign(ctx context.Context, c *client, b turnstile.Session) {
	ended := watch(b.Done())
	var last *Op
	election.Run(ctx, b, rr.name, c.id, func(wctx context.Context, term int64) error {
		if last != nil {
			rr.record(*last) // resigned: the next term began on the same session
		}
		seq := turnstile.Sequencer{Name: rr.name, Mode: turnstile.Exclusive, Token: term}
		op := Op{Recipe: rr.recipe, Client: c.id, Kind: turnstile.Exclusive, Token: term, Granted: time.Now()}
		rr.granted(term)
		var lostAt atomic.Pointer[time.Time]
		stop := context.AfterFunc(wctx, func() {
			now := time.Now()
			lostAt.Store(&now)
		})
		rr.access(c, seq, &op, func() bool { return wctx.Err() != nil })
		if !op.Refused && !op.Skipped {
			select {
			case <-wctx.Done():
			case <-time.After(time.Duration(50+rand.IntN(150)) * time.Millisecond):
			}
		}
		op.Released = time.Now()
		stop()
		if at := lostAt.Load(); at != nil && ctx.Err() == nil {
			op.Lost, op.LostAt = true, *at
		}
		last = &op
		return nil
	})
	if at := ended(); last != nil && !last.Lost && !at.IsZero() && ctx.Err() == nil {
		last.Lost, last.LostAt = true, at
	}
	if last != nil {
		rr.record(*last)
	}
}

// watch returns a function that reports when lost closed, or the zero
// time if it has not closed by the time the function is called, which
// it may be once.
func watch(lost <-chan struct{}) func() time.Time {
	var at atomic.Pointer[time.Time]
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-lost:
			now := time.Now()
			at.Store(&now)
		case <-done:
		}
	}()
	return func() time.Time {
		close(done)
		<-finished
		if p := at.Load(); p != nil {
			return *p
		}
		if recipe.Closed(lost) {
			return time.Now()
		}
		return time.Time{}
	}
}

// nemesis injects the configured faults in turn until the deadline;
// writers are the clients a pause can stall before a write.
func (r *run) nemesis(ctx context.Context, clients, writers [][]*client, until time.Time) {
	for i := 0; time.Now().Before(until); i++ {
		kind := r.cfg.Faults[i%len(r.cfg.Faults)]
		switch kind {
		case KillLeader:
			r.killLeader(ctx)
		case IsolateMember:
			r.isolateMember(ctx)
		case PauseMember:
			n := r.s.Node(r.t, rand.IntN(r.s.Servers()))
			if err := n.Pause(); err != nil {
				r.t.Error(err)
			}
			time.Sleep(r.cfg.Lifetime)
			if err := n.Resume(); err != nil {
				r.t.Error(err)
			}
			r.fault(kind)
		case CutClient:
			if c := r.free(clients, kind); c != nil {
				c.link.Cut()
				time.Sleep(r.cfg.Lifetime + time.Second)
				c.link.Restore()
				c.faulty.Unlock()
				r.fault(kind)
			}
		case PauseClient:
			r.target(writers, kind).pauseNext.Store(true) // counted when it pauses
		}
		time.Sleep(time.Duration(300+rand.IntN(500)) * time.Millisecond)
	}
	for _, c := range slices.Concat(clients...) {
		c.pauseNext.Store(false)
	}
}

// target picks a client for the next fault of kind, from each group in
// turn, so that every recipe, and the foreign clients, meet every fault.
func (r *run) target(groups [][]*client, kind string) *client {
	r.mu.Lock()
	n := r.targeted[kind]
	r.targeted[kind]++
	r.mu.Unlock()
	group := groups[n%len(groups)]
	return group[rand.IntN(len(group))]
}

// free is target for a fault that needs the client's link to itself: it
// returns the first client, from target's on, that no other fault is
// using, with its link taken, or nil if every client is busy. Taking
// target's client or none left a short run with no such fault at all.
func (r *run) free(groups [][]*client, kind string) *client {
	clients := slices.Concat(groups...)
	first := slices.Index(clients, r.target(groups, kind))
	for i := range clients {
		if c := clients[(first+i)%len(clients)]; c.faulty.TryLock() {
			return c
		}
	}
	return nil
}

// isolateMember partitions a server from the others, while its clients
// stay connected to it, for a session's lifetime and a second: the
// leader every other time, which goes on answering until it finds it has
// lost its quorum, and a follower otherwise, which answers from its stale
// copy until it gives its leader up.
func (r *run) isolateMember(ctx context.Context) {
	i := r.leader(ctx)
	if i < 0 {
		return
	}
	r.mu.Lock()
	role := "the leader"
	if r.faults[IsolateMember]%2 == 1 {
		i = (i + 1 + rand.IntN(r.s.Servers()-1)) % r.s.Servers()
		role = "a follower"
	}
	r.mu.Unlock()
	n := r.s.Node(r.t, i)
	if err := n.Isolate(); err != nil {
		r.t.Error(err)
		return
	}
	r.fault(IsolateMember)
	r.t.Logf("%s: server %d, %s", IsolateMember, i, role)
	time.Sleep(r.cfg.Lifetime + time.Second)
	if err := n.Rejoin(); err != nil {
		r.t.Error(err)
	}
}

// leader returns the index of the servers' leader, or -1 once it has
// failed the test for want of one.
func (r *run) leader(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	i, err := r.s.Leader(ctx)
	if err != nil {
		r.t.Errorf("finding the leader: %v", err)
		return -1
	}
	return i
}

func (r *run) killLeader(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	i := r.leader(ctx)
	if i < 0 {
		return
	}
	n := r.s.Node(r.t, i)
	if err := n.Kill(); err != nil {
		r.t.Error(err)
		return
	}
	r.fault(KillLeader)
	time.Sleep(r.cfg.Lifetime / 2)
	if err := n.Restart(ctx); err != nil {
		r.t.Errorf("restarting server %d: %v", i, err)
	}
}
