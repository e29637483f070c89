package slapdrun

import (
	"testing"
)

// ForTest starts a cluster for t and closes it at cleanup, like
// slapdtest.ForTest (which this package's tests cannot import).
func ForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	c, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("start slapd cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range c.Replicas {
				t.Logf("last lines of %s:\n%s", r.LogFile, r.FullLogTail())
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("close cluster: %v", err)
		}
	})
	return c
}
