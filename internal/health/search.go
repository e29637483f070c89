package health

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// RootDSE is the simplest check: a base search of the root DSE must answer
// within the check timeout.
type RootDSE struct{}

// Name implements Check.
func (RootDSE) Name() string { return "root-dse" }

// Run implements Check.
func (RootDSE) Run(ctx context.Context, t *Target) Result {
	start := time.Now()
	conn, err := t.Conn(ctx)
	if err != nil {
		return Result{State: backend.Unavailable, Score: 1, Reason: err.Error()}
	}
	req := ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", []string{"1.1"}, nil)
	if _, err := conn.Search(req); err != nil {
		t.Reset()
		return Result{State: backend.Unavailable, Score: 1, Reason: fmt.Sprintf("root DSE search: %v", err)}
	}
	return Result{State: backend.Available, Score: 10, Reason: fmt.Sprintf("root DSE answered in %s", time.Since(start).Round(time.Millisecond))}
}

func dialer(timeout time.Duration) *net.Dialer { return &net.Dialer{Timeout: timeout} }
