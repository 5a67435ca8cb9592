package etcdtest

import (
	"testing"

	"github.com/turnstile-go/turnstile/internal/testing/leakcheck"
)

func TestMain(m *testing.M) {
	leakcheck.Main(m)
}
