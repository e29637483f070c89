//go:build linux

package evloop

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// newLoop starts a loop that the test's cleanup closes.
func newLoop(t *testing.T) *Loop {
	t.Helper()
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// reader reads what is there, once per report, and echoes it on got.
type reader struct {
	rc    syscall.RawConn
	got   chan string
	calls atomic.Int32
}

func (r *reader) Readable() {
	r.calls.Add(1)
	var buf [64]byte
	n := 0
	r.rc.Read(func(fd uintptr) bool {
		n, _ = syscall.Read(int(fd), buf[:])
		return true
	})
	if n > 0 {
		r.got <- string(buf[:n])
	}
}

func rawConn(t *testing.T, c net.Conn) syscall.RawConn {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func receive(t *testing.T, ch chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no report within 10s")
		return ""
	}
}

func TestReportsEachSocketReadable(t *testing.T) {
	l := newLoop(t)
	var readers []*reader
	var clients []net.Conn
	for range 20 {
		srv, cli := pair(t)
		r := &reader{rc: rawConn(t, srv), got: make(chan string, 10)}
		if _, err := l.Add(r.rc, r); err != nil {
			t.Fatal(err)
		}
		readers, clients = append(readers, r), append(clients, cli)
	}
	for round := range 3 {
		for i, c := range clients {
			if _, err := c.Write([]byte{byte('a' + i), byte('0' + round)}); err != nil {
				t.Fatal(err)
			}
		}
		for i, r := range readers {
			if got, want := receive(t, r.got), string([]byte{byte('a' + i), byte('0' + round)}); got != want {
				t.Fatalf("socket %d round %d: read %q, want %q", i, round, got, want)
			}
		}
	}
}

func TestRemoveStopsReports(t *testing.T) {
	l := newLoop(t)
	srv, cli := pair(t)
	r := &reader{rc: rawConn(t, srv), got: make(chan string, 10)}
	reg, err := l.Add(r.rc, r)
	if err != nil {
		t.Fatal(err)
	}
	cli.Write([]byte("x"))
	receive(t, r.got)
	reg.Remove()
	reg.Remove() // twice is fine
	cli.Write([]byte("y"))
	// Two rounds of posted functions: any report of the byte just written
	// would have come in a batch before the second ran.
	for range 2 {
		done := make(chan struct{})
		l.Post(func() { close(done) })
		<-done
	}
	select {
	case s := <-r.got:
		t.Fatalf("read %q after Remove", s)
	default:
	}
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1)
	if _, err := srv.Read(buf); err != nil || buf[0] != 'y' {
		t.Fatalf("byte left for a blocking read: %q %v", buf, err)
	}
}

func TestPostRunsOnTheLoop(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	var order []int
	done := make(chan struct{})
	for i := range 100 {
		l.Post(func() {
			order = append(order, i) // loop goroutine only
			if i == 99 {
				close(done)
			}
		})
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("posted functions did not run")
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("ran out of order: %v", order)
		}
	}
	l.Close()
	l.Close()
	if l.Post(func() {}) {
		t.Fatal("Post after Close reported true")
	}
	srv, _ := pair(t)
	if _, err := l.Add(rawConn(t, srv), &reader{}); err != ErrClosed {
		t.Fatalf("Add after Close: %v, want ErrClosed", err)
	}
}

func TestClosedSocketIsReportedAndLeaves(t *testing.T) {
	l := newLoop(t)
	srv, cli := pair(t)
	r := &reader{rc: rawConn(t, srv), got: make(chan string, 10)}
	reg, err := l.Add(r.rc, r)
	if err != nil {
		t.Fatal(err)
	}
	cli.Close() // EOF: readable
	deadline := time.Now().Add(10 * time.Second)
	for r.calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("EOF not reported")
		}
		time.Sleep(time.Millisecond)
	}
	reg.Remove()
	srv.Close()
	reg.Remove() // after the socket is closed
}

func TestGroupSpreads(t *testing.T) {
	g, err := NewGroup(3)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	seen := map[*Loop]bool{}
	for range 3 {
		seen[g.Pick()] = true
	}
	if len(seen) != 3 || len(g.Loops()) != 3 {
		t.Fatalf("3 picks used %d loops of %d", len(seen), len(g.Loops()))
	}
}

// TestConcurrentPostsAllRun posts from many goroutines at once: a wake-up
// must never be lost between the loop taking the queue and a new Post.
func TestConcurrentPostsAllRun(t *testing.T) {
	l := newLoop(t)
	const posters, each = 8, 5000
	var ran atomic.Int64
	var wg sync.WaitGroup
	for range posters {
		wg.Go(func() {
			for range each {
				done := make(chan struct{})
				l.Post(func() { ran.Add(1); close(done) })
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Errorf("a posted function did not run within 10s (%d ran)", ran.Load())
					return
				}
			}
		})
	}
	wg.Wait()
	if got := ran.Load(); got != posters*each {
		t.Fatalf("%d of %d posted functions ran", got, posters*each)
	}
}

// deferring records its report and defers a step behind it.
type deferring struct {
	l   *Loop
	rc  syscall.RawConn
	log *[]string // loop goroutine only
	tag string
}

func (d *deferring) Readable() {
	var buf [16]byte
	d.rc.Read(func(fd uintptr) bool { syscall.Read(int(fd), buf[:]); return true })
	*d.log = append(*d.log, "read "+d.tag)
	d.l.Defer(func() { *d.log = append(*d.log, "deferred "+d.tag) })
}

// TestDeferRunsAfterTheBatch: what handlers defer runs once every handler
// of the batch ran, before the next batch.
func TestDeferRunsAfterTheBatch(t *testing.T) {
	l := newLoop(t)
	var log []string
	var clients []net.Conn
	for _, tag := range []string{"a", "b"} {
		srv, cli := pair(t)
		if _, err := l.Add(rawConn(t, srv), &deferring{l: l, rc: rawConn(t, srv), log: &log, tag: tag}); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cli)
	}
	// Both sockets become readable while the loop is held in a posted
	// function, so that one batch reports both.
	hold, held := make(chan struct{}), make(chan struct{})
	l.Post(func() { close(held); <-hold })
	<-held
	for _, c := range clients {
		c.Write([]byte("x"))
	}
	// On loopback the bytes are queued at the receiver when Write returns;
	// were they not, the batch would split, which the check below allows.
	close(hold)
	deadline := time.Now().Add(10 * time.Second)
	for {
		done := make(chan []string)
		l.Post(func() { done <- append([]string(nil), log...) })
		got := <-done
		if len(got) == 4 {
			if got[0][:4] == "read" && got[1][:4] == "read" {
				if got[2][:8] != "deferred" || got[3][:8] != "deferred" {
					t.Fatalf("order %v: deferred steps must follow every read of the batch", got)
				}
			} else if got[1][:8] != "deferred" || got[3][:8] != "deferred" {
				t.Fatalf("order %v: each batch's deferred step must follow its read", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %v", got)
		}
	}
}
