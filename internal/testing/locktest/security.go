package locktest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile"
)

// Protected checks a name that only some clients may use. env's NewMutex
// gives mutexes of authorised clients, and its Queued must read with
// authorised credentials too. While an authorised holder holds name and
// two more authorised contenders wait, each outsider (a client without
// credentials, with wrong ones, or with another name's) fails Lock and
// TryLock at once with an error matching turnstile.ErrNotAuthorized and
// leaves nothing queued; tamper then tries, with the outsiders' own
// connections, whatever a client might do to the holder's contender at
// key, asserting each refusal itself. Afterwards the hold is intact and
// the authorised contenders are granted in order, with increasing tokens.
func Protected(t *testing.T, env Env, name string, outsiders map[string]Locker, tamper func(tb testing.TB, key string)) {
	t.Helper()
	lockers := []Locker{env.NewMutex(t, name), env.NewMutex(t, name), env.NewMutex(t, name)}
	var occ occupancy
	release := queueUp(t, env, name, lockers, &occ, nil)
	holder := lockers[0]
	key, token := holder.Sequencer().Key, holder.Token()

	for who, m := range outsiders {
		// A refusal comes in one round trip; a hang would run into the
		// deadline and fail the errors.Is check below.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		for op, f := range map[string]func(context.Context) error{"Lock": m.Lock, "TryLock": m.TryLock} {
			if err := f(ctx); !errors.Is(err, turnstile.ErrNotAuthorized) {
				t.Errorf("%s by %s: %v, want ErrNotAuthorized", op, who, err)
			} else {
				t.Logf("%s by %s: %v", op, who, err)
			}
		}
		cancel()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s took %v to be refused", who, d)
		}
		if err := m.Unlock(context.Background()); !errors.Is(err, turnstile.ErrNotHeld) {
			t.Errorf("Unlock by %s: %v, want ErrNotHeld", who, err)
		}
	}
	tamper(t, key)

	select {
	case <-holder.Lost():
		t.Errorf("the holder lost its hold to an outsider")
	default:
	}
	if got := holder.Token(); got != token {
		t.Errorf("the holder's token changed from %d to %d", token, got)
	}
	if q := env.Queued(t, name); q != len(lockers) {
		t.Errorf("%d contenders queued after the outsiders' attempts, want %d", q, len(lockers))
	}
	release()
	occ.check(t, []int{0, 1, 2})
	if q := env.Queued(t, name); q != 0 {
		t.Errorf("%d contenders left in the queue", q)
	}
}

// Secret records a session's log, debug records too, so that a test can
// check that a credential shows in none of it.
type Secret struct {
	value string
	mu    sync.Mutex
	buf   bytes.Buffer
}

// NewSecret returns a recorder that looks for value.
func NewSecret(value string) *Secret { return &Secret{value: value} }

// Logger returns a logger that writes to the recorder.
func (s *Secret) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Write records p; session goroutines log concurrently with the test.
func (s *Secret) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// Check fails tb if the secret appears in the log or in any of errs, and
// if nothing was logged at all, which would prove nothing.
func (s *Secret) Check(tb testing.TB, errs ...error) {
	tb.Helper()
	s.mu.Lock()
	log := s.buf.String()
	s.mu.Unlock()
	if log == "" {
		tb.Error("nothing was logged")
	}
	if strings.Contains(log, s.value) {
		tb.Errorf("the secret appears in the log:\n%s", log)
	}
	for _, err := range errs {
		if err == nil {
			tb.Error("no error to check")
		} else if strings.Contains(err.Error(), s.value) {
			tb.Errorf("the secret appears in an error: %v", err)
		}
	}
}
