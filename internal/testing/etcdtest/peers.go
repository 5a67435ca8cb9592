package etcdtest

import (
	"net"
	"sync"

	"github.com/turnstile-go/turnstile/internal/testing/proxy"
	"github.com/turnstile-go/turnstile/internal/testing/testenv"
)

// Option changes how StartCluster runs a cluster.
type Option func(*clusterConfig)

type clusterConfig struct {
	peerProxies bool
}

// PeerProxies places a proxy between every two members of a cluster of
// more than one, in each direction, on their peer URLs, so that a test can cut a member off from
// the others (Member.Isolate) while its clients still reach it. Every
// member advertises a peer URL on which the test tells the calling member
// by its process (testenv.Caller) and passes the call to that member's
// proxy: etcd hands every member the same peer URLs, so no member can be
// told to call another at an address of its own.
//
// Telling callers apart needs Linux; elsewhere the members cannot reach
// each other and the cluster does not start.
func PeerProxies() Option {
	return func(c *clusterConfig) { c.peerProxies = true }
}

// peerLinks are the proxies between members: links[i][k] carries member
// i's calls to member k.
type peerLinks struct {
	links   [][]*proxy.Proxy
	ingress []net.Listener // ingress[k] is where k's peers call it
	wg      sync.WaitGroup
}

// listenPeers listens on a URL for each of n members, on which they are
// to advertise themselves to their peers.
func listenPeers(n int) (*peerLinks, error) {
	l := &peerLinks{}
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			l.close()
			return nil, err
		}
		l.ingress = append(l.ingress, ln)
	}
	return l, nil
}

// url returns the peer URL member k advertises.
func (l *peerLinks) url(k int) string { return "http://" + l.ingress[k].Addr().String() }

// start forwards each member's peers' calls to it, at its real peer
// address targets[k], through a proxy for each caller.
func (l *peerLinks) start(targets []string, procs []*testenv.Process) error {
	n := len(targets)
	l.links = make([][]*proxy.Proxy, n)
	handoffs := make([][]*handoff, n)
	for i := range n {
		l.links[i] = make([]*proxy.Proxy, n)
		handoffs[i] = make([]*handoff, n)
	}
	for i := range n {
		for k := range n {
			if i == k {
				continue
			}
			h := &handoff{addr: l.ingress[k].Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
			p, err := proxy.Start(targets[k], proxy.Listener(h))
			if err != nil {
				return err
			}
			l.links[i][k], handoffs[i][k] = p, h
		}
	}
	for k, in := range l.ingress {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				c, err := in.Accept()
				if err != nil {
					return
				}
				i, err := testenv.Caller(c, procs)
				if err != nil || i == k {
					c.Close() // no member's: a caller gone already
					continue
				}
				handoffs[i][k].pass(c)
			}
		}()
	}
	return nil
}

// of returns the proxies on member i's links to and from the others.
func (l *peerLinks) of(i int) proxy.Group {
	var ps proxy.Group
	for k := range l.links {
		if k != i {
			ps = append(ps, l.links[i][k], l.links[k][i])
		}
	}
	return ps
}

func (l *peerLinks) close() {
	for _, in := range l.ingress {
		in.Close()
	}
	for _, row := range l.links {
		for _, p := range row {
			if p != nil {
				p.Close()
			}
		}
	}
	l.wg.Wait()
}

// handoff is the listener of one caller's proxy to a member: it accepts
// the calls the member's ingress passes it.
type handoff struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (h *handoff) pass(c net.Conn) {
	select {
	case h.conns <- c:
	case <-h.done:
		c.Close()
	}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }
