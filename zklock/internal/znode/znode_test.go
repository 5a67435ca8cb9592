package znode

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
)

const (
	x = turnstile.Exclusive
	s = turnstile.Shared
	c = turnstile.Candidate
	p = turnstile.Permit
)

// The children each client creates under a lock node, as they name them.
const (
	uuid  = "2f5e7c1e-4b8a-4d1e-9c3b-2a1f0e9d8c7b" // Curator's protected id
	guid  = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"     // go-zookeeper's, kazoo's
	ours  = "0123456789abcdef"                     // turnstile's
	wrap  = 1 << 32                                // the counter modulo 2^32
	nowhy = 0
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		child string
		kind  turnstile.Kind
		seq   int64
		ok    bool
	}{
		// Curator: InterProcessMutex and LeaderSelector, the two sides
		// of InterProcessReadWriteLock, LeaderLatch; turnstile writes
		// the same forms.
		{"_c_" + uuid + "-lock-0000000003", x, 3, true},
		{"_c_" + uuid + "-__WRIT__0000000004", x, 4, true},
		{"_c_" + uuid + "-__READ__0000000005", s, 5, true},
		{"_c_" + uuid + "-latch-0000000006", c, 6, true},
		{Own(ours) + "lock-0000000007", x, 7, true},
		// go-zookeeper's zk.Lock.
		{"_c_" + guid + "-lock-0000000008", x, 8, true},
		// kazoo's Lock, WriteLock, ReadLock and Election.
		{guid + "__lock__0000000009", x, 9, true},
		{guid + "__rlock__0000000010", s, 10, true},
		// ZooKeeper's own WriteLock recipe: x-<session>-<seq>.
		{"x-72057609814147072-0000000011", x, 11, true},
		// turnstile before it spoke Curator's names.
		{"lock-" + ours + "-0000000012", x, 12, true},
		{"read-" + ours + "-0000000013", s, 13, true},
		{"lead-" + ours + "-0000000014", c, 14, true},
		// A reader's mark counts only right before the sequence.
		{"_c___READ__-lock-0000000015", x, 15, true},
		{"read-" + ours + "0-0000000016", x, 16, true},
		{"read-0123456789ABCDEF-0000000017", x, 17, true},
		{"lock-0000000018", x, 18, true},
		// The counter past 2^31, printed negative, in every form.
		{"_c_" + uuid + "-lock-2147483647", x, 1<<31 - 1, true},
		{"_c_" + uuid + "-lock--2147483648", x, 1 << 31, true},
		{"_c_" + uuid + "-lock--1000000000", x, wrap - 1000000000, true},
		{"_c_" + uuid + "-lock--999999999", x, wrap - 999999999, true},
		{"_c_" + uuid + "-lock--000000001", x, wrap - 1, true},
		{"_c_" + uuid + "-__READ__-2147483648", s, 1 << 31, true},
		{"_c_" + uuid + "-__READ__-000000042", s, wrap - 42, true},
		{guid + "__rlock__-1000000000", s, wrap - 1000000000, true},
		{"x-72057609814147072--1500000000", x, wrap - 1500000000, true},
		{"lock-" + ours + "--2147483648", x, 1 << 31, true},
		// Too large for a positive counter: a label without its '-'.
		{"_c_" + uuid + "-lock-2147483648", x, 1 << 31, true},
		{"read-" + ours + "--000000001", s, wrap - 1, true},
		// A semaphore's contenders, which only turnstile writes (their
		// permits are checked below).
		{Own(ours) + queue.PermitLabel(3) + "0000000019", p, 19, true},
		{Own(ours) + "sem1-0000000020", p, 20, true},
		{Own(ours) + "sem3--000000001", p, wrap - 1, true},
		{Own(ours) + "sem03-0000000021", x, 21, true},
		{Own(ours) + "sem-0000000022", x, 22, true},
		{"sem3-0000000023", x, 23, true},
		// No sequence suffix: no contender.
		{"", nowhy, 0, false},
		{"zookeeper", nowhy, 0, false},
		{"config", nowhy, 0, false},
		{Own(ours) + "stamp", nowhy, 0, false},
		{"_c_" + uuid + "-lock-", nowhy, 0, false},
		{"_c_" + uuid + "-lock-42", nowhy, 0, false},
		{"_c_" + uuid + "-lock-00000000x1", nowhy, 0, false},
		{"_c_" + uuid + "-lock--2147483649", nowhy, 0, false}, // not a 32-bit counter
		{"_c_" + uuid + "-lock-+000000001", nowhy, 0, false},
		{"_c_" + uuid + "-lock- 000000001", nowhy, 0, false},
		{"_c_" + uuid + "-lock-０000000001", nowhy, 0, false},
	} {
		c, ok := Parse(tc.child)
		if ok != tc.ok || ok && (c.Kind != tc.kind || c.Seq != tc.seq) {
			t.Errorf("Parse(%q) = %v %d %v; want %v %d %v", tc.child, c.Kind, c.Seq, ok, tc.kind, tc.seq, tc.ok)
		}
	}
	for _, n := range []int{1, 3, 1 << 20} {
		child := Own(ours) + queue.PermitLabel(n) + "0000000042"
		if c, ok := Parse(child); !ok || c.Kind != p || int(c.Permits) != n {
			t.Errorf("Parse(%q) = %v %d permits %v; want %v %d permits", child, c.Kind, c.Permits, ok, p, n)
		}
	}
}

// zkName is what ZooKeeper makes of a sequential create of prefix when
// the parent's counter is n: Java's %010d, which Go's matches.
func zkName(prefix string, n int32) string { return prefix + fmt.Sprintf("%010d", n) }

