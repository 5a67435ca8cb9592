package turnstile_test

import (
	"errors"
	"strings"
	"testing"

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
