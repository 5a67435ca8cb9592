package chaos_test

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/testing/chaos"
	"github.com/turnstile-go/turnstile/internal/testing/leakcheck"
	"github.com/turnstile-go/turnstile/internal/testing/servicetest"
)

var duration = flag.Duration("chaos.duration", 30*time.Second, "how long the nemesis injects faults in TestChaos; from 5m on, a soak")

// soakFrom is the shortest run that is a soak: one whose first third,
// left out as the warm-up, lasts more than a minute and a half.
const soakFrom = 5 * time.Minute

// sampleEvery is how often a run of d samples: 60 samples in a long
// run, every 10 to 30 s.
func sampleEvery(d time.Duration) time.Duration {
	return min(max(d/60, 10*time.Second), 30*time.Second)
}

// Every test starts servers of its own, and no goroutine outlives them.
func TestMain(m *testing.M) { leakcheck.Main(m) }

// report logs each recipe's summary and fails the test on violations.
func report(t *testing.T, results []chaos.Result) {
	t.Helper()
	for _, r := range results {
		t.Log(r.Summary)
		if r.Recipe == chaos.Mutex {
			t.Log(r.Clients)
		}
		for _, e := range r.Excused {
			t.Logf("%s: excused: %s", r.Recipe, e)
		}
		for i, v := range r.Violations {
			if i == 10 {
				t.Errorf("%s: and %d more", r.Recipe, len(r.Violations)-10)
				break
			}
			t.Errorf("%s: %s", r.Recipe, v)
		}
	}
}

// Every recipe at once on a 3-node ZooKeeper ensemble and a 3-member etcd
// cluster, under every kind of fault, with other libraries' locks on the
// mutex's name: no violation, and every fault was injected, so that the
// run could have found one, the isolation of a server twice, so that it
// met the leader and a follower. Run for 5 minutes or more, it is a soak
// as well: what the run holds, sampled as it goes, must not grow.
func TestChaos(t *testing.T) {
	servicetest.EachCluster(t, 3, func(t *testing.T, s *servicetest.Service) {
		results := chaos.Run(t, s, chaos.Config{
			Recipes:  []string{chaos.Mutex, chaos.RWMutex, chaos.Election, chaos.Semaphore},
			Clients:  3,
			Permits:  2,
			Lifetime: 3 * time.Second,
			// A paused client takes no nemesis time, and each one pauses a
			// client of the next recipe that writes: three in a row meet
			// all three. The faults before the last pause-member take
			// about 21 s on ZooKeeper, whose restarts are the slowest.
			Faults: []string{
				chaos.PauseClient, chaos.IsolateMember, chaos.PauseClient, chaos.KillLeader, chaos.PauseClient,
				chaos.CutClient, chaos.PauseClient, chaos.IsolateMember, chaos.PauseClient, chaos.PauseMember,
			},
			Duration: *duration,
			Calm:     30 * time.Second,
			Guard:    func() chaos.Guard { return new(turnstile.Fence) },
			Foreign:  2,
			Sample:   sampleEvery(*duration),
			Soak:     *duration >= soakFrom,
		})
		report(t, results)
		for _, r := range results {
			paused := 0
			foreign := map[string]int{}
			for _, op := range r.Ops {
				if op.Foreign {
					foreign[op.Client]++
				} else if op.Paused {
					paused++
				}
			}
			if paused == 0 && r.Recipe != chaos.Semaphore {
				t.Errorf("%s: no holder was paused", r.Recipe)
			}
			if r.Recipe == chaos.Mutex && len(foreign) == 0 {
				t.Errorf("%s: no foreign client held", r.Recipe)
			}
		}
		want := map[string]int{chaos.PauseClient: 1, chaos.KillLeader: 1, chaos.CutClient: 1, chaos.PauseMember: 1, chaos.IsolateMember: 2}
		for kind, n := range want {
			if got := results[0].Faults[kind]; got < n {
				t.Errorf("%s injected %d times, want at least %d", kind, got, n)
			}
		}
	})
}

// With the guard disabled, a paused holder's late write lands after its
// successor's, and the checker reports it, among the servers' partitions
// too.
func TestCheckerCatchesUnguardedWrites(t *testing.T) {
	servicetest.EachCluster(t, 3, func(t *testing.T, s *servicetest.Service) {
		results := chaos.Run(t, s, chaos.Config{
			Recipes:  []string{chaos.Mutex},
			Clients:  3,
			Lifetime: 2 * time.Second,
			Faults:   []string{chaos.PauseClient, chaos.IsolateMember},
			Duration: 6 * time.Second,
			Calm:     30 * time.Second,
			Guard:    func() chaos.Guard { return chaos.Unguarded{} },
		})
		r := results[0]
		t.Log(r.Summary)
		found := false
		for _, v := range r.Violations {
			found = found || strings.HasPrefix(v, "write ")
		}
		if !found {
			t.Fatalf("no late write reported among %d violations: %v", len(r.Violations), r.Violations)
		}
	})
}
