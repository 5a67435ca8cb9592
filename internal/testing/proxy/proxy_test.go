package proxy

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// echo serves lines back on a loopback port; the real servers are
// exercised through the proxy by the harness tests.
func echo(t *testing.T) string {
	addr, _, _ := echoCounting(t)
	return addr
}

// echoCounting is echo, counting the connections it accepted, and those
// it saw closed.
func echoCounting(t *testing.T) (addr string, accepted, ended *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted, ended = new(atomic.Int32), new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() { io.Copy(c, c); c.Close(); ended.Add(1) }()
		}
	}()
	return ln.Addr().String(), accepted, ended
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
	return dialThrough(t, echo(t))
}

// dialThrough starts a proxy in front of target and connects a client
// through it; both close with the test.
func dialThrough(t *testing.T, target string, opts ...Option) (*Proxy, net.Conn, *bufio.Reader) {
	p, err := Start(target, opts...)
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

// A partition keeps live connections open and silent both ways, a close
// too, keeps new ones from the target, and delivers everything on Heal.
func TestPartitionAndHeal(t *testing.T) {
	target, accepted, ended := echoCounting(t)
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	live, lr := dial()
	closing, cr := dial()
	for _, c := range []struct {
		c net.Conn
		r *bufio.Reader
	}{{live, lr}, {closing, cr}} {
		if got, err := roundTrip(c.c, c.r, "one"); err != nil || got != "one\n" {
			t.Fatalf("through the proxy: %q %v", got, err)
		}
	}

	p.Partition()
	if _, err := live.Write([]byte("two\n")); err != nil {
		t.Fatal(err)
	}
	closing.Close()
	fresh, fr := dial()
	if _, err := fresh.Write([]byte("three\n")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		c net.Conn
		r *bufio.Reader
	}{{live, lr}, {fresh, fr}} {
		c.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if got, err := c.r.ReadString('\n'); err == nil {
			t.Fatalf("%q came through a partition", got)
		} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Fatalf("a partitioned connection ended (%v); a partition is silent", err)
		}
		c.c.SetReadDeadline(time.Time{})
	}
	if n := accepted.Load(); n != 2 {
		t.Errorf("the target accepted %d connections, want the 2 made before the partition", n)
	}
	if n := ended.Load(); n != 0 {
		t.Errorf("the target saw %d connections close through the partition", n)
	}

	p.Heal()
	if got, err := lr.ReadString('\n'); err != nil || got != "two\n" {
		t.Fatalf("live connection after Heal: %q %v", got, err)
	}
	if got, err := fr.ReadString('\n'); err != nil || got != "three\n" {
		t.Fatalf("connection made while partitioned, after Heal: %q %v", got, err)
	}
	for deadline := time.Now().Add(time.Second); ended.Load() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the close made during the partition did not arrive after Heal")
		}
	}
}

// A greeting rewrites the start of each connection, and nothing after it.
func TestGreeting(t *testing.T) {
	_, c, r := dialThrough(t, echo(t), Greeting(func(r io.Reader) ([]byte, error) {
		head := make([]byte, 3)
		_, err := io.ReadFull(r, head)
		return []byte("new " + string(head)), err
	}))
	for _, step := range []struct{ sent, want string }{{"one", "new one\n"}, {"two", "two\n"}} {
		if got, err := roundTrip(c, r, step.sent); err != nil || got != step.want {
			t.Fatalf("sent %q, got %q %v, want %q", step.sent, got, err, step.want)
		}
	}
}

// With Redial, a connection made before the target listens reaches it
// once it does.
func TestRedial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, c, _ := dialThrough(t, addr, Redial(5*time.Second))
	if _, err := c.Write([]byte("early\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * redialInterval)
	if ln, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	defer ln.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := bufio.NewReader(s).ReadString('\n'); err != nil || got != "early\n" {
		t.Fatalf("the target got %q %v", got, err)
	}
}
