package e2e

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestBurstKeepsServerConnectionsOpen sends a burst far beyond what the
// servers queue: 200 anonymous clients each write 200 searches at once.
// Straight to slapd, a connection with more than 100 requests queued
// (conn_max_pending) is closed. Through ldapmux every request must be
// answered, found or busy (51), never cut off, and ldapmux must never put
// so many requests on one of its server connections that slapd closes it:
// that would end every operation sharing it and mark the server down.
func TestBurstKeepsServerConnectionsOpen(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 50})
	a, addr := startProxy(t, cluster, "")
	const clients, each = 200, 200
	var found, busy atomic.Int64
	var mu sync.Mutex
	var problems []string
	problem := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 5 {
			problems = append(problems, s)
		}
	}
	var wg sync.WaitGroup
	for range clients {
		c := rawDial(t, addr)
		wg.Go(func() {
			var burst []byte
			for i := 1; i <= each; i++ {
				burst = ldapwire.AppendBaseSearch(burst, int32(i), slapdtest.UserDN(1+i%50), []string{"cn"}, nil)
			}
			if _, err := c.nc.Write(burst); err != nil {
				problem("write: " + err.Error())
				return
			}
			for done := 0; done < each; {
				msg, err := c.next()
				if err != nil {
					problem(fmt.Sprintf("cut off after %d answers: %v", done, err))
					return
				}
				if msg.OpTag != ldapwire.OpSearchResultDone {
					continue
				}
				done++
				switch res, _ := ldapwire.ParseResult(msg.Body); res.Code {
				case ldapwire.Success:
					found.Add(1)
				case ldapwire.Busy:
					busy.Add(1)
				default:
					problem(fmt.Sprintf("result %d: %s", res.Code, res.Diagnostic))
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d searches: %d found, %d busy", clients*each, found.Load(), busy.Load())
	if len(problems) > 0 {
		t.Fatalf("requests not answered found or busy, first ones: %q", problems)
	}
	if found.Load() < clients*each/10 { // the rest is busy: limits.max-operations-per-server, the pools growing
		t.Fatalf("only %d of %d searches found their entry", found.Load(), clients*each)
	}
	assertStayedAvailable(t, a)
}