// A sequence suffix is read back as ZooKeeper wrote it for any prefix a
// client uses, and the kind depends on the prefix alone.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"_c_" + uuid + "-lock-", "_c_" + uuid + "-__READ__", guid + "__rlock__", "x-1-", "lock-" + ours + "-", "", "a--", "__-"} {
		for _, n := range []int32{0, 7, 1<<31 - 1, -1 << 31, -1, -999999999, -1000000000, 1000000000} {
			f.Add(p, n)
		}
	}
	f.Fuzz(func(t *testing.T, prefix string, n int32) {
		child := zkName(prefix, n)
		c, ok := Parse(child)
		kind, seq := c.Kind, c.Seq
		if !ok {
			t.Fatalf("Parse(%q) refused a sequential name", child)
		}
		// Ten digits after a '-' are read as a negative counter after a
		// label that ends in '-' or '_' or after none, and as part of the
		// label after anything else: every client's labels end in '-' or
		// '_', and none is "-" or ends in "--" or "_-".
		clear := prefix == "" || strings.HasSuffix(prefix, "-") || strings.HasSuffix(prefix, "_")
		odd := prefix == "-" || strings.HasSuffix(prefix, "--") || strings.HasSuffix(prefix, "_-")
		ambiguous := n >= 1e9 && odd || n <= -1e9 && !clear
		if want, _ := classify(prefix); !ambiguous && (seq != int64(uint32(n)) || kind != want) {
			t.Fatalf("Parse(%q) = %v %d; want %v %d", child, kind, seq, want, uint32(n))
		}
		// Whatever it reads, it read from a suffix ZooKeeper could write.
		if !strings.HasSuffix(child, fmt.Sprintf("%010d", int32(uint32(seq)))) {
			t.Fatalf("Parse(%q) = %d, not a suffix", child, seq)
		}
	})
}

// Children as ZooKeeper lists them (any order), from several clients, with
// entries that are not contenders and a counter that wrapped past 2^31
// and past 2^32: the queue read from them is in creation order, and
// decisions follow the rules.
func TestQueueOrder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		children []string
		want     []string // children in order
	}{
		{"mixed", []string{"_c_a-lock-0000000012", "config", guid + "__lock__0000000010", "_c_b-__READ__0000000011"},
			[]string{guid + "__lock__0000000010", "_c_b-__READ__0000000011", "_c_a-lock-0000000012"}},
		{"past 2^31", []string{"_c_c-lock--2147483647", "_c_a-lock-2147483646", "_c_d-__READ__-2147483646", "x-9-2147483647", guid + "__lock__-2147483648"},
			[]string{"_c_a-lock-2147483646", "x-9-2147483647", guid + "__lock__-2147483648", "_c_c-lock--2147483647", "_c_d-__READ__-2147483646"}},
		{"past 2^32", []string{"_c_b-lock-0000000000", "_c_a-latch--000000001", "_c_c-lock-0000000001"},
			[]string{"_c_a-latch--000000001", "_c_b-lock-0000000000", "_c_c-lock-0000000001"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cs []queue.Contender
			for _, ch := range tc.children {
				if c, ok := Parse(ch); ok {
					cs = append(cs, c)
				}
			}
			Sort(cs)
			var got []string
			for _, c := range cs {
				got = append(got, c.Key)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("order %v, want %v", got, tc.want)
			}
			// The last contender waits for the one created just before it,
			// an exclusive one in every case here.
			d, err := queue.Decide(cs, cs[len(cs)-1].Key)
			if err != nil || d.Admitted || d.Wait != cs[len(cs)-2] {
				t.Fatalf("Decide: %+v %v", d, err)
			}
		})
	}
}

// Contenders created in a row, from any point of the counter (across
// either wrap among them), come out in creation order from any shuffle.
func TestSortShuffled(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, base := range []uint32{0, 1<<31 - 100, 1<<32 - 100, r.Uint32(), r.Uint32()} {
		n := 1 + r.IntN(300)
		cs := make([]queue.Contender, n)
		for i := range cs {
			cs[i] = queue.Contender{Key: fmt.Sprint(i), Seq: int64(base + uint32(i)*3)}
		}
		r.Shuffle(n, func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
		Sort(cs)
		for i, c := range cs {
			if c.Key != fmt.Sprint(i) {
				t.Fatalf("from %d: position %d holds contender %s", base, i, c.Key)
			}
		}
	}
}

// Each client's contenders are told by their names.
func TestClient(t *testing.T) {
	for child, want := range map[string]string{
		"_c_" + uuid + "-lock-0000000003":      queue.Curator,
		"_c_" + uuid + "-__READ__0000000005":   queue.Curator,
		"_c_" + uuid + "-latch-0000000006":     queue.Curator,
		Own(ours) + "lock-0000000007":          queue.Turnstile,
		Own(ours) + "sem3-0000000008":          queue.Turnstile,
		"_c_" + guid + "-lock-0000000008":      queue.ZkLock,
		guid + "__lock__0000000009":            queue.Kazoo,
		guid + "__rlock__0000000010":           queue.Kazoo,
		"x-72057609814147072-0000000011":       queue.ZooKeeperRecipe,
		"lock-" + ours + "-0000000012":         queue.Turnstile,
		"read-" + ours + "-0000000013":         queue.Turnstile,
		"lock-0000000018":                      "",
		"_c_xyz-lock-0000000019":               "",
		"_c_" + uuid[:35] + "x-lock-000000020": "",
	} {
		if _, ok := Parse(child); !ok {
			t.Errorf("Parse(%q) refused it", child)
		}
		if got := Client(child); got != want {
			t.Errorf("Client(%q) = %q, want %q", child, got, want)
		}
	}
	if got := Client("config"); got != "" {
		t.Errorf("Client of no contender = %q", got)
	}
}
