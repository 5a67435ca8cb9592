package turnstile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxIDLen bounds an election candidate's id, which every observer reads
// with each change of leader.
const MaxIDLen = 1024

// MaxNameLen bounds a name so that a contender's full path, the name plus
// a node of a few dozen bytes, stays far below both servers' limits.
const MaxNameLen = 1024

// ValidateName reports whether name can name a lock or an election on
// every backend, so that a program may move between ZooKeeper and etcd
// without renaming. A valid name is an absolute slash path such as
// /locks/orders: no empty, "." or ".." segment, no trailing slash, valid
// UTF-8 without the characters ZooKeeper refuses in a path (control
// characters, U+D800 to U+F8FF, U+FFF0 to U+FFFF), outside ZooKeeper's
// reserved /zookeeper tree, and at most MaxNameLen bytes. The error
// matches ErrInvalidName.
func ValidateName(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("%w %s: %s", ErrInvalidName, quote(name), err)
	}
	return nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		return errors.New("not valid UTF-8")
	case name[0] != '/':
		return errors.New("not an absolute path (must start with /)")
	case name == "/":
		return errors.New("the root cannot hold a queue")
	case strings.HasSuffix(name, "/"):
		return errors.New("trailing slash")
	case name == "/zookeeper" || strings.HasPrefix(name, "/zookeeper/"):
		return errors.New("inside ZooKeeper's reserved /zookeeper tree")
	}
	for _, r := range name {
		// ZooKeeper refuses these in paths; etcd would take them, but a
		// name must mean the same on both.
		if r == 0 || unicode.IsControl(r) || (r >= 0xd800 && r <= 0xf8ff) || r >= 0xfff0 && r <= 0xffff {
			return fmt.Errorf("character %U not allowed", r)
		}
	}
	for _, seg := range strings.Split(name[1:], "/") {
		switch seg {
		case "":
			return errors.New("empty segment")
		case ".", "..":
			return fmt.Errorf("relative segment %q", seg)
		}
	}
	return nil
}

// ValidateID reports whether id can identify an election candidate: not
// empty (an empty id is how Observe says that no one leads), valid UTF-8
// without control characters, at most MaxIDLen bytes. The error matches
// ErrInvalidID.
func ValidateID(id string) error {
	var err error
	switch {
	case id == "":
		err = errors.New("empty")
	case len(id) > MaxIDLen:
		err = fmt.Errorf("longer than %d bytes", MaxIDLen)
	case !utf8.ValidString(id):
		err = errors.New("not valid UTF-8")
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		err = errors.New("control character")
	}
	if err != nil {
		return fmt.Errorf("%w %s: %s", ErrInvalidID, quote(id), err)
	}
	return nil
}

// quote quotes input for an error, cut short: a caller may pass input as
// large as it was given, and errors end up in logs.
func quote(input string) string {
	if len(input) > 64 {
		return strconv.Quote(input[:64]) + "…"
	}
	return strconv.Quote(input)
}
