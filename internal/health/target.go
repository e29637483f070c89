package health

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// Target is a server as checks see it: a connection of their own, bound as
// the service account, kept between runs.
type Target struct {
	Server           *backend.Server
	BindDN, Password string

	trigger  chan struct{}
	running  atomic.Bool
	runs     atomic.Int64
	overlaps atomic.Int64

	mu   sync.Mutex // mu guards conn
	conn *ldap.Conn
}

// NewTarget prepares the check target of a server.
func NewTarget(s *backend.Server, bindDN, password string) *Target {
	return &Target{Server: s, BindDN: bindDN, Password: password, trigger: make(chan struct{}, 1)}
}

// Runs is how many check runs started on this target.
func (t *Target) Runs() int64 { return t.runs.Load() }

// Overlaps counts runs refused because another was still going (always 0).
func (t *Target) Overlaps() int64 { return t.overlaps.Load() }

// Conn returns the check connection, dialing and binding it when needed.
// Its request timeout follows ctx's deadline.
func (t *Target) Conn(ctx context.Context) (*ldap.Conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	deadline, ok := ctx.Deadline()
	timeout := 5 * time.Second
	if ok {
		timeout = time.Until(deadline)
	}
	if t.conn != nil && !t.conn.IsClosing() {
		t.conn.SetTimeout(timeout)
		return t.conn, nil
	}
	conn, err := ldap.DialURL("ldap://"+t.Server.Address, ldap.DialWithDialer(dialer(timeout)))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	conn.SetTimeout(timeout)
	if t.BindDN != "" {
		if err := conn.Bind(t.BindDN, t.Password); err != nil {
			conn.Close()
			return nil, fmt.Errorf("service bind: %w", err)
		}
	}
	t.conn = conn
	return conn, nil
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
