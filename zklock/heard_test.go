package zklock

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/turnstile-go/turnstile/internal/testing/zktest"
)

// frame is a length-prefixed frame whose body begins with the words w
// and is size bytes long.
func frame(size int, w ...int32) []byte {
	f := binary.BigEndian.AppendUint32(nil, uint32(size))
	for _, v := range w {
		f = binary.BigEndian.AppendUint32(f, uint32(v))
	}
	return append(f, make([]byte, size-4*len(w))...)
}

// frames finds every frame's head however the stream is cut into reads.
func TestFramesScan(t *testing.T) {
	var stream []byte
	var want []frameHead
	for i, size := range []int{36, 8, 16, 1000, 9, 20} {
		w := [2]int32{int32(i) - 2, int32(i) * 7}
		stream = append(stream, frame(size, w[0], w[1])...)
		want = append(want, frameHead{words: w, first: i == 0})
	}
	for size := 1; size <= len(stream); size++ {
		var f frames
		var got []frameHead
		for chunk := range slices.Chunk(stream, size) {
			got = f.scan(chunk, got)
		}
		if !slices.Equal(got, want) || f.complete != len(want) || f.left != 0 || f.got != 0 {
			t.Fatalf("reads of %d bytes: heads %v (%d whole), want %v", size, got, f.complete, want)
		}
	}
}

// scripted is a connection whose answers a test writes, and which can
// deliver an answer while the request is still being written.
type scripted struct {
	net.Conn
	answers bytes.Buffer
	during  func() // run inside Write
}

func (c *scripted) Write(b []byte) (int, error) {
	if c.during != nil {
		c.during()
		c.during = nil
	}
	return len(b), nil
}

func (c *scripted) Read(b []byte) (int, error) { return c.answers.Read(b[:min(len(b), 3)]) }

// heardConn dates the session by the send time of the newest answered
// request: not by when answers arrive, not by watch events, and not
// thrown off by an answer read before its request's Write returned.
func TestHeardConn(t *testing.T) {
	s := &Session{born: time.Now().Add(-time.Hour)}
	s.timeout.Store(int64(10 * time.Second))
	sc := &scripted{}
	c := &heardConn{Conn: sc, s: s, handshake: time.Second}
	buf := make([]byte, 64)
	readAll := func() {
		for sc.answers.Len() > 0 {
			if _, err := c.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	send := func(f []byte) (lo, hi time.Duration) {
		lo = time.Since(s.born)
		if _, err := c.Write(f); err != nil {
			t.Fatal(err)
		}
		return lo, time.Since(s.born)
	}
	within := func(what string, lo, hi time.Duration) {
		t.Helper()
		if h := time.Duration(s.heard.Load()); h < lo || h > hi {
			t.Fatalf("%s: heard %v, want within [%v, %v]", what, h, lo, hi)
		}
	}

	lo, hi := send(frame(44, 0, 10000)) // connect request
	time.Sleep(10 * time.Millisecond)   // an answer that takes a while
	sc.answers.Write(frame(36, 0, 4000))
	readAll()
	within("connect answer", lo, hi)
	if got := time.Duration(s.timeout.Load()); got != 4*time.Second {
		t.Errorf("timeout %v, want the 4s granted", got)
	}

	sc.during = func() { sc.answers.Write(frame(16, 1, 0)); readAll() }
	lo, hi = send(frame(8, 1, 11))
	within("answer read during the write", lo, hi)

	lo, hi = send(frame(8, 2, 11))
	time.Sleep(10 * time.Millisecond)
	_, later := send(frame(8, 3, 11))
	sc.answers.Write(frame(16, watchEvent, 0)) // a watch event is no answer
	readAll()
	within("watch event", lo-time.Hour, lo)
	sc.answers.Write(frame(16, 2, 0))
	readAll()
	within("answer to the older of two", lo, hi)
	sc.answers.Write(frame(16, 3, 0))
	readAll()
	within("answer to the newer", hi, later)
}

// heardConn on go-zookeeper's real client and a real server: the
// session timeout is the one the server granted, every answered request
// moves heard to no earlier than its send time, and a watch event moves
// nothing. heardConn parses the client's frames, so a client release
// that frames requests differently fails here.
func TestHeardOnRealClient(t *testing.T) {
	c := zktest.Start(t)
	ctx := context.Background()
	// More than the server's maxSessionTimeout, so that only the
	// connect answer can tell the timeout granted.
	s, err := Connect(c.Servers(), WithSessionTimeout(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cons, err := c.Node(0).FourLetter(ctx, "cons")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(fmt.Sprintf(`sid=0x%x,.*to=(\d+)`, s.ID())).FindStringSubmatch(cons)
	if m == nil {
		t.Fatalf("session %#x not in cons:\n%s", s.ID(), cons)
	}
	granted, _ := strconv.Atoi(m[1])
	if got := time.Duration(s.timeout.Load()); got != time.Duration(granted)*time.Millisecond || got == 10*time.Minute {
		t.Fatalf("timeout %v, want the %dms the server granted", got, granted)
	}

	for i := range 20 {
		sent := time.Since(s.born)
		if _, _, err := s.conn.Exists("/"); err != nil {
			t.Fatal(err)
		}
		if heard := time.Duration(s.heard.Load()); heard < sent || heard > time.Since(s.born) {
			t.Fatalf("request %d sent at %v: heard %v", i, sent, heard)
		}
	}

	_, _, events, err := s.conn.ExistsW("/heard")
	if err != nil {
		t.Fatal(err)
	}
	before := s.heard.Load()
	other, err := Connect(c.Servers())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.conn.Create("/heard", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	<-events
	if after := s.heard.Load(); after != before {
		t.Fatalf("a watch event moved heard from %v to %v", time.Duration(before), time.Duration(after))
	}
}
