package queue

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"

	"github.com/turnstile-go/turnstile"
)

// idLen is the length of a contender id: 64 random bits in hex, enough
// that two Lock calls never pick the same one.
const idLen = 16

// NewID returns a fresh contender id. Each attempt to join a queue gets
// its own, so that a contender whose join reply was lost can find its own
// node again, and a stale release cannot match a later contender.
func NewID() string {
	var b [idLen / 2]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

// words name the kinds in contenders' names, short and readable in an
// operator's listing of a queue.
var words = map[turnstile.Kind]string{
	turnstile.Exclusive: "lock",
	turnstile.Shared:    "read",
	turnstile.Candidate: "lead",
}

// Node returns the last path segment of a contender: kind, then id, as in
// "lock-3f2a9c0d1e4b5a69". ZooKeeper appends "-" and its sequence number.
func Node(kind turnstile.Kind, id string) string {
	return words[kind] + "-" + id
}

// ParseNode reads a segment written by Node. ok is false for anything
// else under a name, which the recipes ignore rather than refuse: an
// operator's or another program's entry must not stop a queue.
func ParseNode(seg string) (kind turnstile.Kind, id string, ok bool) {
	word, id, _ := strings.Cut(seg, "-")
	return parse(word, id)
}

// parse reads a contender's kind word and id.
func parse(word, id string) (turnstile.Kind, string, bool) {
	if len(id) != idLen || strings.Trim(id, "0123456789abcdef") != "" {
		return 0, "", false
	}
	// A switch rather than a lookup in words: a queue read parses every
	// contender's name, and ranging over a map cost more than the rest.
	switch word {
	case words[turnstile.Exclusive]:
		return turnstile.Exclusive, id, true
	case words[turnstile.Shared]:
		return turnstile.Shared, id, true
	case words[turnstile.Candidate]:
		return turnstile.Candidate, id, true
	}
	return 0, "", false
}

// ParseZNode reads a ZooKeeper child created from Node with a sequential
// suffix. The suffix is the parent's signed 32-bit counter, printed as
// such, so past 2^31 it reads negative; seq is that counter taken modulo
// 2^32, which SortZNodes orders correctly across the wrap.
func ParseZNode(child string) (kind turnstile.Kind, id string, seq int64, ok bool) {
	word, rest, _ := strings.Cut(child, "-")
	if len(rest) < idLen+1+10 || rest[idLen] != '-' {
		return 0, "", 0, false
	}
	// ZooKeeper prints the counter with %010d: "0000000007", "-000000001".
	n, err := strconv.ParseInt(rest[idLen+1:], 10, 32)
	if err != nil {
		return 0, "", 0, false
	}
	kind, id, ok = parse(word, rest[:idLen])
	return kind, id, int64(uint32(int32(n))), ok
}

// SortZNodes puts contenders in ZooKeeper's order of creation. Sequence
// numbers are compared in serial-number arithmetic (RFC 1982) modulo 2^32,
// which is right across the counter's wrap because the contenders alive
// at once span far fewer than 2^31 creations.
func SortZNodes(cs []turnstile.Contender) {
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
	sorted := make([]turnstile.Contender, len(cs))
	for i, k := range keys {
		sorted[i] = cs[uint32(k)]
	}
	copy(cs, sorted)
}
