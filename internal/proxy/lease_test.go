package proxy

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

const waitLong = 3 * time.Second // bound on what should take milliseconds

// pageOnce asks for one page and checks it holds entries from..from+size of
// base; it returns the cookie for the next page.
func pageOnce(t *testing.T, s *session, base string, size, from, total int, cookie string) string {
	t.Helper()
	return checkPage(t, startPage(s, base, size, cookie), base, size, from, total)
}

// startPage asks for one page of base.
func startPage(s *session, base string, size int, cookie string) *op {
	return s.start(func(id int32) []byte { return pagedSearch(id, base, size, cookie) })
}

// checkPage waits for a page and checks it holds entries from..from+size
// of base; it returns the cookie for the next page.
func checkPage(t *testing.T, o *op, base string, size, from, total int) string {
	t.Helper()
	res, final, entries := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone)
	if res.Code != ldapwire.Success {
		t.Fatalf("%s page from %d: result %d %s", base, from, res.Code, res.Diagnostic)
	}
	to := min(from+size, total)
	if got, want := entryDNs(t, entries), wantDNs(base, from, to); !sameStrings(got, want) {
		t.Fatalf("%s page from %d: entries %v, want %v", base, from, got, want)
	}
	next := responseCookie(t, final)
	if (next == "") != (to == total) {
		t.Fatalf("%s page from %d: cookie %q after entry %d of %d", base, from, next, to, total)
	}
	return next
}

// Sessions paging at the same time each get their own leased connection,
// every cookie goes back to the connection that issued it, and the leases
// end with the searches.
func TestPagingSessionsKeepTheirConnections(t *testing.T) {
	const sessions, total, size = 3, 10, 3
	e := newEnv(t, total, Config{}, backend.PoolConfig{Conns: 1})
	ss := make([]*session, sessions)
	cookies := make([]string, sessions)
	for i := range ss {
		ss[i] = e.session(t)
	}
	base := func(i int) string { return fmt.Sprintf("ou=s%d,dc=example,dc=com", i) }
	for from := 0; from < total; from += size {
		// Every session asks for its next page at once: pages interleave on
		// the server, and first pages race with each other's leasing.
		ops := make([]*op, sessions)
		var wg sync.WaitGroup
		for i, s := range ss {
			wg.Add(1)
			go func() { // as from each client's read loop
				defer wg.Done()
				ops[i] = startPage(s, base(i), size, cookies[i])
			}()
		}
		wg.Wait()
		for i, o := range ops {
			cookies[i] = checkPage(t, o, base(i), size, from, total)
		}
		if from == 0 {
			if st := e.pool.Stats(); st.Leased != sessions {
				t.Errorf("after the first pages, %d connections leased, want %d", st.Leased, sessions)
			}
		}
	}
	e.untilStats(t, waitLong, "leases end with the searches", func(st backend.PoolStats) bool { return st.Leased == 0 })
	for i, s := range ss {
		if n := s.leases.Count(); n != 0 {
			t.Errorf("session %d still holds %d leases", i, n)
		}
	}
	e.ds.until(t, waitLong, "every connection closed", func(ds *fakeDS) bool { return ds.openConnsLocked() == 0 })
	e.ds.locked(func(ds *fakeDS) {
		paging := 0
		for _, c := range ds.conns {
			if len(c.bases) == 0 {
				continue
			}
			paging++
			if len(c.bases) != 1 {
				t.Errorf("conn %d served the paged searches of %d sessions: %v", c.id, len(c.bases), c.bases)
			}
			if !sameStrings(c.issued, c.received) {
				t.Errorf("conn %d issued cookies %v but got back %v", c.id, c.issued, c.received)
			}
		}
		if paging != sessions {
			t.Errorf("%d connections served paged searches, want one per session (%d)", paging, sessions)
		}
	})
	if h := e.health.reports(); len(h) > 0 {
		t.Errorf("health told of %v", h)
	}
}

