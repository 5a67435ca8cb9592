package turnstile_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/turnstile-go/turnstile"
)

func TestSequencerText(t *testing.T) {
	for _, c := range []struct {
		seq  turnstile.Sequencer
		text string
	}{
		{turnstile.Sequencer{Name: "/locks/orders", Mode: turnstile.Exclusive, Token: 8589934595, Key: "/locks/orders/lock-3f2a9c0d1e4b5a69-0000000007"},
			"exclusive:8589934595:/locks/orders/lock-3f2a9c0d1e4b5a69-0000000007"},
		{turnstile.Sequencer{Name: "/a", Mode: turnstile.Shared, Token: 1, Key: "/a/read-3f2a9c0d1e4b5a69"},
			"shared:1:/a/read-3f2a9c0d1e4b5a69"},
		// Names may hold spaces, colons, '%' and any Unicode; the text
		// stays one word of printable ASCII.
		{turnstile.Sequencer{Name: "/jobs/nightly run:eu/50%/名前", Mode: turnstile.Exclusive, Token: 42, Key: "/jobs/nightly run:eu/50%/名前/lead-00000000000000ff"},
			"exclusive:42:/jobs/nightly%20run:eu/50%25/%E5%90%8D%E5%89%8D/lead-00000000000000ff"},
	} {
		if got := c.seq.String(); got != c.text {
			t.Errorf("String() = %q, want %q", got, c.text)
		}
		got, err := turnstile.ParseSequencer(c.text)
		if err != nil || got != c.seq {
			t.Errorf("ParseSequencer(%q) = %+v, %v; want %+v", c.text, got, err, c.seq)
		}
		// The text form is what JSON carries too.
		b, err := json.Marshal(map[string]turnstile.Sequencer{"hold": c.seq})
		if err != nil {
			t.Fatal(err)
		}
		var back map[string]turnstile.Sequencer
		if err := json.Unmarshal(b, &back); err != nil || back["hold"] != c.seq {
			t.Errorf("JSON round trip of %s: %s gave %+v, %v", c.text, b, back["hold"], err)
		}
	}
}

func TestParseSequencerRejects(t *testing.T) {
	for _, text := range []string{
		"",
		"exclusive",
		"exclusive:5",
		"exclusive:5:",
		"candidate:5:/a/lead-00000000000000ff",
		"Exclusive:5:/a/lock-00000000000000ff",
		"exclusive:0:/a/lock-00000000000000ff",
		"exclusive:-5:/a/lock-00000000000000ff",
		"exclusive:+5:/a/lock-00000000000000ff",
		"exclusive:05:/a/lock-00000000000000ff",
		"exclusive:5x:/a/lock-00000000000000ff",
		"exclusive:99999999999999999999:/a/lock-00000000000000ff",
		"exclusive:5:/lock-00000000000000ff",           // no name above the node
		"exclusive:5:a/lock-00000000000000ff",          // relative
		"exclusive:5:/a/",                              // no node
		"exclusive:5:/a//lock-00000000000000ff",        // empty segment
		"exclusive:5:/a/../lock-00000000000000ff",      // relative segment
		"exclusive:5:/zookeeper/lock-00000000000000ff", // reserved
		"exclusive:5:/a/lock 00000000000000ff",         // raw space
		"exclusive:5:/a%2Fb/lock-00000000000000ff",     // escaped slash
		"exclusive:5:/a/lock-0000%3000000000ff",        // needless escape
		"exclusive:5:/a%/lock-00000000000000ff",        // bad escape
		"exclusive:5:/a/lock-00000000000000ff%2",       // truncated escape
		"exclusive:5:/a%e5/lock-00000000000000ff",      // lower-case escape
		"exclusive:5:/a%FF/lock-00000000000000ff",      // not UTF-8
		"exclusive:5:/a%0A/lock-00000000000000ff",      // control character
		"exclusive:5:/a/lock-00000000000000ff:extra:!", // ':' in the node
		"exclusive:5:/a/" + strings.Repeat("x", 200),   // node too long
	} {
		s, err := turnstile.ParseSequencer(text)
		if !errors.Is(err, turnstile.ErrInvalidSequencer) || s != (turnstile.Sequencer{}) {
			t.Errorf("ParseSequencer(%q) = %+v, %v; want ErrInvalidSequencer", text, s, err)
		}
	}
}

func TestSequencerValidate(t *testing.T) {
	good := turnstile.Sequencer{Name: "/a", Mode: turnstile.Exclusive, Token: 7, Key: "/a/lock-00000000000000ff"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []turnstile.Sequencer{
		{},
		{Name: "/a", Mode: turnstile.Candidate, Token: 7, Key: "/a/lead-00000000000000ff"},
		{Name: "/a", Mode: turnstile.Exclusive, Token: 0, Key: "/a/lock-00000000000000ff"},
		{Name: "/a", Mode: turnstile.Exclusive, Token: 7, Key: "/b/lock-00000000000000ff"},
		{Name: "/a", Mode: turnstile.Exclusive, Token: 7, Key: "/a/b/lock-00000000000000ff"},
		{Name: "a", Mode: turnstile.Exclusive, Token: 7, Key: "a/lock-00000000000000ff"},
	} {
		if err := bad.Validate(); !errors.Is(err, turnstile.ErrInvalidSequencer) {
			t.Errorf("%+v.Validate() = %v, want ErrInvalidSequencer", bad, err)
		}
		if s := bad.String(); s != "" {
			t.Errorf("%+v.String() = %q, want \"\"", bad, s)
		}
		if _, err := bad.MarshalText(); !errors.Is(err, turnstile.ErrInvalidSequencer) {
			t.Errorf("%+v.MarshalText() = %v, want ErrInvalidSequencer", bad, err)
		}
	}
}

// Whatever ParseSequencer accepts, String writes back unchanged and
// Validate accepts; nothing panics.
func FuzzParseSequencer(f *testing.F) {
	for _, seed := range []string{
		"exclusive:8589934595:/locks/orders/lock-3f2a9c0d1e4b5a69-0000000007",
		"shared:1:/a/read-3f2a9c0d1e4b5a69",
		"exclusive:42:/jobs/nightly%20run:eu/50%25/%E5%90%8D%E5%89%8D/lead-00000000000000ff",
		"exclusive:5:/a%/lock-00000000000000ff",
		"shared::",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := turnstile.ParseSequencer(text)
		if err != nil {
			if !errors.Is(err, turnstile.ErrInvalidSequencer) {
				t.Fatalf("ParseSequencer(%q) = %v, not ErrInvalidSequencer", text, err)
			}
			return
		}
		if s.Validate() != nil || s.String() != text {
			t.Fatalf("ParseSequencer(%q) = %+v, which writes back as %q", text, s, s.String())
		}
	})
}
