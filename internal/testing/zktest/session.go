package zktest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// opCloseSession is the request type that ends a session.
const opCloseSession int32 = -11

// sessions remembers what it takes to act as a client's session: the
// server hands out the password in the connect response only, and
// go-zookeeper keeps it private.
type sessions struct {
	mu    sync.Mutex
	known map[int64]session
}

type session struct {
	timeout int32 // milliseconds, as negotiated
	passwd  []byte
}

func (s *sessions) record(id int64, sess session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known == nil {
		s.known = map[int64]session{}
	}
	s.known[id] = sess
}

func (s *sessions) lookup(id int64) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.known[id]
	return sess, ok
}

// Dialer returns a dialer for zk.WithDialer that lets Expire end the
// sessions of the client using it. It dials like net.DialTimeout and
// reads along the first frame the server sends on each connection, the
// connect response with the session's id and password.
func (c *Cluster) Dialer() zk.Dialer {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		conn, err := net.DialTimeout(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return &recordingConn{Conn: conn, sessions: &c.sessions}, nil
	}
}

// recordingConn passes reads through, parsing the connect response out of
// the first bytes. The client reads from one goroutine at a time, so the
// buffer needs no lock.
type recordingConn struct {
	net.Conn
	sessions *sessions
	buf      []byte
	done     bool
}

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if !r.done && n > 0 {
		r.buf = append(r.buf, p[:n]...)
		if len(r.buf) >= 4 {
			size := int(binary.BigEndian.Uint32(r.buf))
			if len(r.buf) >= 4+size {
				if id, sess, ok := parseConnectResponse(r.buf[4 : 4+size]); ok {
					r.sessions.record(id, sess)
				}
				r.done, r.buf = true, nil
			}
		}
	}
	return n, err
}

// parseConnectResponse decodes protocolVersion int32, timeOut int32,
// sessionId int64 and passwd (int32 length, bytes); a trailing readOnly
// flag is ignored. A zero session id is the server's refusal, which has
// nothing to record.
func parseConnectResponse(b []byte) (int64, session, bool) {
	if len(b) < 20 {
		return 0, session{}, false
	}
	timeout := int32(binary.BigEndian.Uint32(b[4:]))
	id := int64(binary.BigEndian.Uint64(b[8:]))
	plen := int(int32(binary.BigEndian.Uint32(b[16:])))
	if id == 0 || plen < 0 || len(b) < 20+plen {
		return 0, session{}, false
	}
	return id, session{timeout: timeout, passwd: append([]byte(nil), b[20:20+plen]...)}, true
}

// Expire ends a session the way the server ends one that timed out: it
// joins the session from a connection of its own, using the id and
// password recorded by Dialer, and closes it. The server then deletes the
// session's ephemeral nodes, drops its connections, and tells the client
// on its next connect that the session expired. This takes milliseconds
// where waiting out a timeout takes seconds, and needs no partition.
//
// A session the server no longer knows counts as expired. go-zookeeper
// waits a second before it tries its server list again, so a client that
// knows only one server sees StateExpired about a second after Expire.
func (c *Cluster) Expire(ctx context.Context, sessionID int64) error {
	sess, ok := c.sessions.lookup(sessionID)
	if !ok {
		return fmt.Errorf("session %#x: not seen by a connection from Dialer", sessionID)
	}
	var errs []error
	for _, n := range c.nodes {
		if !n.proc.Live() {
			continue
		}
		err := expire(ctx, n.Addr(), sessionID, sess)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return errors.New("no node running")
	}
	return fmt.Errorf("expire session %#x: %w", sessionID, errors.Join(errs...))
}

func expire(ctx context.Context, addr string, id int64, sess session) error {
	conn, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()

	// ConnectRequest: protocolVersion, lastZxidSeen (0: any server will
	// do), timeOut, sessionId, passwd, then readOnly, which servers since
	// 3.4 read when present.
	req := binary.BigEndian.AppendUint32(nil, 0)
	req = binary.BigEndian.AppendUint64(req, 0)
	req = binary.BigEndian.AppendUint32(req, uint32(sess.timeout))
	req = binary.BigEndian.AppendUint64(req, uint64(id))
	req = binary.BigEndian.AppendUint32(req, uint32(len(sess.passwd)))
	req = append(req, sess.passwd...)
	req = append(req, 0)
	if err := writeFrame(conn, req); err != nil {
		return err
	}
	resp, err := readFrame(conn)
	if err != nil {
		return fmt.Errorf("%s: connect: %w", addr, err)
	}
	if got, _, ok := parseConnectResponse(resp); !ok || got != id {
		// The server has already expired the session, or the password
		// was wrong, which a recorded one cannot be.
		return nil
	}

	// closeSession: a request header (xid, type) and no body.
	req = binary.BigEndian.AppendUint32(nil, 1)
	req = appendInt32(req, opCloseSession)
	if err := writeFrame(conn, req); err != nil {
		return err
	}
	// The reply header is xid int32, zxid int64, err int32.
	resp, err = readFrame(conn)
	if err != nil {
		return fmt.Errorf("%s: closeSession: %w", addr, err)
	}
	if len(resp) < 16 {
		return fmt.Errorf("%s: closeSession: short reply % x", addr, resp)
	}
	if code := int32(binary.BigEndian.Uint32(resp[12:])); code != 0 {
		return fmt.Errorf("%s: closeSession: error code %d", addr, code)
	}
	return nil
}

// appendInt32 appends v big-endian, the way jute writes an int.
func appendInt32(b []byte, v int32) []byte {
	return binary.BigEndian.AppendUint32(b, uint32(v))
}

func writeFrame(w io.Writer, body []byte) error {
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	_, err := w.Write(append(frame, body...))
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 1<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return body, err
}

// Logger returns a zk.Logger for zk.WithLogger that writes to the test's
// log. go-zookeeper's goroutines may still log after Close returns, and
// the testing package panics on a log after the test ends, so messages
// arriving after the test's cleanup are dropped.
func Logger(tb testing.TB) zk.Logger {
	l := &tbLogger{tb: tb}
	tb.Cleanup(func() {
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
	})
	return l
}

type tbLogger struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool
}

func (l *tbLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		// Reported at the go-zookeeper line that logged, not here.
		l.tb.Helper()
		l.tb.Logf("zk: "+format, args...)
	}
}
