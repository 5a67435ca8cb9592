package turnstile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A Sequencer describes one hold (Chubby's word): the name held, the
// mode and the fencing token, and the contender on the server that
// holds, so that a resource elsewhere can check the hold with a Fence or
// ask the server whether it is still current. Mutex, RWMutex, Semaphore
// and Election give theirs; its text form travels in an HTTP header or
// gRPC metadata.
//
// The zero Sequencer stands for no hold and is not valid.
type Sequencer struct {
	// Name is the lock's or election's name.
	Name string
	// Mode is Exclusive for a mutex, a write lock or leadership, Shared
	// for a read lock or a semaphore's permit.
	Mode Kind
	// Token is the hold's fencing token.
	Token int64
	// Key is the holder's contender on the server, a child of Name: a
	// znode path on ZooKeeper, a key on etcd.
	Key string
}

// Validate reports whether s could describe a hold: a known mode, a
// positive token, and a Key that is Name, a slash and one more segment.
// The error matches ErrInvalidSequencer.
func (s Sequencer) Validate() error {
	if err := s.check(); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidSequencer, err)
	}
	return nil
}

func (s Sequencer) check() error {
	if err := s.checkHold(); err != nil {
		return err
	}
	node, ok := strings.CutPrefix(s.Key, s.Name+"/")
	if !ok {
		return fmt.Errorf("key %q is not under %q", s.Key, s.Name)
	}
	if node == "" || len(node) > maxNodeLen || strings.Trim(node, nodeChars) != "" {
		return fmt.Errorf("key %q does not name a contender", s.Key)
	}
	return nil
}

// checkHold checks what a Fence needs: name, mode and token.
func (s Sequencer) checkHold() error {
	if s == (Sequencer{}) {
		return errors.New("no hold")
	}
	if s.Mode != Exclusive && s.Mode != Shared {
		return fmt.Errorf("mode %s, not exclusive or shared", s.Mode)
	}
	if s.Token <= 0 {
		return fmt.Errorf("token %d, not positive", s.Token)
	}
	return ValidateName(s.Name)
}

// Contenders' last segments, as both backends write them, are short and
// plain.
const (
	maxNodeLen = 128
	nodeChars  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
)

// String returns the text form of s, as in
//
//	exclusive:8589934595:/locks/orders/_c_3f2a9c0d1e4b5a69-lock-0000000007
//
// mode, token and key, separated by colons. Bytes of the key outside
// printable ASCII, spaces and '%' are written %XX, so the form is one
// printable ASCII word. It returns "" for a Sequencer that is not valid.
func (s Sequencer) String() string {
	if s.Validate() != nil {
		return ""
	}
	return s.Mode.String() + ":" + strconv.FormatInt(s.Token, 10) + ":" + escape(s.Key)
}

// MarshalText returns the text form of s, and an error matching
// ErrInvalidSequencer if s is not valid.
func (s Sequencer) MarshalText() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads the text form, as ParseSequencer does.
func (s *Sequencer) UnmarshalText(text []byte) error {
	v, err := ParseSequencer(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSequencer reads the text form that String writes. Anything else,
// including a form String would write differently, is an error matching
// ErrInvalidSequencer.
func ParseSequencer(text string) (Sequencer, error) {
	s, err := parseSequencer(text)
	if err != nil {
		return Sequencer{}, fmt.Errorf("%w %s: %s", ErrInvalidSequencer, quote(text), err)
	}
	return s, nil
}

func parseSequencer(text string) (Sequencer, error) {
	mode, rest, ok1 := strings.Cut(text, ":")
	token, key, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return Sequencer{}, errors.New("want mode:token:key")
	}
	var s Sequencer
	switch mode {
	case "exclusive":
		s.Mode = Exclusive
	case "shared":
		s.Mode = Shared
	default:
		return Sequencer{}, fmt.Errorf("mode %q, not exclusive or shared", mode)
	}
	t, err := strconv.ParseInt(token, 10, 64)
	if err != nil || strconv.FormatInt(t, 10) != token {
		return Sequencer{}, fmt.Errorf("token %q is not a decimal number", token)
	}
	s.Token = t
	if s.Key, err = unescape(key); err != nil {
		return Sequencer{}, err
	}
	s.Name = s.Key[:max(strings.LastIndexByte(s.Key, '/'), 0)]
	if err := s.check(); err != nil {
		return Sequencer{}, err
	}
	if s.String() != text {
		return Sequencer{}, errors.New("not in canonical form")
	}
	return s, nil
}

const hexDigits = "0123456789ABCDEF"

func escape(key string) string {
	var b strings.Builder
	for i := range len(key) {
		c := key[i]
		if c <= ' ' || c >= 0x7f || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("truncated %-escape")
		}
		hi, lo := strings.IndexByte(hexDigits, s[i+1]), strings.IndexByte(hexDigits, s[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("bad %%-escape %q", s[i:i+3])
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return b.String(), nil
}
