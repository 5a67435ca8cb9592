package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/syncbuf"
	"github.com/turnstile-go/turnstile/internal/testing/zktest"
)

// The demo on the embedded etcd: one worker leads, crashes, stops
// working, and the next one leads with a larger term.
func TestDemo(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), &out, nil); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	leads := regexp.MustCompile(`(worker-\d) leads with term (\d+)`).FindAllStringSubmatch(text, -1)
	if len(leads) < 2 {
		t.Fatalf("want two leaders:\n%s", text)
	}
	first, _ := strconv.ParseInt(leads[0][2], 10, 64)
	second, _ := strconv.ParseInt(leads[1][2], 10, 64)
	crashed := leads[0][1]
	for _, want := range []string{
		crashed + " crashes", crashed + " stops working", crashed + " is out", "done: leadership passed",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	if second <= first || leads[1][1] == crashed {
		t.Errorf("the second leader must be another worker with a larger term:\n%s", text)
	}
	// The crashed leader stops before the next one starts.
	if strings.Index(text, crashed+" stops working") > strings.Index(text, leads[1][0]) {
		t.Errorf("two workers worked at once:\n%s", text)
	}
}

// One copy on ZooKeeper leads, works, and stops when told to.
func TestZooKeeper(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, out, []string{"-zk", strings.Join(zktest.Start(t).Servers(), ","), "-id", "copy-1"})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "copy-1 works") {
		if time.Now().After(deadline) {
			t.Fatalf("the copy never worked:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("run: %v, want context.Canceled\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "copy-1 stops working") {
		t.Errorf("the copy did not stop working:\n%s", out.String())
	}
}
