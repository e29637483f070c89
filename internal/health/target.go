package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// Client is the part of an LDAP connection that checks use. *ldap.Conn
// implements it; tests substitute fakes.
type Client interface {
	Search(req *ldap.SearchRequest) (*ldap.SearchResult, error)
	SearchAsync(ctx context.Context, req *ldap.SearchRequest, bufferSize int) ldap.Response
	SetTimeout(d time.Duration)
	IsClosing() bool
	Close() error
}

// defaultTimeout bounds dialing when ctx has no deadline.
const defaultTimeout = 5 * time.Second

// Target is a server as checks see it: a connection of their own, bound as
// the service account and kept between runs, and the bookkeeping of the
// runs.
type Target struct {
	Server           *backend.Server
	BindDN, Password string
	// Frequency is the time between two runs; 0 means the checker's.
	Frequency time.Duration
	// Dial opens a connection bound as the service account; nil dials
	// Server.Address with LDAP. Tests replace it.
	Dial func(ctx context.Context) (Client, error)

	now      func() time.Time
	trigger  chan struct{}
	running  atomic.Bool
	runs     atomic.Int64
	overlaps atomic.Int64

	// declinedAt is when the server last declined an operation (unix
	// nanoseconds of the checker's clock, 0 for never), declineReason
	// how; both are written under pubMu.
	declinedAt    atomic.Int64
	declineReason atomic.Pointer[string]

	// failures counts passive failures; seenFailures is how many the
	// checks have been told about (used by the run in progress only).
	failures     atomic.Int64
	seenFailures int64
	pubMu        sync.Mutex // serialises publishing for this server

	mu      sync.Mutex // mu guards the fields below
	conn    Client
	dialErr error // this run's failed dial, returned without dialing again
	// silent is set when a check of this run got no answer from the
	// server: it timed out, or no connection could be made.
	silent bool
}

// NewTarget prepares the check target of a server.
func NewTarget(s *backend.Server, bindDN, password string) *Target {
	return &Target{Server: s, BindDN: bindDN, Password: password, now: time.Now, trigger: make(chan struct{}, 1)}
}

// Runs is how many check runs started on this target.
func (t *Target) Runs() int64 { return t.runs.Load() }

// Overlaps counts runs refused because another was still going (always 0).
func (t *Target) Overlaps() int64 { return t.overlaps.Load() }

// Now is the checker's clock.
func (t *Target) Now() time.Time { return t.now() }

// Trigger asks for a run as soon as the current one (if any) ends.
func (t *Target) Trigger() {
	select {
	case t.trigger <- struct{}{}:
	default:
	}
}

// Conn returns the shared check connection, dialing and binding it when
// needed. Its request timeout follows ctx's deadline. Once a dial failed in
// a run, later checks of the same run get the same error at once.
func (t *Target) Conn(ctx context.Context) (Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dialErr != nil {
		return nil, t.dialErr
	}
	if t.conn != nil && !t.conn.IsClosing() {
		t.conn.SetTimeout(remaining(ctx))
		return t.conn, nil
	}
	conn, err := t.Open(ctx)
	if err != nil {
		t.dialErr = connectError{err}
		t.silent = t.silent || unanswered(ctx, err)
		return nil, t.dialErr
	}
	t.conn = conn
	return conn, nil
}

// connectError is a failure to connect or to bind: the server cannot be
// used, whatever result code the bind got.
type connectError struct{ err error }

func (e connectError) Error() string { return e.err.Error() }
func (e connectError) Unwrap() error { return e.err }

// Open dials a new connection bound as the service account, owned by the
// caller, with ctx's deadline as its request timeout.
func (t *Target) Open(ctx context.Context) (Client, error) {
	if t.Dial != nil {
		return t.Dial(ctx)
	}
	timeout := remaining(ctx)
	conn, err := dialSecure(t.Server, timeout)
	if err != nil {
		return nil, err
	}
	conn.SetTimeout(timeout)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if t.BindDN != "" {
		if err := conn.Bind(t.BindDN, t.Password); err != nil {
			conn.Close()
			return nil, fmt.Errorf("service bind: %w", err)
		}
	}
	return conn, nil
}

// remaining is the time left before ctx's deadline.
func remaining(ctx context.Context) time.Duration {
	if deadline, ok := ctx.Deadline(); ok {
		return max(time.Until(deadline), time.Millisecond)
	}
	return defaultTimeout
}

// beginRun forgets the previous run's dial error and silence.
func (t *Target) beginRun() {
	t.mu.Lock()
	t.dialErr = nil
	t.silent = false
	t.mu.Unlock()
}

// wasSilent reports whether a check of the run got no answer.
func (t *Target) wasSilent() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.silent
}

// requestFailed handles a check's request that failed with err. An error
// other than the server's result drops the connection, which may hold a
// late answer; one that ran out of time also marks the run silent.
func (t *Target) requestFailed(ctx context.Context, err error) {
	if isResultError(err) {
		return
	}
	t.Reset()
	if unanswered(ctx, err) {
		t.mu.Lock()
		t.silent = true
		t.mu.Unlock()
	}
}

// unanswered reports whether err means the server gave no answer at all:
// the check ran out of time, or the connection was refused or the host
// unreachable. A connection closed or reset is not counted: the server (or
// something in between) acted, and operations on its other connections
// learn of that on their own.
func unanswered(ctx context.Context, err error) bool {
	var ne net.Error
	var lerr *ldap.Error
	switch {
	case err == nil, errors.As(err, &lerr) && lerr.ResultCode < ldap.ErrorNetwork:
		return false
	case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return true
	}
	return strings.Contains(err.Error(), "timed out") // go-ldap's request timeout has no error value of its own
}

// Reset drops the check connection after an error.
func (t *Target) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
}

// Close releases the check connection.
func (t *Target) Close() { t.Reset() }

// search runs req on the shared connection. Errors other than LDAP results
// (network, timeout) drop the connection: it may hold a late answer.
func (t *Target) search(ctx context.Context, req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	conn, err := t.Conn(ctx)
	if err != nil {
		return nil, err
	}
	res, err := conn.Search(req)
	if err != nil {
		t.requestFailed(ctx, err)
	}
	return res, err
}

// isResultError reports whether err is a result sent by the server, as
// opposed to a network failure or a timeout.
func isResultError(err error) bool {
	var lerr *ldap.Error
	if errors.As(err, new(connectError)) || !errors.As(err, &lerr) {
		return false
	}
	return lerr.ResultCode < ldap.ErrorNetwork
}
