package zktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// defaultIOTimeout bounds a conversation with a server when the context
// has no deadline: a paused server accepts connections but never answers.
const defaultIOTimeout = 5 * time.Second

// notServing starts the answer of a server that is up but has not joined
// a quorum yet.
const notServing = "This ZooKeeper instance is not currently serving requests"

// FourLetter sends a four-letter word (ruok, srvr, mntr, wchp, wchc,
// cons, ...) to the server at addr and returns its whole answer. It talks
// TCP itself so that tests need neither nc nor a zk client.
func FourLetter(ctx context.Context, addr, word string) (string, error) {
	return fourLetter(ctx, addr, word, nil)
}

// fourLetter reads the answer until the server closes the connection or,
// when complete is given, until complete says the answer is whole. The
// server normally closes after answering, but a word that arrives while
// it starts up can fail in the close and leave the socket open.
func fourLetter(ctx context.Context, addr, word string, complete func(string) bool) (string, error) {
	conn, err := dial(ctx, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, word); err != nil {
		return "", fmt.Errorf("%s %s: %w", addr, word, err)
	}
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) || (complete != nil && complete(string(out))) {
			return string(out), nil
		}
		if err != nil {
			return string(out), fmt.Errorf("%s %s: %w", addr, word, err)
		}
	}
}

// dial connects to addr with a deadline taken from ctx, and makes ctx's
// cancellation interrupt any read or write in progress.
func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultIOTimeout)
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return &stopConn{Conn: conn, stop: stop}, nil
}

// stopConn releases the cancellation hook of dial when closed.
type stopConn struct {
	net.Conn
	stop func() bool
}

func (c *stopConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// FourLetter sends a four-letter word to the node; see FourLetter.
func (n *Node) FourLetter(ctx context.Context, word string) (string, error) {
	return FourLetter(ctx, n.Addr(), word)
}

// Mntr returns the node's monitoring variables (zk_packets_received,
// zk_watch_count, zk_server_state, ...) as text, since some are not
// numbers.
func (n *Node) Mntr(ctx context.Context) (map[string]string, error) {
	out, err := n.FourLetter(ctx, "mntr")
	if err != nil {
		return nil, err
	}
	if err := checkServing(out); err != nil {
		return nil, fmt.Errorf("node %d: %w", n.id, err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "\t"); ok {
			vars[k] = v
		}
	}
	if len(vars) == 0 {
		return nil, fmt.Errorf("node %d: unexpected mntr answer %q", n.id, out)
	}
	return vars, nil
}

// Watches returns, from wchp, each path watched on this node and the
// sessions watching it. Watches live on the server a client is connected
// to, so only that node lists them.
func (n *Node) Watches(ctx context.Context) (map[string][]int64, error) {
	out, err := n.FourLetter(ctx, "wchp")
	if err != nil {
		return nil, err
	}
	if err := checkServing(out); err != nil {
		return nil, fmt.Errorf("node %d: %w", n.id, err)
	}
	return parseWchp(out)
}

// parseWchp reads wchp's answer: a path on its own line, then one
// indented hex session id per line.
func parseWchp(out string) (map[string][]int64, error) {
	watches := map[string][]int64{}
	path := ""
	for _, line := range strings.Split(out, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
		case !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, " "):
			path = trimmed
			watches[path] = nil
		case path == "":
			return nil, fmt.Errorf("wchp: session before any path: %q", line)
		default:
			id, err := strconv.ParseUint(strings.TrimPrefix(trimmed, "0x"), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("wchp: %q: %w", line, err)
			}
			watches[path] = append(watches[path], int64(id))
		}
	}
	return watches, nil
}

// checkServing turns the answer of a server outside a quorum into an
// error, so that it is not parsed as data.
func checkServing(out string) error {
	if strings.HasPrefix(out, notServing) {
		return errors.New("not serving")
	}
	return nil
}
