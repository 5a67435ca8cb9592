// Package znode reads and writes the names of contender nodes on
// ZooKeeper, in the forms every lock client there shares.
package znode

import (
	"slices"
	"strings"

	"github.com/turnstile-go/turnstile"
	"github.com/turnstile-go/turnstile/internal/queue"
	"github.com/turnstile-go/turnstile/internal/recipe"
)

// Contender nodes are named as Curator names its own, and as go-zookeeper's
// zk.Lock and kazoo (with extra_lock_patterns) read them:
// _c_<id>-<label><sequence>, where label is the recipe's lock name
// (lock-, __WRIT__, __READ__, latch-) and the sequence is the parent's
// counter, which ZooKeeper appends. A name shared with those clients then
// sorts the same way in every one of them.
const protected = "_c_"

// Own is the start of every node a join with this id creates, and of
// no other node: how a join whose reply was lost finds its node again.
func Own(id string) string { return protected + id + "-" }

// ID returns the id of a node whose name Own started.
func ID(child string) string {
	rest, _ := strings.CutPrefix(child, protected)
	id, _, _ := strings.Cut(rest, "-")
	return id
}

// suffixLen is the width of ZooKeeper's sequence suffix, printed with
// %010d: ten digits, or a minus and nine digits, and eleven characters
// for the ten-digit negatives past 2^31.
const suffixLen = 10

// Parse reads a child of a lock node as a contender, whoever created
// it: every child whose name ends in a sequence suffix is one, in the
// order of that suffix. Its Key is the child's name, and Seq the counter
// modulo 2^32, which Sort orders correctly across its wrap. ok is false
// for children without a suffix, which are no contenders.
func Parse(child string) (c queue.Contender, ok bool) {
	n, label, ok := sequence(child)
	if !ok {
		return queue.Contender{}, false
	}
	kind, permits := classify(label)
	return queue.Contender{Key: child, Kind: kind, Permits: int32(permits), Seq: int64(uint32(n))}, true
}

// Client tells which client wrote the contender child from its name:
// each names its nodes in a form of its own. It is "" for a name that
// does not tell, or no contender's.
func Client(child string) string {
	_, label, ok := sequence(child)
	if !ok {
		return ""
	}
	if rest, ok := strings.CutPrefix(label, protected); ok {
		// Curator's id is a UUID, dashes and all; go-zookeeper's 32
		// hex digits; turnstile's 16.
		if len(rest) > 36 && isUUID(rest[:36]) && rest[36] == '-' {
			return queue.Curator
		}
		id, _, _ := strings.Cut(rest, "-")
		switch {
		case len(id) == 16 && isHex(id):
			return queue.Turnstile
		case len(id) == 32 && isHex(id):
			return queue.ZkLock
		}
		return ""
	}
	if id, ok := strings.CutSuffix(label, "__lock__"); ok && len(id) == 32 && isHex(id) {
		return queue.Kazoo
	}
	if id, ok := strings.CutSuffix(label, "__rlock__"); ok && len(id) == 32 && isHex(id) {
		return queue.Kazoo
	}
	if session, ok := strings.CutPrefix(label, "x-"); ok && strings.HasSuffix(session, "-") {
		if _, ok := decimal(session[:len(session)-1]); ok {
			return queue.ZooKeeperRecipe
		}
	}
	if old, ok := strings.CutSuffix(label, "-"); ok {
		if _, _, _, ok := queue.ParseNode(old); ok {
			return queue.Turnstile // before it spoke Curator's names
		}
	}
	return ""
}

func isHex(s string) bool { return strings.Trim(s, "0123456789abcdef") == "" }

// isUUID reports whether s is a UUID as Java prints it.
func isUUID(s string) bool {
	for i := range len(s) {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return false
			}
		} else if !isHex(s[i : i+1]) {
			return false
		}
	}
	return true
}

