package faultproxy

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineServer is a TCP server that answers each line "x" with "ok x" and
// remembers the lines it received: the proxy's own tests need a peer, not
// a database.
type lineServer struct {
	ln   net.Listener
	mu   sync.Mutex
	seen []string
}

func newLineServer(t *testing.T) *lineServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &lineServer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					s.mu.Lock()
					s.seen = append(s.seen, strings.TrimSpace(line))
					s.mu.Unlock()
					if _, err := c.Write([]byte("ok " + line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *lineServer) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// call sends line and returns the reply, or "" and the error.
func call(t *testing.T, c net.Conn, r *bufio.Reader, line string, wait time.Duration) (string, error) {
	t.Helper()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	reply, err := r.ReadString('\n')
	return strings.TrimSpace(reply), err
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func start(t *testing.T, s *lineServer) *Proxy {
	t.Helper()
	p, err := Start(s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestForwards(t *testing.T) {
	s := newLineServer(t)
	p := start(t, s)
	c, r := dial(t, p)
	for _, l := range []string{"a", "b"} {
		if got, err := call(t, c, r, l, time.Second); err != nil || got != "ok "+l {
			t.Fatalf("call %q = %q, %v", l, got, err)
		}
	}
	if p.Total() != 0 || p.Connections() != 1 {
		t.Errorf("faults %d, connections %d; want 0, 1", p.Total(), p.Connections())
	}
}

func TestDropReply(t *testing.T) {
	s := newLineServer(t)
	p := start(t, s)
	p.Arm(Rule{Match: []byte("secret"), Skip: 1, Fault: DropReply})
	c, r := dial(t, p)
	if got, err := call(t, c, r, "secret-1", time.Second); err != nil || got != "ok secret-1" {
		t.Fatalf("skipped match: %q, %v", got, err)
	}
	if got, err := call(t, c, r, "secret-2", 2*time.Second); err == nil {
		t.Fatalf("dropped reply arrived: %q", got)
	}
	if got := s.received(); len(got) != 2 || got[1] != "secret-2" {
		t.Errorf("server received %v: the dropped write must reach it", got)
	}
	if p.Fired(DropReply) != 1 || p.Armed() != 0 {
		t.Errorf("fired %d, armed %d; want 1, 0", p.Fired(DropReply), p.Armed())
	}
	// The rule disarmed: a new connection works.
	c2, r2 := dial(t, p)
	if got, err := call(t, c2, r2, "secret-3", time.Second); err != nil || got != "ok secret-3" {
		t.Fatalf("after the fault: %q, %v", got, err)
	}
}

func TestResetBeforeSendAndAfter(t *testing.T) {
	s := newLineServer(t)
	p := start(t, s)
	p.Arm(Rule{Match: []byte("begin"), After: 2, Fault: ResetBeforeSend})
	c, r := dial(t, p)
	for _, l := range []string{"begin", "insert"} {
		if got, err := call(t, c, r, l, time.Second); err != nil || got != "ok "+l {
			t.Fatalf("call %q = %q, %v", l, got, err)
		}
	}
	if _, err := call(t, c, r, "commit", time.Second); err == nil {
		t.Fatal("the faulted write got a reply")
	}
	if got := s.received(); len(got) != 2 {
		t.Errorf("server received %v: the write reset before sending must not reach it", got)
	}
}

func TestLatency(t *testing.T) {
	s := newLineServer(t)
	p := start(t, s)
	p.Arm(Rule{Match: []byte("slow"), Fault: Latency, Delay: 300 * time.Millisecond})
	c, r := dial(t, p)
	t0 := time.Now()
	if got, err := call(t, c, r, "slow", 2*time.Second); err != nil || got != "ok slow" {
		t.Fatalf("delayed call = %q, %v", got, err)
	}
	if d := time.Since(t0); d < 300*time.Millisecond {
		t.Errorf("reply after %v, want at least 300ms", d)
	}
}

func TestTimeoutSwallows(t *testing.T) {
	s := newLineServer(t)
	p := start(t, s)
	p.Arm(Rule{Fault: Timeout})
	c, r := dial(t, p)
	if got, err := call(t, c, r, "x", 300*time.Millisecond); err == nil {
		t.Fatalf("swallowed reply arrived: %q", got)
	}
	if got := s.received(); len(got) != 1 {
		t.Errorf("server received %v, want the write", got)
	}
}

func TestDropReplyThenDown(t *testing.T) {
	s := newLineServer(t)
	p := start(t, s)
	idle, idleR := dial(t, p)
	if got, err := call(t, idle, idleR, "warm", time.Second); err != nil || got != "ok warm" {
		t.Fatalf("warm-up: %q, %v", got, err)
	}
	p.Arm(Rule{Match: []byte("write"), Fault: DropReply, ThenDown: true})
	c, r := dial(t, p)
	if got, err := call(t, c, r, "write", 2*time.Second); err == nil {
		t.Fatalf("dropped reply arrived: %q", got)
	}
	if _, err := call(t, idle, idleR, "read", time.Second); err == nil {
		t.Fatal("an open connection still works while the proxy is down")
	}
	// While down, the proxy ends new connections at once: the dial itself
	// may already fail (reset), or the first call does.
	if c2, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Cleanup(func() { c2.Close() })
		if _, err := call(t, c2, bufio.NewReader(c2), "read", time.Second); err == nil {
			t.Fatal("a new connection works while the proxy is down")
		}
	}
	p.Up()
	c3, r3 := dial(t, p)
	if got, err := call(t, c3, r3, "read", time.Second); err != nil || got != "ok read" {
		t.Fatalf("after Up: %q, %v", got, err)
	}
	if got := s.received(); len(got) < 2 || got[1] != "write" {
		t.Errorf("server received %v: the dropped write must reach it", got)
	}
}
