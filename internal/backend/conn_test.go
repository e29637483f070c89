package backend

import (
	"errors"
	"github.com/ldapmux/ldapmux/internal/evloop"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// gatedConn holds every write until released, then fails it, as a socket
// that breaks while a request is being written.
type gatedConn struct {
	net.Conn
	writing chan struct{} // closed when the first write starts
	release chan struct{}
}

func (g *gatedConn) Write([]byte) (int, error) {
	close(g.writing)
	<-g.release
	return 0, errors.New("connection reset by peer")
}

// TestWriteFailureAfterCloseIsReportedOnce: the connection's reader (or the
// timeout sweep) closes the connection while a request is being written,
// then the write fails. The request's handler was already told Lost by the
// close, so Send must not report the failure too: the caller would retry
// the operation a second time, concurrently with the retry the handler
// started.
func TestWriteFailureAfterCloseIsReportedOnce(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	gate := &gatedConn{Conn: client, writing: make(chan struct{}), release: make(chan struct{})}
	c := &Conn{server: &Server{Name: "fake"}, nc: gate, born: time.Now(),
		pending: make(map[int32]pendingOp), done: make(chan struct{}), nextID: 1}
	h := &probeHandler{done: make(chan error, 2)}
	sent := make(chan error, 1)
	go func() {
		_, err := c.Send(h, ldapwire.AppendRootDSEProbe, 0)
		sent <- err
	}()
	<-gate.writing
	c.Close(errors.New("reader: connection reset"))
	close(gate.release)
	sendErr := <-sent
	reports := len(h.done)
	if sendErr != nil {
		reports++
	}
	if reports != 1 {
		t.Fatalf("the failed request was reported %d times (Send: %v, handler told Lost %d times), want once", reports, sendErr, len(h.done))
	}
	if c.Inflight() != 0 {
		t.Errorf("in flight %d after the connection closed", c.Inflight())
	}
}

// TestWriteFailureIsReportedOnceBySend: on plain TCP, without a concurrent
// close, the sender's own request whose write fails at once is reported by
// Send alone.
func TestWriteFailureIsReportedOnceBySend(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	peer, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	peer.(*net.TCPConn).SetLinger(0) // close with a reset
	peer.Close()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil { // the reset has arrived
		t.Fatal("read from a reset connection succeeded")
	}
	c := &Conn{server: &Server{Name: "fake"}, nc: nc, born: time.Now(), rawOut: evloop.NewSocket(nc),
		pending: make(map[int32]pendingOp), done: make(chan struct{}), nextID: 1}
	h := &probeHandler{done: make(chan error, 2)}
	if _, err := c.Send(h, ldapwire.AppendRootDSEProbe, 0); err == nil {
		t.Fatal("Send reported a failed write as sent")
	}
	if len(h.done) != 0 {
		t.Fatal("the handler was told Lost as well as the sender")
	}
	if c.Err() == nil {
		t.Fatal("the connection stayed open after a failed write")
	}
}

// TestFailedWaitingWriteIsReportedOnceByTheHandler: a write that has to
// wait (under TLS always) is finished by a goroutine, so Send reports the
// request sent and its failure reaches the handler, once.
func TestFailedWaitingWriteIsReportedOnceByTheHandler(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	gate := &gatedConn{Conn: client, writing: make(chan struct{}), release: make(chan struct{})}
	close(gate.release)
	c := &Conn{server: &Server{Name: "fake"}, nc: gate, born: time.Now(),
		pending: make(map[int32]pendingOp), done: make(chan struct{}), nextID: 1}
	h := &probeHandler{done: make(chan error, 2)}
	if _, err := c.Send(h, ldapwire.AppendRootDSEProbe, 0); err != nil {
		t.Fatalf("Send: %v, want the request handed to the writing goroutine", err)
	}
	select {
	case err := <-h.done:
		if err == nil {
			t.Fatal("the handler was told the request succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler was not told within 10s")
	}
	<-c.Done()
	if len(h.done) != 0 {
		t.Fatal("the handler was told twice")
	}
}

// secondWriteFails lets the first write through once released and fails
// every later one.
type secondWriteFails struct {
	net.Conn
	writing chan struct{} // closed when the first write starts
	release chan struct{}
	writes  atomic.Int32
}

func (s *secondWriteFails) Write(b []byte) (int, error) {
	if s.writes.Add(1) == 1 {
		close(s.writing)
		<-s.release
		return len(b), nil
	}
	return 0, errors.New("broken pipe")
}

// lockingHandler takes a lock when told Lost, as the proxy's handler takes
// the lock of the operation whose sender holds it while sending.
type lockingHandler struct {
	mu   *sync.Mutex
	lost chan error
}

func (h *lockingHandler) Response([]byte, ldapwire.Message, bool) Flusher { return nil }
func (h *lockingHandler) Lost(err error) {
	h.mu.Lock()
	h.mu.Unlock()
	h.lost <- err
}

// TestLaterBatchFailureDoesNotDeadlockTheSender: a sender whose request
// went out goes on writing requests queued behind it; when that write
// fails, the connection closes and every pending request is lost — its own
// included, whose handler needs the lock the sender's caller holds. The
// sender must return, and both handlers hear of the loss.
func TestLaterBatchFailureDoesNotDeadlockTheSender(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	nc := &secondWriteFails{Conn: client, writing: make(chan struct{}), release: make(chan struct{})}
	c := &Conn{server: &Server{Name: "fake"}, nc: nc, born: time.Now(),
		pending: make(map[int32]pendingOp), done: make(chan struct{}), nextID: 1}
	var held sync.Mutex
	first := &lockingHandler{mu: &held, lost: make(chan error, 1)}
	second := &lockingHandler{mu: new(sync.Mutex), lost: make(chan error, 1)}
	sent := make(chan error, 1)
	held.Lock()
	go func() {
		_, err := c.Send(first, ldapwire.AppendRootDSEProbe, 0)
		sent <- err
	}()
	<-nc.writing
	if _, err := c.Send(second, ldapwire.AppendRootDSEProbe, 0); err != nil {
		t.Fatalf("a request queued behind a write in progress: %v", err)
	}
	close(nc.release)
	select {
	case err := <-sent:
		if err != nil {
			t.Errorf("the first request was written, yet Send says %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sender never returned: closing the connection waited for a lock its caller holds")
	}
	held.Unlock()
	for name, h := range map[string]*lockingHandler{"first": first, "second": second} {
		select {
		case <-h.lost:
		case <-time.After(10 * time.Second):
			t.Fatalf("the %s request's handler never heard of the loss", name)
		}
	}
}
