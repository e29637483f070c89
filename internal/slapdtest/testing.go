package slapdtest

import (
	"context"
	"os"
	"testing"
	"time"
)

// ForTest starts a cluster for t and closes it in t.Cleanup. It fails the
// test if slapd is not installed or the cluster does not start in time
// (bounded by t's deadline, if any). Unless opts.Logf is set, progress is
// logged with t.Logf; if the test fails, the tails of the slapd logs are
// logged at cleanup.
func ForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if _, err := os.Stat(SlapdPath); err != nil {
		t.Fatalf("slapd not installed (%v): run `make test`, which installs it", err)
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ctx := t.Context()
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
	}
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("slapdtest: start slapd cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range c.Replicas {
				t.Logf("slapdtest: last lines of %s:\n%s", r.LogFile, r.FullLogTail())
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("slapdtest: close cluster: %v", err)
		}
	})
	return c
}
