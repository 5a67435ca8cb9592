package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/turnstile-go/turnstile/internal/testing/zktest"
)

// check runs the quickstart with args and checks what it prints: every
// hold, in increasing token order.
func check(t *testing.T, args ...string) {
	var out strings.Builder
	if err := run(context.Background(), &out, append(args, "-workers", "3", "-rounds", "2")); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	holds := regexp.MustCompile(`worker \d holds /locks/quickstart with token (\d+)`).FindAllStringSubmatch(out.String(), -1)
	if len(holds) != 6 || !strings.Contains(out.String(), "done: 6 holds") {
		t.Fatalf("want 6 holds and the summary:\n%s", out.String())
	}
	last := int64(0)
	for _, h := range holds {
		token, _ := strconv.ParseInt(h[1], 10, 64)
		if token <= last {
			t.Fatalf("token %d printed after %d:\n%s", token, last, out.String())
		}
		last = token
	}
}

func TestEmbeddedEtcd(t *testing.T) { check(t) }

func TestZooKeeper(t *testing.T) {
	check(t, "-zk", strings.Join(zktest.Start(t).Servers(), ","))
}