// A session may page through several searches one after the other on its
// lease, which ends after the last one.
func TestPagingSearchesOneAfterAnother(t *testing.T) {
	const total, size = 5, 2
	e := newEnv(t, total, Config{}, backend.PoolConfig{})
	s := e.session(t)
	for round := range 3 {
		base := fmt.Sprintf("ou=r%d,dc=example,dc=com", round)
		cookie := ""
		for from := 0; from < total; from += size {
			cookie = pageOnce(t, s, base, size, from, total, cookie)
		}
		e.untilStats(t, waitLong, "lease ends after the last page", func(st backend.PoolStats) bool { return st.Leased == 0 })
	}
	e.ds.until(t, waitLong, "every connection closed", func(ds *fakeDS) bool { return ds.openConnsLocked() == 0 })
}

// A cookie the session never received is refused without reaching a
// server: forged, another session's, or one from before the client bound
// again.
func TestPagingCookieNotOfThisSession(t *testing.T) {
	const total, size = 6, 2
	base := "ou=people,dc=example,dc=com"
	e := newEnv(t, total, Config{}, backend.PoolConfig{})
	a, b := e.session(t), e.session(t)
	cookieA := pageOnce(t, a, base, size, 0, total, "")

	refused := func(s *session, cookie, what string) {
		t.Helper()
		var before int
		e.ds.locked(func(ds *fakeDS) { before = ds.searches })
		o := s.start(func(id int32) []byte { return pagedSearch(id, base, size, cookie) })
		res, _, entries := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone)
		if res.Code != ldapwire.UnwillingToPerform || len(entries) != 0 {
			t.Errorf("%s: result %d %q with %d entries, want unwillingToPerform (53)", what, res.Code, res.Diagnostic, len(entries))
		}
		if !strings.Contains(string(res.Diagnostic), "cookie") {
			t.Errorf("%s: diagnostic %q does not mention the cookie", what, res.Diagnostic)
		}
		e.ds.locked(func(ds *fakeDS) {
			if ds.searches != before {
				t.Errorf("%s: the server got the search", what)
			}
		})
	}
	refused(a, "forged", "a forged cookie")
	refused(b, cookieA, "another session's cookie")

	a.leases.Retire()
	e.untilStats(t, waitLong, "Retire ends an idle lease", func(st backend.PoolStats) bool { return st.Leased == 0 })
	refused(a, cookieA, "a cookie from before Retire")

	// The session can start over.
	cookie := ""
	for from := 0; from < total; from += size {
		cookie = pageOnce(t, a, base, size, from, total, cookie)
	}
	e.untilStats(t, waitLong, "lease ends after the last page", func(st backend.PoolStats) bool { return st.Leased == 0 })
}

// Past the cap on leased connections, a paged search waits for a lease to
// end within the connect timeout; when none does, it is answered busy with
// a message that names the setting, and the refusal is counted.
func TestLeaseCap(t *testing.T) {
	const total, size = 6, 2
	e := newEnv(t, total, Config{ConnectTimeout: 200 * time.Millisecond}, backend.PoolConfig{Leases: 1})
	a, b := e.session(t), e.session(t)
	cookieA := pageOnce(t, a, "ou=a,dc=example,dc=com", size, 0, total, "")

	o := b.start(func(id int32) []byte { return pagedSearch(id, "ou=b,dc=example,dc=com", size, "") })
	res, _, entries := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone)
	if res.Code != ldapwire.Busy || len(entries) != 0 {
		t.Fatalf("second session: result %d %q with %d entries, want busy (51)", res.Code, res.Diagnostic, len(entries))
	}
	if !strings.Contains(string(res.Diagnostic), "pool.leased-connections-per-server") {
		t.Errorf("diagnostic %q does not name the cap", res.Diagnostic)
	}
	st := e.pool.Stats()
	if st.LeasesRefused != 1 || st.Leased != 1 {
		t.Errorf("stats %+v: want 1 lease refused and 1 leased", st)
	}
	if h := e.health.reports(); len(h) > 0 {
		t.Errorf("a full pool was held against the server: %v", h)
	}
	if n := b.leases.Count(); n != 0 {
		t.Errorf("refused session holds %d leases", n)
	}

	// The first session goes on; once its search ends, the second gets a lease.
	cookie := cookieA
	for from := size; from < total; from += size {
		cookie = pageOnce(t, a, "ou=a,dc=example,dc=com", size, from, total, cookie)
	}
	e.untilStats(t, waitLong, "first lease ends", func(st backend.PoolStats) bool { return st.Leased == 0 })
	pageOnce(t, b, "ou=b,dc=example,dc=com", size, 0, total, "")
}

