// Package proxy is a loopback TCP proxy whose traffic a test can cut and
// restore, to partition one client from its server without touching the
// server or any other client, or placed between two servers, to
// partition them from each other.
package proxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards connections accepted on Addr to a fixed target.
//
// While cut, a partition is silence rather than a reset: live
// connections are dropped and new ones are accepted but left unanswered,
// as a client behind a dead link would see. Those held connections are
// forwarded once the proxy is restored, if the client still waits on them.
type Proxy struct {
	target string
	ln     net.Listener
	greet  func(io.Reader) ([]byte, error)
	redial time.Duration

	mu          sync.Mutex
	cut         bool
	partitioned bool
	restored    chan struct{} // closed while neither cut nor partitioned
	conns       map[net.Conn]struct{}
	closed      bool
	wg          sync.WaitGroup

	sent atomic.Int64 // bytes forwarded from clients to the target

	held [2]chan struct{} // per Direction: nil, or closed when the hold ends
}

// Direction is one way through the proxy.
type Direction int

const (
	ToServer Direction = iota // from clients to the target
	ToClient                  // from the target to clients
)

// Option changes how a proxy forwards.
type Option func(*Proxy)

// Listener makes the proxy serve the connections ln accepts, instead of
// a free loopback port of its own; Close closes ln.
func Listener(ln net.Listener) Option { return func(p *Proxy) { p.ln = ln } }

// Greeting makes the proxy rewrite the start of every connection on its
// way to the target: greet reads what it needs from the client, and
// returns what the target receives in its place. The rest is forwarded
// as it is. A protocol in which a peer tells its own address, for the
// other to call back, would otherwise lead the call back around the
// proxy.
func Greeting(greet func(client io.Reader) ([]byte, error)) Option {
	return func(p *Proxy) { p.greet = greet }
}

// Redial makes the proxy retry a refused connection to the target for up
// to d. A client's connection to the proxy succeeds before the proxy
// dials, so a target that is not listening yet appears to the client as a
// connection that breaks, rather than one refused: a client that would
// retry a refused connection, as a ZooKeeper follower does while its new
// leader opens its port, gives up instead. With Redial it is connected
// once the target listens.
func Redial(d time.Duration) Option { return func(p *Proxy) { p.redial = d } }

// Start listens on a free loopback port and forwards to target.
func Start(target string, opts ...Option) (*Proxy, error) {
	p := &Proxy{target: target, restored: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(p.restored)
	for _, o := range opts {
		o(p)
	}
	if p.ln == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		p.ln = ln
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Sent returns how many bytes clients have sent through to the target,
// so that a test can tell when a request has left the client, e.g. to
// cut the connection before its reply.
func (p *Proxy) Sent() int64 { return p.sent.Load() }

// Cut drops every live connection and holds new ones silent until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.gate()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.release(ToServer)
	p.release(ToClient)
}

// Restore lets traffic through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	p.gate()
}

// Partition stops traffic both ways as a network partition does, rather
// than as a cut: live connections stay open, and what either side sends
// meanwhile, its close too, waits in the proxy, as TCP would retransmit
// it; new connections are accepted and left unanswered without reaching
// the target. Each side notices only by its own timeouts. Heal delivers
// what waited and forwards again; Cut and Close end the holds.
func (p *Proxy) Partition() { p.partition(true) }

// Heal ends a partition.
func (p *Proxy) Heal() { p.partition(false) }

func (p *Proxy) partition(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partitioned = on
	p.gate()
	for _, d := range []Direction{ToServer, ToClient} {
		if on {
			p.hold(d)
		} else {
			p.release(d)
		}
	}
}

// Group is proxies that a test partitions and heals together, such as
// those between one server and each of its peers.
type Group []*Proxy

// Partition partitions every proxy of the group.
func (g Group) Partition() {
	for _, p := range g {
		p.Partition()
	}
}

// Heal heals every proxy of the group.
func (g Group) Heal() {
	for _, p := range g {
		p.Heal()
	}
}

// gate opens the way to the target for new connections, or shuts it,
// as the proxy is cut or partitioned. The caller holds p.mu.
func (p *Proxy) gate() {
	shut := p.cut || p.partitioned
	select {
	case <-p.restored:
		if shut {
			p.restored = make(chan struct{})
		}
	default:
		if !shut {
			close(p.restored)
		}
	}
}

// Hold stops forwarding in direction d while connections stay open, as a
// link that has stalled rather than broken: what is sent meanwhile, a
// close included, waits in the proxy and arrives on Release. It holds
// every connection, new ones too; bytes already on their way when Hold
// is called still pass. Cut and Close end every hold.
func (p *Proxy) Hold(d Direction) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold(d)
}

func (p *Proxy) hold(d Direction) {
	if p.held[d] == nil && !p.closed {
		p.held[d] = make(chan struct{})
	}
}

// Release delivers what Hold kept back in direction d, and forwards again.
func (p *Proxy) Release(d Direction) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.release(d)
}

func (p *Proxy) release(d Direction) {
	if p.held[d] != nil {
		close(p.held[d])
		p.held[d] = nil
	}
}

// wait blocks while direction d is held.
func (p *Proxy) wait(d Direction) {
	p.mu.Lock()
	held := p.held[d]
	p.mu.Unlock()
	if held != nil {
		<-held
	}
}

// Close stops the proxy and drops every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.release(ToServer)
	p.release(ToClient)
	p.cut, p.partitioned = false, false
	p.gate()
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track registers c so that Cut and Close can drop it; it reports false,
// closing c, when the proxy is cut or closed already.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	restored, closed := p.restored, p.closed
	if !closed {
		p.conns[client] = struct{}{}
	}
	p.mu.Unlock()
	if closed {
		client.Close()
		return
	}
	<-restored
	// A Cut between the wait and here has closed client already; the
	// upstream dial then fails to be tracked and is closed too.
	upstream, err := p.dial()
	if err != nil {
		client.Close()
		return
	}
	if !p.track(upstream) {
		client.Close()
		return
	}
	var pipes sync.WaitGroup
	pipes.Add(2)
	go p.pipe(&pipes, counter{upstream, &p.sent}, client, ToServer, p.greet)
	go p.pipe(&pipes, client, upstream, ToClient, nil)
	pipes.Wait()
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, upstream)
	p.mu.Unlock()
}

// dial connects to the target, retrying as Redial allows while the proxy
// is open.
func (p *Proxy) dial() (net.Conn, error) {
	deadline := time.Now().Add(p.redial)
	for {
		c, err := net.Dial("tcp", p.target)
		if err == nil || time.Now().After(deadline) || p.isClosed() {
			return c, err
		}
		time.Sleep(redialInterval)
	}
}

const redialInterval = 50 * time.Millisecond

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// counter counts what is written through it.
type counter struct {
	net.Conn
	n *atomic.Int64
}

func (c counter) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// pipe copies in direction d, what greet makes of the start first if it
// is not nil, until either side fails, then closes both so that the
// other direction ends too. A reset, a cut or EOF all end the pair, once
// a hold on d lets the end through.
func (p *Proxy) pipe(wg *sync.WaitGroup, dst, src net.Conn, d Direction, greet func(io.Reader) ([]byte, error)) {
	defer wg.Done()
	defer src.Close()
	defer dst.Close()
	defer p.wait(d)
	if greet != nil {
		b, err := greet(src)
		if err != nil {
			return
		}
		p.wait(d)
		if _, err := dst.Write(b); err != nil {
			return
		}
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.wait(d)
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
