package zklock

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/turnstile-go/turnstile"
)

// heardConn learns when the member it talks to last heard from the
// client, which is what the session timeout counts from, and the timeout
// the server granted.
//
// The time a reply arrives would overstate it: a reply read late, after
// a pause or a stalled link, says nothing about whether the member has
// heard anything since it was sent. So heardConn keeps the send time of
// each request and, for every reply, takes the oldest it still holds.
// The member answers each request once, so after k replies it has heard
// k distinct requests, and the newest of them was sent no earlier than
// the k-th oldest send time, in whatever order they were answered.
// Watch events are not replies, and do not count. The bound errs one
// way only: a ping answered late, behind a slow write, can end a session
// that the member in fact kept.
//
// heardConn also bounds the wait for a server's first answer. The client
// allows a handshake ten times its read timeout, several session
// timeouts, so a member that accepts connections but does not answer
// them (one still starting, or behind a dead link) would outlast the
// session, when other members could have taken it over. Like ZooKeeper's
// Java client, it gives each server a share of the session timeout.
type heardConn struct {
	net.Conn
	s         *Session
	handshake time.Duration

	mu      sync.Mutex
	out, in frames
	sent    []time.Duration // unanswered requests' send times, oldest first, as time since s.born
}

// watchEvent is the xid of a frame the server sends unasked.
const watchEvent = -1

func (c *heardConn) Write(b []byte) (int, error) {
	// Recorded before the write: the answer can be read before Write
	// returns. The client has one writer per connection, and closes it
	// after a short write.
	at := time.Since(c.s.born)
	var buf [4]frameHead
	closing := false
	c.mu.Lock()
	for _, h := range c.out.scan(b, buf[:0]) {
		c.sent = append(c.sent, at)
		closing = closing || !h.first && h.words[1] == opCloseSession
	}
	c.mu.Unlock()
	if closing {
		// The server ends the session as it reads this: its holds must
		// end first. (Session.Close has ended it already; Conn().Close()
		// has not.)
		c.s.end(fmt.Errorf("%w: its ZooKeeper connection was closed", turnstile.ErrSessionClosed))
	}
	return c.Conn.Write(b)
}

// opCloseSession is the opcode of the request that ends a session.
const opCloseSession = -11

func (c *heardConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n == 0 {
		return n, err
	}
	var buf [4]frameHead
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.in.scan(b[:n], buf[:0]) {
		if h.first {
			// The connect answer: protocol version, then the timeout the
			// server granted, read before the client reports the session.
			if ms := h.words[1]; ms > 0 {
				c.s.timeout.Store(int64(time.Duration(ms) * time.Millisecond))
			}
		} else if h.words[0] == watchEvent {
			continue
		}
		if len(c.sent) == 0 {
			continue
		}
		at := c.sent[0]
		c.sent = c.sent[1:]
		// Send times leave oldest first, and a new connection sends only
		// after the old one has closed; the max is for certainty.
		for heard := c.s.heard.Load(); int64(at) > heard && !c.s.heard.CompareAndSwap(heard, int64(at)); heard = c.s.heard.Load() {
		}
	}
	return n, err
}

// answered reports whether the connect answer has been read whole.
func (c *heardConn) answered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.in.complete > 0
}

// SetReadDeadline bounds every wait for the connect answer, including
// the unbounded one the client asks for between its length and its
// body.
func (c *heardConn) SetReadDeadline(t time.Time) error {
	if limit := time.Now().Add(c.handshake); !c.answered() && (t.IsZero() || t.After(limit)) {
		t = limit
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *heardConn) SetWriteDeadline(t time.Time) error {
	if limit := time.Now().Add(c.handshake); !c.answered() && t.After(limit) {
		t = limit
	}
	return c.Conn.SetWriteDeadline(t)
}

// frames follows one direction of ZooKeeper's framing: a 4-byte length,
// then a body of at least 8 bytes (the shortest, a ping or a close, is
// an xid and an opcode). A body begins with the xid, except in the first
// frame each way, the connect request and its answer, which begin with
// the protocol version and the session timeout.
type frames struct {
	head     [12]byte // the length and first 8 body bytes of the frame being read
	got      int      // bytes of head seen
	left     int      // bytes of the frame after head still to come
	heads    int      // frames whose head has been seen
	complete int      // frames read whole
}

// frameHead is the first two 4-byte words of a frame's body.
type frameHead struct {
	words [2]int32
	first bool // the connection's first frame this way
}

// scan follows b and appends to heads the head of each frame that b
// completes.
func (f *frames) scan(b []byte, heads []frameHead) []frameHead {
	for len(b) > 0 {
		if f.left > 0 {
			k := min(f.left, len(b))
			f.left -= k
			b = b[k:]
			if f.left == 0 {
				f.complete++
			}
			continue
		}
		k := copy(f.head[f.got:], b)
		f.got += k
		b = b[k:]
		if f.got < len(f.head) {
			continue
		}
		heads = append(heads, frameHead{
			words: [2]int32{int32(binary.BigEndian.Uint32(f.head[4:])), int32(binary.BigEndian.Uint32(f.head[8:]))},
			first: f.heads == 0,
		})
		f.heads++
		f.got = 0
		if f.left = int(binary.BigEndian.Uint32(f.head[:4])) - 8; f.left <= 0 {
			f.left = 0
			f.complete++
		}
	}
	return heads
}
