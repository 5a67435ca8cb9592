package proxy

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// echo serves lines back on a loopback port; the real servers are
// exercised through the proxy by the harness tests.
func echo(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, r *bufio.Reader, msg string) (string, error) {
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	return r.ReadString('\n')
}

// dialEcho starts a proxy in front of an echo server and connects a
// client through it; both close with the test.
func dialEcho(t *testing.T) (*Proxy, net.Conn, *bufio.Reader) {
	p, err := Start(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c, bufio.NewReader(c)
}

func TestCutAndRestore(t *testing.T) {
	p, c, r := dialEcho(t)
	if got, err := roundTrip(c, r, "one"); err != nil || got != "one\n" {
		t.Fatalf("through the proxy: %q %v", got, err)
	}
	// The count is taken after the write returns, which may be after the
	// echo arrived.
	for deadline := time.Now().Add(time.Second); p.Sent() != 4; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Sent() = %d, want 4", p.Sent())
		}
	}

	p.Cut()
	if _, err := roundTrip(c, r, "two"); err == nil {
		t.Fatal("a live connection survived Cut")
	}
	held, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	hr := bufio.NewReader(held)
	held.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if got, err := roundTrip(held, hr, "three"); err == nil {
		t.Fatalf("a connection made while cut was answered: %q", got)
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("a connection made while cut was reset (%v); a partition is silent", err)
	}

	p.Restore()
	held.SetReadDeadline(time.Time{})
	if got, err := hr.ReadString('\n'); err != nil || got != "three\n" {
		t.Fatalf("held connection after Restore: %q %v", got, err)
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(c2, bufio.NewReader(c2), "four"); err != nil || got != "four\n" {
		t.Fatalf("new connection after Restore: %q %v", got, err)
	}
}

// A held direction keeps bytes back without losing them or dropping the
// connection.
func TestHoldAndRelease(t *testing.T) {
	p, c, r := dialEcho(t)

	silent := func(what string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if got, err := r.ReadString('\n'); err == nil {
			t.Fatalf("%s: %q came through", what, got)
		}
		c.SetReadDeadline(time.Time{})
	}
	for _, d := range []Direction{ToClient, ToServer} {
		p.Hold(d)
		before := p.Sent()
		if _, err := c.Write([]byte("held\n")); err != nil {
			t.Fatal(err)
		}
		silent("while held")
		if forwarded := p.Sent() - before; d == ToServer && forwarded != 0 {
			t.Errorf("%d bytes reached the server while held", forwarded)
		}
		p.Release(d)
		if got, err := r.ReadString('\n'); err != nil || got != "held\n" {
			t.Fatalf("after Release(%d): %q %v", d, got, err)
		}
	}

	p.Hold(ToClient)
	p.Cut()
	if _, err := roundTrip(c, r, "cut"); err == nil {
		t.Fatal("a held connection survived a cut")
	}
}
