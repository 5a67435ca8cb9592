package queue

import (
	"crypto/rand"
	"encoding/hex"
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

// permitWord starts the word of a semaphore's contender, followed by
// the permits it asks for, as in "sem3": every contender says how many
// it allows, so that contenders that disagree can all keep to the
// fewest.
const permitWord = "sem"

// MaxPermits bounds a semaphore's permits, so that the number fits a
// contender's name in a few digits.
const MaxPermits = 1 << 20

// Word names a contender's kind, and a Permit contender's permits, in
// its name: "lock", "read", "lead", "sem3".
func Word(kind turnstile.Kind, permits int) string {
	if kind == turnstile.Permit {
		return permitWord + strconv.Itoa(permits)
	}
	return words[kind]
}

// PermitLabel is the label (see recipe.Backend.Join) of a semaphore's
// contender asking for permits: its Word and a dash, as in "sem3-",
// which ZooKeeper nodes carry as _c_<id>-sem3-<sequence> and etcd keys
// as sem3-<id>. No other client writes it.
func PermitLabel(permits int) string {
	return Word(turnstile.Permit, permits) + "-"
}

// Node returns the last path segment of an etcd contender: its word, then
// id, as in "lock-3f2a9c0d1e4b5a69". (ZooKeeper nodes are named as Curator
// names them; zklock reads this form too, as an earlier turnstile wrote
// it there.)
func Node(word, id string) string {
	return word + "-" + id
}

// ParseNode reads a segment written by Node. ok is false for anything
// else under a name, which the recipes ignore rather than refuse: an
// operator's or another program's entry must not stop a queue.
func ParseNode(seg string) (kind turnstile.Kind, permits int, id string, ok bool) {
	word, id, _ := strings.Cut(seg, "-")
	if len(id) != idLen || strings.Trim(id, "0123456789abcdef") != "" {
		return 0, 0, "", false
	}
	kind, permits, ok = ParseWord(word)
	return kind, permits, id, ok
}

// ParseWord reads a word that Word writes.
func ParseWord(word string) (kind turnstile.Kind, permits int, ok bool) {
	// A switch rather than a lookup in words: a queue read parses every
	// contender's name, and ranging over a map cost more than the rest.
	switch word {
	case words[turnstile.Exclusive]:
		return turnstile.Exclusive, 0, true
	case words[turnstile.Shared]:
		return turnstile.Shared, 0, true
	case words[turnstile.Candidate]:
		return turnstile.Candidate, 0, true
	}
	digits, ok := strings.CutPrefix(word, permitWord)
	// Written by Word alone: no sign, no leading zero.
	if !ok || digits == "" || digits[0] == '0' || len(digits) > 7 || strings.Trim(digits, "0123456789") != "" {
		return 0, 0, false
	}
	n, _ := strconv.Atoi(digits)
	if n > MaxPermits {
		return 0, 0, false
	}
	return turnstile.Permit, n, true
}