// A paged search past the cap gets the lease another session's search
// ends while it waits.
func TestLeaseCapWaitsForALeaseToEnd(t *testing.T) {
	const total, size = 6, 2
	e := newEnv(t, total, Config{ConnectTimeout: 10 * time.Second}, backend.PoolConfig{Leases: 1})
	a, b := e.session(t), e.session(t)
	cookie := pageOnce(t, a, "ou=a,dc=example,dc=com", size, 0, total, "")
	waiting := startPage(b, "ou=b,dc=example,dc=com", size, "")
	e.untilStats(t, waitLong, "nothing more leased while b waits", func(st backend.PoolStats) bool { return st.Leased == 1 })
	for from := size; from < total; from += size {
		cookie = pageOnce(t, a, "ou=a,dc=example,dc=com", size, from, total, cookie)
	}
	checkPage(t, waiting, "ou=b,dc=example,dc=com", size, 0, total)
	if st := e.pool.Stats(); st.LeasesRefused != 0 {
		t.Errorf("stats %+v: a lease was refused", st)
	}
}

// A session that stops paging loses its lease after the idle limit; its
// cookie is refused afterwards.
func TestLeaseIdleLimit(t *testing.T) {
	const total, size = 10, 2
	base := "ou=people,dc=example,dc=com"
	e := newEnv(t, total, Config{LeaseIdle: 100 * time.Millisecond}, backend.PoolConfig{})
	s := e.session(t)
	cookie := pageOnce(t, s, base, size, 0, total, "")
	cookie = pageOnce(t, s, base, size, size, total, cookie) // a continued cursor, not only a first page
	if st := e.pool.Stats(); st.Leased != 1 {
		t.Fatalf("%d leased mid-search, want 1", st.Leased)
	}
	start := time.Now()
	e.untilStats(t, waitLong, "idle lease ends", func(st backend.PoolStats) bool { return st.Leased == 0 })
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("lease ended after %s, before the idle limit", waited)
	}
	e.ds.until(t, waitLong, "leased connection closed", func(ds *fakeDS) bool { return ds.openConnsLocked() == 0 })
	if n := s.leases.Count(); n != 0 {
		t.Errorf("session still holds %d leases", n)
	}

	o := s.start(func(id int32) []byte { return pagedSearch(id, base, size, cookie) })
	res, _, _ := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone)
	if res.Code != ldapwire.UnwillingToPerform {
		t.Errorf("page after the idle limit: result %d %q, want unwillingToPerform (53)", res.Code, res.Diagnostic)
	}
}

// Pages fetched within the idle limit keep the lease however long the
// whole search takes.
func TestLeaseIdleLimitRestartsWithEachPage(t *testing.T) {
	const total, size = 8, 2
	base := "ou=people,dc=example,dc=com"
	e := newEnv(t, total, Config{LeaseIdle: 150 * time.Millisecond}, backend.PoolConfig{})
	s := e.session(t)
	cookie := ""
	for from := 0; from < total; from += size {
		if from > 0 {
			time.Sleep(60 * time.Millisecond) // each pause within the limit, all of them past it
		}
		cookie = pageOnce(t, s, base, size, from, total, cookie)
	}
	e.untilStats(t, waitLong, "lease ends after the last page", func(st backend.PoolStats) bool { return st.Leased == 0 })
}

