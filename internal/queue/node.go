package queue

import (
	"crypto/rand"
	"encoding/hex"
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

// Node returns the last path segment of an etcd contender: kind, then id,
// as in "lock-3f2a9c0d1e4b5a69". (ZooKeeper nodes are named as Curator
// names them; zklock reads this form too, as an earlier turnstile wrote
// it there.)
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
