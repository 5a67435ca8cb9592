package zktest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/turnstile-go/turnstile/internal/testing/proxy"
)

// PeerProxies places a proxy between every two nodes of an ensemble, in
// each direction, on the quorum port (a follower's link to its leader)
// and on the election port, so that a test can cut a node off from its
// peers (Node.Isolate) while its clients still reach it. Each node's
// zoo.cfg names the others by their proxies from it; the ensemble runs
// with reconfiguration disabled, as by default, so no node learns
// another's own addresses from its peers.
func PeerProxies() Option {
	return func(c *config) { c.peerProxies = true }
}

// peerLink is one node's way to another's quorum and election ports.
type peerLink struct {
	quorum, election *proxy.Proxy
}

// peerLinks are links[i][j], node i's link to node j, for every two
// nodes i and j.
type peerLinks [][]*peerLink

// startPeerLinks starts the links between nodes with the given quorum
// and election ports. A link retries a refused connection for up to
// redial: a follower connects to its new leader as soon as it is elected,
// perhaps before the leader listens, and retries a refused connection
// within initLimit, but gives a broken one up for another election.
func startPeerLinks(quorum, election []int, redial time.Duration) (peerLinks, error) {
	n := len(quorum)
	links := make(peerLinks, n)
	for i := range links {
		links[i] = make([]*peerLink, n)
	}
	for i := range n {
		for j := range n {
			if i == j {
				continue
			}
			q, err := proxy.Start(loopback(quorum[j]), proxy.Redial(redial))
			if err != nil {
				links.close()
				return nil, err
			}
			back := func() string { return links[j][i].election.Addr() }
			e, err := proxy.Start(loopback(election[j]), proxy.Redial(redial), proxy.Greeting(advertise(back)))
			if err != nil {
				q.Close()
				links.close()
				return nil, err
			}
			links[i][j] = &peerLink{quorum: q, election: e}
		}
	}
	return links, nil
}

// of returns the proxies on node i's links to and from every other node.
func (links peerLinks) of(i int) proxy.Group {
	var ps proxy.Group
	for j := range links {
		for _, l := range []*peerLink{links[i][j], links[j][i]} {
			if l != nil {
				ps = append(ps, l.quorum, l.election)
			}
		}
	}
	return ps
}

func (links peerLinks) close() {
	for i := range links {
		for _, p := range links.of(i) {
			p.Close() // twice for most: Close is idempotent
		}
	}
}

// serverLines returns node i's view of the ensemble for its zoo.cfg: its
// own ports, and every other node through i's link to it when there are
// links.
func serverLines(i int, quorum, election []int, links peerLinks) string {
	var b strings.Builder
	for j := range quorum {
		q, e := quorum[j], election[j]
		if links != nil && j != i {
			q, e = port(links[i][j].quorum.Addr()), port(links[i][j].election.Addr())
		}
		fmt.Fprintf(&b, "server.%d=127.0.0.1:%d:%d\n", j+1, q, e)
	}
	return b.String()
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// maxAddrLen bounds the election address in an initial message, as
// ZooKeeper bounds it.
const maxAddrLen = 1 << 16

// advertise returns the greeting of the proxy that carries a node's
// election connections to another node: it rewrites the election address
// the caller tells in its first message to addr(), the other node's link
// back to the caller. Of the two connections two nodes may open, the
// election keeps the one the node with the larger id opens: when the
// smaller one calls, the larger drops the call and calls back on the
// address it was told, the caller's own port, around the proxies.
//
// The message is the protocol version, the caller's id and, for a
// negative version, the length and text of its address(es), "host:port"
// joined by "|"; a non-negative version is the id itself, with no
// address.
func advertise(addr func() string) func(io.Reader) ([]byte, error) {
	return func(r io.Reader) ([]byte, error) {
		head := make([]byte, 16)
		if _, err := io.ReadFull(r, head); err != nil {
			return nil, err
		}
		if int64(binary.BigEndian.Uint64(head)) >= 0 {
			return head, nil
		}
		var size [4]byte
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint32(size[:])
		if n > maxAddrLen {
			return nil, errors.New("zktest: election address too long")
		}
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return nil, err
		}
		a := addr()
		head = binary.BigEndian.AppendUint32(head, uint32(len(a)))
		return append(head, a...), nil
	}
}
