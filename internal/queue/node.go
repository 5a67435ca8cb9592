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
	word, id, found := strings.Cut(seg, "-")
	if !found || len(id) != idLen || strings.Trim(id, "0123456789abcdef") != "" {
		return 0, "", false
	}
	for k, w := range words {
		if word == w {
			return k, id, true
		}
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
	kind, id, ok = ParseNode(word + "-" + rest[:idLen])
	return kind, id, int64(uint32(int32(n))), ok
}

// SortZNodes puts contenders in ZooKeeper's order of creation. Sequence
// numbers are compared in serial-number arithmetic (RFC 1982) modulo 2^32,
// which is right across the counter's wrap because the contenders alive
// at once span far fewer than 2^31 creations.
func SortZNodes(cs []turnstile.Contender) {
	slices.SortStableFunc(cs, func(a, b turnstile.Contender) int {
		return int(int32(uint32(a.Seq) - uint32(b.Seq)))
	})
}
