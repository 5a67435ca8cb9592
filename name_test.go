package turnstile_test

import (
	"errors"
	"path"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/turnstile-go/turnstile"
)

func TestValidateName(t *testing.T) {
	for _, name := range []string{
		"/a", "/locks/orders", "/locks/orders-2026/eu_west.1", "/zookeeper2", "/zoo/keeper",
		"/ünïcode/名前", "/" + strings.Repeat("a", turnstile.MaxNameLen-1),
	} {
		if err := turnstile.ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{
		"", "/", "locks/orders", "./locks", "/locks/", "/locks//orders", "/locks/./orders",
		"/locks/../orders", "/..", "/.", "/locks/a\x00b", "/locks/\x01", "/locks/\n", "/a\x7f",
		"/zookeeper", "/zookeeper/quota", "/bad\xffutf8", "/\ufff5", "/\ue000private",
		"/" + strings.Repeat("a", turnstile.MaxNameLen),
	} {
		err := turnstile.ValidateName(name)
		if !errors.Is(err, turnstile.ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", name, err)
		}
	}
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"a", "worker-7@host.example:8080", "名前 with spaces", strings.Repeat("x", turnstile.MaxIDLen)} {
		if err := turnstile.ValidateID(id); err != nil {
			t.Errorf("ValidateID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{"", "a\x00b", "line\nbreak", "\xff", strings.Repeat("x", turnstile.MaxIDLen+1)} {
		if err := turnstile.ValidateID(id); !errors.Is(err, turnstile.ErrInvalidID) {
			t.Errorf("ValidateID(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

// FuzzValidateName checks that every input gets a verdict without panic,
// that a refusal matches ErrInvalidName and quotes a bounded part of the
// input, and that an accepted name is a canonical absolute path that a
// Sequencer carries to a resource and back unchanged.
func FuzzValidateName(f *testing.F) {
	for _, seed := range []string{
		"/locks/orders", "/ünïcode/名前", "/jobs/nightly run:eu/50%", "/zookeeper2",
		"", "/", "locks", "/locks/", "/a//b", "/a/./b", "/a/../b", "/a\x00b", "/a\x7f", "/\ufff5",
		"/zookeeper/quota", "/bad\xffutf8", "/" + strings.Repeat("a", turnstile.MaxNameLen),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := turnstile.ValidateName(name)
		if err != nil {
			if !errors.Is(err, turnstile.ErrInvalidName) {
				t.Fatalf("ValidateName(%q) = %v, not ErrInvalidName", name, err)
			}
			if len(err.Error()) > 512 {
				t.Fatalf("ValidateName: an error of %d bytes", len(err.Error()))
			}
			return
		}
		if len(name) > turnstile.MaxNameLen || !utf8.ValidString(name) || path.Clean(name) != name || name == "/" ||
			strings.HasPrefix(name+"/", "/zookeeper/") || strings.IndexFunc(name, unicode.IsControl) >= 0 {
			t.Fatalf("ValidateName accepted %q", name)
		}
		seq := turnstile.Sequencer{Name: name, Mode: turnstile.Exclusive, Token: 1, Key: name + "/lock-0000000001"}
		if got, err := turnstile.ParseSequencer(seq.String()); err != nil || got != seq {
			t.Fatalf("a hold on %q reads back as %+v, %v", name, got, err)
		}
	})
}
