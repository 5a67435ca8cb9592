package testenv

import (
	"net"
	"os"
	"testing"
	"time"
)

// TestCallerHelper is the process that calls, when Caller's test starts
// this test binary again with the address to dial.
func TestCallerHelper(t *testing.T) {
	addr := os.Getenv("TESTENV_CALL")
	if addr == "" {
		t.Skip("run by TestCaller")
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		os.Exit(1)
	}
	defer c.Close()
	time.Sleep(time.Minute) // killed by TestCaller
}

func TestCaller(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	procs := make([]*Process, 2)
	for i := range procs {
		procs[i] = &Process{Name: "caller", Path: os.Args[0], Args: []string{"-test.run=^TestCallerHelper$"}, Dir: dir, Log: dir + "/log"}
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.Kill()
		}
	})
	for want := len(procs) - 1; want >= 0; want-- {
		t.Setenv("TESTENV_CALL", ln.Addr().String())
		if err := procs[want].Start(); err != nil {
			t.Fatal(err)
		}
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := Caller(c, procs); err != nil || got != want {
			t.Fatalf("Caller = %d, %v; want %d", got, err, want)
		}
	}
	self, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := Caller(c, procs); err == nil {
		t.Fatalf("Caller = %d for a connection none of them opened", got)
	}
}
