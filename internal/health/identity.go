package health

import (
	"context"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// Identity is the check every server gets first: the server must be able
// to serve its identity mode (backend.Capabilities, read from its root DSE
// at connect and proven: in proxied-authorization mode the service account
// must be allowed to proxy). A server that cannot is unavailable, with the
// reason, instead of failing every client's operation.
type Identity struct{}

// Name implements Check.
func (Identity) Name() string { return "identity" }

// Run implements Check.
func (Identity) Run(ctx context.Context, t *Target) Result {
	pool := t.Server.Pool()
	if pool == nil {
		return Result{State: backend.Available, Score: 10, Reason: "no pool"}
	}
	caps, err := pool.Detect(ctx)
	switch {
	case err != nil:
		return Result{State: backend.Unavailable, Score: 1, Reason: err.Error()}
	case caps == nil:
		return Result{State: backend.Unavailable, Score: 1, Reason: "identity mode not known yet"}
	case caps.Err != nil:
		return Result{State: backend.Unavailable, Score: 1, Reason: caps.Err.Error()}
	}
	return Result{State: backend.Available, Score: 10, Reason: caps.Summary()}
}