// When the client leaves, its leases end, even with a search running; the
// end of a long-lived search that was running is not held against its
// server.
func TestLeasesCloseEndsRunningSearch(t *testing.T) {
	e := newEnv(t, 1, Config{}, backend.PoolConfig{})
	s := e.session(t)
	sync := ldapwire.AppendControl(nil, ldapwire.OIDSyncRequest, true, syncValue(ldapwire.SyncRefreshAndPersist))
	o := s.start(func(id int32) []byte { return searchRequest(id, "dc=example,dc=com", ldapwire.ScopeSub, sync) })
	o.untilResponses(1, waitLong) // the refresh phase's entry: the search runs
	s.leases.Close()
	res, _, entries := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone)
	if res.Code != ldapwire.Unavailable || len(entries) != 1 {
		t.Errorf("result %d %q after %d entries, want unavailable (52) after 1", res.Code, res.Diagnostic, len(entries))
	}
	if n := s.leases.Count(); n != 0 {
		t.Errorf("closed session holds %d leases", n)
	}
	e.untilStats(t, waitLong, "lease ends", func(st backend.PoolStats) bool { return st.Leased == 0 })
	e.ds.until(t, waitLong, "leased connection closed", func(ds *fakeDS) bool { return ds.openConnsLocked() == 0 })
	if h := e.health.reports(); len(h) > 0 {
		t.Errorf("a client leaving was held against the server: %v", h)
	}
}

// A cookie goes back to the server that issued it, even when the router
// now prefers another one; a new search goes where the router says.
func TestPagingCursorPinnedToItsServer(t *testing.T) {
	const total, size = 6, 2
	people, other := "ou=people,dc=example,dc=com", "ou=other,dc=example,dc=com"
	e := newEnvN(t, 2, total, Config{}, backend.PoolConfig{})
	e.dss[1].locked(func(ds *fakeDS) { ds.cookies = "ds2-" }) // no cookie value in common with ds1
	s := e.session(t)
	cookie := pageOnce(t, s, people, size, 0, total, "")
	e.reg.SetHealth(0, backend.Health{State: backend.Unavailable, Score: 1, Reason: "test"})

	cookieOther := pageOnce(t, s, other, size, 0, total, "")
	for from := size; from < total; from += size {
		cookie = pageOnce(t, s, people, size, from, total, cookie)
		cookieOther = pageOnce(t, s, other, size, from, total, cookieOther)
	}
	for i, ds := range e.dss {
		ds.locked(func(ds *fakeDS) {
			for _, c := range ds.conns {
				if !sameStrings(c.issued, c.received) {
					t.Errorf("ds%d conn %d issued cookies %v, got back %v", i+1, c.id, c.issued, c.received)
				}
				for base := range c.bases {
					if want := map[int]string{0: people, 1: other}[i]; base != want {
						t.Errorf("ds%d served pages of %s", i+1, base)
					}
				}
			}
		})
	}
	for i, pool := range e.pools {
		untilPoolStats(t, pool, e.dss[i].addr(), waitLong, "leases end", func(st backend.PoolStats) bool { return st.Leased == 0 })
	}
}

