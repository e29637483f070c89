package proxy

import (
	"testing"

	"github.com/ldapmux/ldapmux/internal/evloop/evlooptest"
)

// TestWithoutEventLoops runs this package's tests again with every
// connection read by a goroutine of its own, the path taken when
// event-loops is off and under TLS.
func TestWithoutEventLoops(t *testing.T) { evlooptest.RunWithout(t, "TestWithoutEventLoops") }
