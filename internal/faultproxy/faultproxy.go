// Package faultproxy is a TCP proxy for tests that injects faults into a
// database connection at a chosen statement: it forwards the client's bytes
// to the server and the server's back, and, when a client write matches an
// armed Rule, drops the server's reply, delays it, swallows it for good, or
// resets the connection before or after forwarding the statement. The
// fault names follow Shopify's toxiproxy (latency, timeout, reset_peer);
// unlike toxiproxy the proxy is statement-aware, which is what "the reply
// to this write was lost" needs.
//
// A statement is found by a byte substring of one client write: the SQL
// text of a PostgreSQL simple or extended-protocol query or a MySQL
// COM_QUERY, or, for prepared statements (whose SQL is sent once, at
// PREPARE time), a parameter value of the execution (PostgreSQL Bind,
// MySQL COM_STMT_EXECUTE carry text parameters verbatim: a JTI, a code
// hash). Rule.Skip lets the first matches through and Rule.After moves the
// fault to a later write on the same connection (a transaction's COMMIT
// after its INSERT). Each rule fires Times times (once by default), then
// disarms itself.
//
// Use it by pointing a backend URL at Addr instead of the server:
//
//	p, err := faultproxy.Start("127.0.0.1:5432")
//	defer p.Close()
//	url := "postgres://postgres@" + p.Addr() + "/db?sslmode=disable"
//	p.Arm(faultproxy.Rule{Match: []byte(jti), Fault: faultproxy.DropReply})
//
// It is stdlib only and has no knowledge of the wire protocols beyond the
// byte match.
package faultproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is what happens to a matched write and its reply.
type Fault int

const (
	// DropReply forwards the write, discards the server's reply, and once
	// the reply has come (the server has run the statement) resets the
	// connection: the statement was applied, the client never hears of it.
	DropReply Fault = iota
	// Latency forwards the write and holds the server's reply for
	// Rule.Delay before forwarding it (toxiproxy's latency).
	Latency
	// Timeout forwards the write and swallows everything the server sends
	// on that connection from then on, without closing it (toxiproxy's
	// timeout with no limit): only the client's own deadline ends the wait.
	Timeout
	// ResetBeforeSend resets the connection instead of forwarding the write:
	// the statement never reaches the server.
	ResetBeforeSend
	// ResetAfterSend forwards the write and resets both sides at once
	// (toxiproxy's reset_peer): the server may or may not run it.
	ResetAfterSend
	// DropReplyClose is DropReply ending with an orderly close (FIN) instead
	// of a reset: the client reads EOF where its reply should be (lib/pq then
	// says driver.ErrBadConn, which database/sql answers by running the
	// statement again on another connection).
	DropReplyClose
)

var faultNames = [...]string{"drop_reply", "latency", "timeout", "reset_before_send", "reset_after_send", "drop_reply_close"}

