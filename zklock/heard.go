package zklock

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// heardConn learns when the server last heard from the client, which is
// what the server's session timeout counts from.
//
// The time a reply arrives would overstate it: a reply read late, after
// a pause or a stalled link, says nothing about whether the server has
// heard anything since it was sent. So heardConn keeps the send time of
// each request and, for every reply, takes the oldest it still holds.
// The server answers each request once, so after k replies it has heard
// k distinct requests, and the newest of them was sent no earlier than
// the k-th oldest send time, in whatever order they were answered.
// Watch events are not replies, and do not count.
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
	answered  atomic.Bool

	mu      sync.Mutex
	out, in frames
	sent    []time.Duration // unanswered requests' send times, oldest first, as time since s.born
}

// watchEvent is the xid of a frame the server sends unasked.
const watchEvent = -1

func (c *heardConn) Write(b []byte) (int, error) {
	at := time.Since(c.s.born) // before the server can have the request
	n, err := c.Conn.Write(b)
	var buf [8]int32
	c.mu.Lock()
	for range c.out.scan(b[:n], buf[:0]) {
		c.sent = append(c.sent, at)
	}
	c.mu.Unlock()
	return n, err
}

func (c *heardConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n == 0 {
		return n, err
	}
	c.answered.Store(true)
	var buf [8]int32
	c.mu.Lock()
	for _, xid := range c.in.scan(b[:n], buf[:0]) {
		if xid == watchEvent || len(c.sent) == 0 {
			continue
		}
		// Send times leave oldest first, so heard only grows.
		c.s.heard.Store(int64(c.sent[0]))
		c.sent = c.sent[1:]
	}
	c.mu.Unlock()
	return n, err
}

func (c *heardConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.bound(t))
}

func (c *heardConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.bound(t))
}

func (c *heardConn) bound(t time.Time) time.Time {
	if c.answered.Load() || t.IsZero() {
		return t
	}
	if limit := time.Now().Add(c.handshake); t.After(limit) {
		return limit
	}
	return t
}

// frames follows one direction of ZooKeeper's framing: a 4-byte length,
// then a body whose first 4 bytes are the xid (the connect request and
// its answer, the first frame each way, begin with the protocol version
// instead, which is never a watch event's xid).
type frames struct {
	head [8]byte // the length and xid of the frame being read
	got  int     // bytes of head seen
	left int     // bytes of the frame after head still to come
}

// scan follows b and appends to xids the xid of each frame whose head b
// completes.
func (f *frames) scan(b []byte, xids []int32) []int32 {
	for len(b) > 0 {
		if f.left > 0 {
			k := min(f.left, len(b))
			f.left -= k
			b = b[k:]
			continue
		}
		k := copy(f.head[f.got:], b)
		f.got += k
		b = b[k:]
		if f.got == len(f.head) {
			xids = append(xids, int32(binary.BigEndian.Uint32(f.head[4:])))
			f.left = max(int(binary.BigEndian.Uint32(f.head[:4]))-4, 0)
			f.got = 0
		}
	}
	return xids
}
