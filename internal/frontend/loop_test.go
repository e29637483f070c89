package frontend

import (
	"runtime"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/evloop/evlooptest"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/proxy"
)

// TestIdleSessionsHoldNoGoroutine: plain sessions that wait for their next
// request are parked in the event loops, with no goroutine each (with
// event-loops off, each has its read loop: the count is only logged).
func TestIdleSessionsHoldNoGoroutine(t *testing.T) {
	e := newEnv(t, proxy.Config{}, Limits{}, 1)
	warm := e.dial(t)
	warm.send(ldapwire.AppendBaseSearch(nil, 1, "dc=example,dc=com", nil, nil))
	warm.readDone(1, ldapwire.OpSearchResultDone)
	before := runtime.NumGoroutine()
	const clients = 200
	for range clients {
		c := e.dial(t)
		c.send(ldapwire.AppendBaseSearch(nil, 1, "dc=example,dc=com", nil, nil))
		if res, _, _ := c.readDone(1, ldapwire.OpSearchResultDone); res.Code != ldapwire.Success {
			t.Fatalf("search: result %d", res.Code)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		grown := runtime.NumGoroutine() - before
		if evlooptest.Off() {
			t.Logf("%d idle sessions, %d more goroutines", clients, grown)
			return
		}
		if grown < clients/10 {
			t.Logf("%d idle sessions, %d more goroutines", clients, grown)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle sessions hold %d more goroutines after 10s, want fewer than %d", clients, grown, clients/10)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