// Two servers giving one session the same cookie value for two searches
// running at once: the cookie cannot say which search it continues, so it
// is refused rather than sent to a connection that may not have issued it.
func TestPagingCookieClashBetweenServers(t *testing.T) {
	const total, size = 6, 2
	people, other := "ou=people,dc=example,dc=com", "ou=other,dc=example,dc=com"
	e := newEnvN(t, 2, total, Config{}, backend.PoolConfig{})
	s := e.session(t)
	cookie := pageOnce(t, s, people, size, 0, total, "")
	e.reg.SetHealth(0, backend.Health{State: backend.Unavailable, Score: 1, Reason: "test"})
	cookieOther := pageOnce(t, s, other, size, 0, total, "")
	if cookie != cookieOther {
		t.Fatalf("the servers issued %q and %q: no clash to test", cookie, cookieOther)
	}
	for _, base := range []string{people, other} {
		o := s.start(func(id int32) []byte { return pagedSearch(id, base, size, cookie) })
		res, _, _ := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone)
		if res.Code != ldapwire.UnwillingToPerform || !strings.Contains(string(res.Diagnostic), "ambiguous") {
			t.Errorf("%s: cookie issued by both servers: result %d %q, want unwillingToPerform (53), ambiguous", base, res.Code, res.Diagnostic)
		}
	}
	for i, ds := range e.dss {
		ds.locked(func(ds *fakeDS) {
			for _, c := range ds.conns {
				if len(c.received) > 0 {
					t.Errorf("ds%d conn %d got cookies %v", i+1, c.id, c.received)
				}
			}
		})
	}
	// Neither lease keeps a cursor the client can reach: both end, the
	// second at once, the first after the idle limit at the latest.
	untilPoolStats(t, e.pools[1], "ds2", waitLong, "lease without a cursor ends", func(st backend.PoolStats) bool { return st.Leased == 0 })

	// Searches started afresh work, on the server the router chooses.
	cookie = ""
	for from := 0; from < total; from += size {
		cookie = pageOnce(t, s, other, size, from, total, cookie)
	}
	untilPoolStats(t, e.pools[1], "ds2", waitLong, "lease ends", func(st backend.PoolStats) bool { return st.Leased == 0 })
}

// TestResponseCursor: a final response says which cursor it leaves open,
// that the state ended, or (carrying neither control, as a busy answer
// does) nothing, in which case the cursor continued is kept.
func TestResponseCursor(t *testing.T) {
	vlvResponse := func(ctx string) []byte {
		v := ldapwire.AppendInteger(nil, 0x02, 3)
		v = ldapwire.AppendInteger(v, 0x02, 40)
		v = ldapwire.AppendInteger(v, 0x0a, 0)
		if ctx != "" {
			v = ldapwire.AppendElement(v, 0x04, []byte(ctx))
		}
		return ldapwire.AppendElement(nil, 0x30, v)
	}
	for _, tc := range []struct {
		name string
		ctrl [][]byte
		key  string
		said bool
	}{
		{"no controls", nil, "", false},
		{"another control only", [][]byte{ldapwire.AppendControl(nil, "1.2.3.4", false, nil)}, "", false},
		{"paged, cookie", [][]byte{ldapwire.AppendControl(nil, ldapwire.OIDPagedResults, false, ldapwire.AppendPagedValue(nil, 0, "7"))}, pagedKey + "7", true},
		{"paged, empty cookie", [][]byte{ldapwire.AppendControl(nil, ldapwire.OIDPagedResults, false, ldapwire.AppendPagedValue(nil, 0, ""))}, "", true},
		{"vlv, context", [][]byte{ldapwire.AppendControl(nil, ldapwire.OIDVLVResponse, false, vlvResponse("c1"))}, vlvKey + "c1", true},
		{"vlv, no context", [][]byte{ldapwire.AppendControl(nil, ldapwire.OIDVLVResponse, false, vlvResponse(""))}, "", true},
	} {
		msg, err := ldapwire.Parse(ldapwire.AppendResultControls(nil, 1, ldapwire.OpSearchResultDone, ldapwire.Busy, "", ldapwire.AppendControls(tc.ctrl...)))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if key, said := responseCursor(msg); key != tc.key || said != tc.said {
			t.Errorf("%s: responseCursor = %q, %v; want %q, %v", tc.name, key, said, tc.key, tc.said)
		}
	}
}
