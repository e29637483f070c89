package health

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeDirectory answers searches from a function; each search advances the
// clock by delay (the server's response time).
type fakeDirectory struct {
	clock *fakeClock

	mu     sync.Mutex // mu guards the fields below
	delay  time.Duration
	answer func(req *ldap.SearchRequest) (*ldap.SearchResult, error)
	dials  int
	down   bool
}

func (d *fakeDirectory) set(delay time.Duration, answer func(*ldap.SearchRequest) (*ldap.SearchResult, error)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.delay = delay
	if answer != nil {
		d.answer = answer
	}
}

func (d *fakeDirectory) setDown(down bool) {
	d.mu.Lock()
	d.down = down
	d.mu.Unlock()
}

// dial implements Target.Dial.
func (d *fakeDirectory) dial(context.Context) (Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dials++
	if d.down {
		return nil, errors.New("connect: connection refused")
	}
	return &fakeConn{dir: d}, nil
}

func (d *fakeDirectory) dialCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials
}

// fakeConn is a Client on a fakeDirectory.
type fakeConn struct {
	dir    *fakeDirectory
	closed bool
}

func (c *fakeConn) Search(req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	c.dir.mu.Lock()
	delay, answer, down := c.dir.delay, c.dir.answer, c.dir.down
	c.dir.mu.Unlock()
	if down {
		return nil, ldap.NewError(ldap.ErrorNetwork, errors.New("connection reset by peer"))
	}
	c.dir.clock.Advance(delay)
	if answer == nil {
		return &ldap.SearchResult{Entries: []*ldap.Entry{ldap.NewEntry("", nil)}}, nil
	}
	return answer(req)
}

func (c *fakeConn) SearchAsync(context.Context, *ldap.SearchRequest, int) ldap.Response {
	panic("not used")
}
func (c *fakeConn) SetTimeout(time.Duration) {}
func (c *fakeConn) IsClosing() bool          { return c.closed }
func (c *fakeConn) Close() error             { c.closed = true; return nil }

// entries answers every search with one entry of the given attributes.
func entries(dn string, attrs map[string][]string) func(*ldap.SearchRequest) (*ldap.SearchResult, error) {
	return func(*ldap.SearchRequest) (*ldap.SearchResult, error) {
		return &ldap.SearchResult{Entries: []*ldap.Entry{ldap.NewEntry(dn, attrs)}}, nil
	}
}

// rig is a checker over fake directories, with its log captured.
type rig struct {
	clock   *fakeClock
	dirs    []*fakeDirectory
	reg     *backend.Registry
	checker *Checker
	logs    *lockedBuffer
}

// newRig builds a checker for one fake server per check list.
func newRig(t *testing.T, checks ...[]Check) *rig {
	t.Helper()
	r := &rig{clock: newFakeClock(), logs: &lockedBuffer{}}
	servers := make([]*backend.Server, len(checks))
	targets := make([]*Target, len(checks))
	for i := range checks {
		servers[i] = &backend.Server{Name: "ds" + string(rune('1'+i)), Address: "127.0.0.1:1"}
		dir := &fakeDirectory{clock: r.clock}
		r.dirs = append(r.dirs, dir)
		targets[i] = NewTarget(servers[i], "", "")
		targets[i].Dial = dir.dial
	}
	r.reg = backend.NewRegistry(servers, r.clock.Now)
	log := slog.New(slog.NewTextHandler(r.logs, nil))
	r.checker = NewChecker(Config{Frequency: time.Hour, Timeout: 5 * time.Second, Now: r.clock.Now}, r.reg, targets, checks, log)
	return r
}

// check runs server i's checks once and returns its published health.
func (r *rig) check(t *testing.T, i int) backend.Health {
	t.Helper()
	r.checker.CheckNow(context.Background(), i)
	return r.reg.Snapshot().Servers[i].Health
}

// changes counts the logged state changes.
func (r *rig) changes() int { return strings.Count(r.logs.String(), "server state changed") }

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// scripted is a check that returns the results it is given.
type scripted struct {
	name string
	mu   sync.Mutex
	next Result
	run  func() // called during Run, if set
}

func (s *scripted) Name() string { return s.name }

func (s *scripted) Run(context.Context, *Target) Result {
	if s.run != nil {
		s.run()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

func (s *scripted) set(r Result) {
	s.mu.Lock()
	s.next = r
	s.mu.Unlock()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