func (f Fault) String() string {
	if f >= 0 && int(f) < len(faultNames) {
		return faultNames[f]
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// Rule arms a fault.
type Rule struct {
	// Match is a substring of the client write to fault; empty matches any
	// write.
	Match []byte
	// Skip lets this many matching writes through before the rule fires.
	Skip int
	// After moves the fault from the matching write to the After-th write
	// after it on the same connection (0: the matching write itself).
	After int
	Fault Fault
	// Delay is Latency's hold.
	Delay time.Duration
	// Times is how many times the rule fires before it disarms; 0 is 1.
	Times int
	// ThenDown takes the proxy down (Down) as the fault fires: the server
	// becomes unreachable right after the write, until Up.
	ThenDown bool
}

// rule is an armed Rule with its counters.
type rule struct {
	Rule
	skipped, fired int
}

// Proxy is a running fault-injecting TCP proxy. Its methods are safe for
// concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	rules []*rule
	pipes map[*pipe]struct{}

	down   atomic.Bool
	conns  atomic.Int64
	counts [len(faultNames)]atomic.Int64
	wg     sync.WaitGroup
	closed atomic.Bool
}

// Start listens on a free port of 127.0.0.1 and forwards every connection
// to upstream (host:port).
func Start(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{ln: ln, upstream: upstream, pipes: map[*pipe]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Arm adds a rule. Rules are tried in the order armed; the first that
// matches a write decides it.
func (p *Proxy) Arm(r Rule) {
	if r.Times <= 0 {
		r.Times = 1
	}
	p.mu.Lock()
	p.rules = append(p.rules, &rule{Rule: r})
	p.mu.Unlock()
}

// Disarm removes every rule that has not fired yet (faults already under
// way on a connection run to their end).
func (p *Proxy) Disarm() {
	p.mu.Lock()
	p.rules = nil
	p.mu.Unlock()
}

// Armed reports how many rules are still armed.
func (p *Proxy) Armed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.rules)
}

// Fired returns how many faults of kind f were injected so far.
func (p *Proxy) Fired(f Fault) int64 { return p.counts[f].Load() }

// Total returns how many faults were injected so far, of every kind.
func (p *Proxy) Total() int64 {
	var n int64
	for i := range p.counts {
		n += p.counts[i].Load()
	}
	return n
}

// Connections returns how many client connections the proxy accepted.
func (p *Proxy) Connections() int64 { return p.conns.Load() }

// ResetAll resets every open connection (a network partition of an
// instant; the server sees its clients vanish).
func (p *Proxy) ResetAll() {
	p.mu.Lock()
	all := make([]*pipe, 0, len(p.pipes))
	for pp := range p.pipes {
		all = append(all, pp)
	}
	p.mu.Unlock()
	for _, pp := range all {
		pp.reset()
	}
}

// Down makes the server unreachable: every open connection is reset and
// new ones are reset as soon as they are accepted, until Up.
func (p *Proxy) Down() {
	p.down.Store(true)
	p.ResetAll()
}

// Up ends Down: new connections reach the server again.
func (p *Proxy) Up() { p.down.Store(false) }

// Close stops listening and resets every connection.
func (p *Proxy) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := p.ln.Close()
	p.ResetAll()
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
		if p.down.Load() {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", p.upstream, 10*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.conns.Add(1)
		pp := &pipe{p: p, client: c, server: s}
		p.mu.Lock()
		if p.closed.Load() {
			p.mu.Unlock()
			pp.reset()
			continue
		}
		p.pipes[pp] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go pp.clientToServer()
		go pp.serverToClient()
	}
}

// decide returns the fault for a client write on pp, if any (nil and
// false when the write passes).
func (p *Proxy) decide(pp *pipe, chunk []byte) (*rule, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pp.pending != nil {
		if pp.pendingLeft--; pp.pendingLeft <= 0 {
			r := pp.pending
			pp.pending = nil
			return r, true
		}
		return nil, false
	}
	for i, r := range p.rules {
		if len(r.Match) > 0 && !bytes.Contains(chunk, r.Match) {
			continue
		}
		if r.skipped < r.Skip {
			r.skipped++
			return nil, false
		}
		r.fired++
		if r.fired >= r.Times {
			p.rules = append(p.rules[:i:i], p.rules[i+1:]...)
		}
		if r.After > 0 {
			pp.pending, pp.pendingLeft = r, r.After
			return nil, false
		}
		return r, true
	}
	return nil, false
}

// pipe is one proxied connection.
type pipe struct {
	p              *Proxy
	client, server net.Conn

	// Guarded by p.mu: a fault moved to a later write (Rule.After).
	pending     *rule
	pendingLeft int

	mu        sync.Mutex
	swallow   bool          // discard the server's bytes (DropReply, Timeout)
	resetOnIn bool          // DropReply: reset once the reply has come
	graceful  bool          // DropReplyClose: close (FIN) instead of resetting
	thenDown  bool          // Rule.ThenDown for a dropped reply: Down once it has come
	hold      time.Duration // Latency: hold the next reply this long
	heldFrom  time.Time
	once      sync.Once
	done      atomic.Int32 // directions finished: at 2, the pipe is closed
}

