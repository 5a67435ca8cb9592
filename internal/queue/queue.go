// Package queue is the one queue algorithm behind every recipe: given the
// contenders of a name in server order, it decides whether a contender is
// admitted or which single contender it must wait for. It is pure; the
// backends supply the order and the waiting.
package queue

import (
	"fmt"

	"github.com/turnstile-go/turnstile"
)

// Contender is one entry of a name's queue, as the server keeps it.
type Contender struct {
	// Key is where the contender lives on the server: the znode path on
	// ZooKeeper, the key on etcd.
	Key string
	// Kind is the contender's kind, read back from its Key.
	Kind turnstile.Kind
	// Permits is the number of permits a Permit contender asked for,
	// read back from its Key; 0 for other kinds. (32 bits, beside Kind:
	// a held lock keeps copies of its Contender.)
	Permits int32
	// Seq is the server's order of arrival within the name: the znode's
	// sequence number, or the key's create revision.
	Seq int64
	// Token is the contender's fencing token (the znode's czxid, the
	// key's create revision) where the server has told it: always for
	// the contender Join returns.
	Token int64
}

// The clients a contender's name can tell (see turnstile.Participant and
// recipe.Entry).
const (
	Turnstile       = "turnstile"
	Curator         = "Curator"
	Kazoo           = "kazoo"
	ZkLock          = "zk.Lock"
	ZooKeeperRecipe = "ZooKeeper recipe"
	EtcdConcurrency = "etcd concurrency"
)

// Decision is what a contender does after reading the queue.
type Decision struct {
	// Admitted reports that the contender holds (or leads).
	Admitted bool
	// Wait is the one contender to wait for when not admitted: the
	// immediate predecessor of an Exclusive or Candidate contender, the
	// nearest non-Shared contender ahead of a Shared one.
	Wait Contender
	// Last reports that Wait is the only contender keeping self out, so
	// that its exit admits self without reading the queue again:
	// contenders only ever join behind self.
	Last bool
}

// Decide applies the queue rules to queue, in server order, for the
// contender whose Key is self. A self missing from queue has been removed
// behind its owner's back, and the error matches turnstile.ErrLost.
func Decide(queue []Contender, self string) (Decision, error) {
	i := index(queue, self)
	if i < 0 {
		return Decision{}, fmt.Errorf("%w: %s is no longer queued", turnstile.ErrLost, self)
	}
	w := blocker(queue[:i], queue[i].Kind)
	if w < 0 {
		return Decision{Admitted: true}, nil
	}
	return Decision{Wait: queue[w], Last: blocker(queue[:w], queue[i].Kind) < 0}, nil
}

// blocker returns the index of the nearest contender in ahead that keeps
// a contender of kind k out, or -1 if none does. Only a Shared contender
// lets others of its kind through; an unknown kind is kept out by
// everyone, as the safe reading of a queue written by a newer version.
func blocker(ahead []Contender, k turnstile.Kind) int {
	for j := len(ahead) - 1; j >= 0; j-- {
		if k != turnstile.Shared || ahead[j].Kind != turnstile.Shared {
			return j
		}
	}
	return -1
}

func index(queue []Contender, key string) int {
	for i, c := range queue {
		if c.Key == key {
			return i
		}
	}
	return -1
}

// Fits reports whether a Permit contender asking for permits may join
// holders, the contenders of a semaphore's name: there must be fewer of
// them than the fewest permits any of them, or it, asked for. A
// contender of another kind (a mutex's, another client's) counts as
// asking for one, so that it holds alone.
func Fits(holders []Contender, permits int) bool {
	limit := permits
	for _, h := range holders {
		if h.Kind != turnstile.Permit {
			return false
		}
		limit = min(limit, int(h.Permits))
	}
	return len(holders) < limit
}

// Holding reports, for each contender of queue in server order, whether
// it holds by the queue rules. Permit contenders in a name's own queue
// are a semaphore's holders, unless a contender of another kind is
// ahead; its waiters queue elsewhere.
func Holding(queue []Contender) []bool {
	holds := make([]bool, len(queue))
	for i, c := range queue {
		if c.Kind == turnstile.Permit {
			holds[i] = permitBlocker(queue[:i]) < 0
		} else {
			holds[i] = blocker(queue[:i], c.Kind) < 0
		}
	}
	return holds
}

// PermitBlocker returns the index of the nearest contender ahead of the
// Permit contender self, in a semaphore's own queue, that keeps it from
// holding: one of another kind, which holds alone. It is -1 if none
// does, and the error matches turnstile.ErrLost if self is not in queue.
func PermitBlocker(queue []Contender, self string) (int, error) {
	i := index(queue, self)
	if i < 0 {
		return 0, fmt.Errorf("%w: %s is no longer queued", turnstile.ErrLost, self)
	}
	return permitBlocker(queue[:i]), nil
}

func permitBlocker(ahead []Contender) int {
	for j := len(ahead) - 1; j >= 0; j-- {
		if ahead[j].Kind != turnstile.Permit {
			return j
		}
	}
	return -1
}