// sequence splits child into the prefix its creator chose and the signed
// 32-bit counter ZooKeeper appended. Ten digits after a '-', the first
// not 0, are ambiguous: a negative counter of ten digits, or a label
// ending in '-' (lock-). The minus is a sign only after a label that ends
// in '-' or '_' already (lock--1000000000, __WRIT__-1000000000), which is
// how every client's labels end, or after no label at all, and where the
// digits are too many for a positive counter.
func sequence(child string) (n int32, label string, ok bool) {
	if len(child) < suffixLen {
		return 0, "", false
	}
	end := len(child)
	digits := child[end-suffixLen:]
	if digits[0] == '-' {
		// A minus and nine digits: -999999999 to -1.
		v, ok := decimal(digits[1:])
		return int32(-v), child[:end-suffixLen], ok
	}
	v, ok := decimal(digits)
	if !ok {
		return 0, "", false
	}
	label = child[:end-suffixLen]
	odd := label == "-" || strings.HasSuffix(label, "--") || strings.HasSuffix(label, "_-")
	if v >= 1e9 && strings.HasSuffix(label, "-") && (odd || v >= 1<<31) {
		if v > 1<<31 {
			return 0, "", false
		}
		return int32(-v), label[:len(label)-1], true
	}
	if v >= 1<<31 {
		return 0, "", false
	}
	return int32(v), label, true
}

// decimal reads a string of ASCII digits, without allocating: a queue read
// parses every child.
func decimal(s string) (int64, bool) {
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// classify tells a contender's kind from the prefix of its name. Only a
// name that marks a reader is shared: Curator's __READ__, kazoo's
// __rlock__, and the read-<id>- form of turnstile before it spoke
// Curator's. A semaphore's contender is marked by the permits it asks
// for. Every other contender is exclusive, the safe reading of a name
// not known (election candidates are never shared either).
func classify(label string) (turnstile.Kind, int) {
	if old, ok := strings.CutSuffix(label, "-"); ok {
		// An earlier turnstile's word-<id>-, still read during an
		// upgrade: the form etcd keys keep.
		if kind, permits, _, ok := queue.ParseNode(old); ok {
			return kind, permits
		}
		// A semaphore's _c_<id>-sem<permits>-.
		if _, word, ok := strings.Cut(old, "-"); ok && strings.HasPrefix(old, protected) {
			if kind, permits, ok := queue.ParseWord(word); ok && kind == turnstile.Permit {
				return kind, permits
			}
		}
	}
	switch {
	case strings.HasSuffix(label, recipe.ReadLabel), strings.HasSuffix(label, "__rlock__"):
		return turnstile.Shared, 0
	case strings.HasSuffix(label, recipe.LatchLabel):
		return turnstile.Candidate, 0
	}
	return turnstile.Exclusive, 0
}

// Sort puts contenders in ZooKeeper's order of creation. Sequence
// numbers are compared in serial-number arithmetic (RFC 1982) modulo 2^32,
// which is right across the counter's wrap because the contenders alive
// at once span far fewer than 2^31 creations.
func Sort(cs []queue.Contender) {
	if len(cs) < 2 {
		return
	}
	// A queue read sorts every contender, twice per hand-off in a long
	// queue: sorting the contenders themselves, 56-byte values, through
	// a comparison function took longer than the rest of the read's
	// client work. So each becomes one integer, its distance from the
	// first's sequence number above the lower 32 bits and its index in
	// them, and the integers are sorted.
	keys := make([]uint64, len(cs))
	for i, c := range cs {
		distance := int32(uint32(c.Seq) - uint32(cs[0].Seq))
		keys[i] = uint64(uint32(distance)+1<<31)<<32 | uint64(i)
	}
	slices.Sort(keys)
	sorted := make([]queue.Contender, len(cs))
	for i, k := range keys {
		sorted[i] = cs[uint32(k)]
	}
	copy(cs, sorted)
}