// finish ends one direction's loop; the second closes the pipe.
func (pp *pipe) finish() {
	pp.p.wg.Done()
	if pp.done.Add(1) == 2 {
		pp.reset()
	}
}

func (pp *pipe) clientToServer() {
	defer pp.finish()
	buf := make([]byte, 64<<10)
	for {
		n, err := pp.client.Read(buf)
		if n > 0 && pp.p.down.Load() {
			// Down, and this connection not reset yet (Down resets them one
			// by one): nothing more reaches the server.
			pp.reset()
			return
		}
		if n > 0 {
			chunk := buf[:n]
			if r, ok := pp.p.decide(pp, chunk); ok {
				pp.p.counts[r.Fault].Add(1)
				gone := pp.inject(r, chunk)
				if r.ThenDown && r.Fault != DropReply && r.Fault != DropReplyClose {
					pp.p.Down()
				}
				if gone {
					return
				}
			} else if _, werr := pp.server.Write(chunk); werr != nil {
				pp.reset()
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				closeWrite(pp.server)
			} else {
				pp.reset()
			}
			return
		}
	}
}

// inject applies r to the write chunk; it reports whether the connection
// is gone.
func (pp *pipe) inject(r *rule, chunk []byte) bool {
	switch r.Fault {
	case ResetBeforeSend:
		pp.reset()
		return true
	case ResetAfterSend:
		pp.server.Write(chunk)
		pp.reset()
		return true
	case DropReply, DropReplyClose, Timeout:
		pp.mu.Lock()
		pp.swallow, pp.resetOnIn = true, r.Fault != Timeout
		pp.graceful = r.Fault == DropReplyClose
		pp.thenDown = r.ThenDown
		pp.mu.Unlock()
		if r.Fault != Timeout {
			// A reply that never comes (a statement that hangs) still ends
			// with the reset.
			time.AfterFunc(10*time.Second, pp.reset)
		}
	case Latency:
		pp.mu.Lock()
		pp.hold, pp.heldFrom = r.Delay, time.Now()
		pp.mu.Unlock()
	}
	if _, err := pp.server.Write(chunk); err != nil {
		pp.reset()
		return true
	}
	return false
}

func (pp *pipe) serverToClient() {
	defer pp.finish()
	buf := make([]byte, 64<<10)
	for {
		n, err := pp.server.Read(buf)
		if n > 0 {
			pp.mu.Lock()
			swallow, resetOnIn, graceful, thenDown := pp.swallow, pp.resetOnIn, pp.graceful, pp.thenDown
			pp.thenDown = false
			hold, from := pp.hold, pp.heldFrom
			pp.hold = 0
			pp.mu.Unlock()
			switch {
			case resetOnIn && thenDown:
				pp.p.Down() // the statement ran; now the server is gone
			case resetOnIn:
				// The reply came: the statement ran. Let the rest of it
				// arrive (and be dropped), then cut the connection.
				end := pp.reset
				if graceful {
					end = pp.close
				}
				time.AfterFunc(50*time.Millisecond, end)
			case swallow:
			default:
				if hold > 0 {
					time.Sleep(time.Until(from.Add(hold)))
				}
				if _, werr := pp.client.Write(buf[:n]); werr != nil {
					pp.reset()
					return
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				closeWrite(pp.client)
			} else {
				pp.reset()
			}
			return
		}
	}
}

// reset closes both sides with a TCP reset (linger 0), once.
func (pp *pipe) reset() { pp.end(true) }

// close closes both sides in order (FIN), once.
func (pp *pipe) close() { pp.end(false) }

func (pp *pipe) end(rst bool) {
	pp.once.Do(func() {
		for _, c := range []net.Conn{pp.client, pp.server} {
			if tc, ok := c.(*net.TCPConn); ok && rst {
				tc.SetLinger(0)
			}
			c.Close()
		}
		pp.p.mu.Lock()
		delete(pp.p.pipes, pp)
		pp.p.mu.Unlock()
	})
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
		return
	}
	c.Close()
}
