package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/turnstile-go/turnstile/internal/testing/zktest"
)

// check reads the timeline: client 2 holds with a larger token than
// client 1, its write is accepted, and client 1's late write with the
// old token is refused, after client 2's write and before the end.
func check(t *testing.T, text string) {
	t.Helper()
	t.Log("\n" + text)
	m1 := regexp.MustCompile(`client 1 holds the lock: token (\d+)`).FindStringSubmatch(text)
	m2 := regexp.MustCompile(`client 2 holds the lock after .*; token (\d+)`).FindStringSubmatch(text)
	if m1 == nil || m2 == nil {
		t.Fatalf("no tokens in:\n%s", text)
	}
	old, _ := strconv.ParseInt(m1[1], 10, 64)
	cur, _ := strconv.ParseInt(m2[1], 10, 64)
	if cur <= old {
		t.Errorf("client 2's token %d is not larger than client 1's %d", cur, old)
	}
	order := []string{
		`storage accepts "written by client 2" from token ` + m2[1],
		`storage refuses "late write by client 1": turnstile: stale fencing token`,
		"the service agrees: turnstile: stale fencing token",
		"client 1 sees Lost() closed",
		`done: the storage holds "written by client 2"`,
	}
	at := 0
	for _, want := range order {
		i := strings.Index(text[at:], want)
		if i < 0 {
			t.Fatalf("no %q after offset %d in:\n%s", want, at, text)
		}
		at += i
	}
}

func TestEtcd(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), &out, nil); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	check(t, out.String())
}

func TestZooKeeper(t *testing.T) {
	var out strings.Builder
	servers := strings.Join(zktest.Start(t).Servers(), ",")
	if err := run(context.Background(), &out, []string{"-zk", servers}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	check(t, out.String())
}
