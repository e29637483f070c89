package frontend

import (
	"slices"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/proxy"
)

const (
	aliceDN = "uid=alice,ou=people,dc=example,dc=com"
	bobDN   = "uid=bob,ou=people,dc=example,dc=com"
)

// bindRequestOf matches the request binding as dn.
func bindRequestOf(dn string) func(fakeEvent) bool {
	return func(e fakeEvent) bool { return !e.response && e.tag == ldapwire.OpBindRequest && e.dn == dn }
}

// bindResponseOf matches the response to a bind as dn.
func bindResponseOf(dn string) func(fakeEvent) bool {
	return func(e fakeEvent) bool { return e.response && e.dn == dn }
}

// searchOf matches a search of base.
func searchOf(base string) func(fakeEvent) bool {
	return func(e fakeEvent) bool { return !e.response && e.tag == ldapwire.OpSearchRequest && e.dn == base }
}

// checkAfterBind checks that the search of base reached the server after
// the response to the bind as dn, carrying the control authzID, or
// anonymously when authzID is "".
func checkAfterBind(t *testing.T, ds *fakeDS, dn, base, authzID string) {
	t.Helper()
	ds.mu.Lock()
	resp, search := ds.findLocked(bindResponseOf(dn)), ds.findLocked(searchOf(base))
	var e fakeEvent
	if search >= 0 {
		e = ds.log[search]
	}
	ds.mu.Unlock()
	switch {
	case resp < 0 || search < 0:
		t.Fatalf("bind response (%d) or search (%d) missing; log:\n%s", resp, search, ds.dump())
	case search < resp:
		t.Errorf("the search of %q reached the server before the response to the bind as %q; log:\n%s", base, dn, ds.dump())
	}
	if authzID == "" && !e.anonymous() || authzID != "" && (!e.proxied || e.authzID != authzID) {
		t.Errorf("the search of %q was %s, want it run as %q", base, e, authzID)
	}
}

// Requests pipelined behind a bind run with the identity the bind
// produced: the new one when it succeeds, anonymous when it fails (never
// the one before it), and "Who am I?" behind the bind names it too.
func TestPipelinedRequestsWaitForTheBind(t *testing.T) {
	e := newEnv(t, proxy.Config{}, Limits{}, 0)
	e.ds.addUser(aliceDN, "alice-pw")
	e.ds.addUser(bobDN, "bob-pw")
	c := e.dial(t)

	// the operation connection is open: a search behind the bind could be
	// written at once
	c.send(searchRequest(1, "ou=warm-up"))
	c.readDone(1, ldapwire.OpSearchResultDone)

	release := e.ds.hold(aliceDN)
	c.send(ldapwire.AppendSimpleBind(nil, 2, aliceDN, "alice-pw"), searchRequest(3, "ou=after-alice"), ldapwire.AppendWhoAmI(nil, 4))
	e.ds.until(t, 5*time.Second, "alice's bind received", func() bool { return e.ds.findLocked(bindRequestOf(aliceDN)) >= 0 })
	release()
	if res, _, _ := c.readDone(2, ldapwire.OpBindResponse); res.Code != ldapwire.Success {
		t.Fatalf("alice's bind: result %d %s", res.Code, res.Diagnostic)
	}
	if res, _, entries := c.readDone(3, ldapwire.OpSearchResultDone); res.Code != ldapwire.Success || len(entries) != 1 {
		t.Fatalf("search behind alice's bind: result %d %s, %d entries", res.Code, res.Diagnostic, len(entries))
	}
	if who := c.whoAmI(4); who != "dn:"+aliceDN {
		t.Errorf("Who am I? behind alice's bind: %q, want %q", who, "dn:"+aliceDN)
	}
	checkAfterBind(t, e.ds, aliceDN, "ou=after-alice", "dn:"+aliceDN)

	// bound as alice, a failing bind as bob leaves the client anonymous
	release = e.ds.hold(bobDN)
	c.send(ldapwire.AppendSimpleBind(nil, 5, bobDN, "wrong"), searchRequest(6, "ou=after-bob"), ldapwire.AppendWhoAmI(nil, 7))
	e.ds.until(t, 5*time.Second, "bob's bind received", func() bool { return e.ds.findLocked(bindRequestOf(bobDN)) >= 0 })
	release()
	if res, _, _ := c.readDone(5, ldapwire.OpBindResponse); res.Code != ldapwire.InvalidCredentials {
		t.Fatalf("bob's bind with a wrong password: result %d %s, want %d", res.Code, res.Diagnostic, ldapwire.InvalidCredentials)
	}
	if res, _, _ := c.readDone(6, ldapwire.OpSearchResultDone); res.Code != ldapwire.Success {
		t.Fatalf("search behind bob's failed bind: result %d %s", res.Code, res.Diagnostic)
	}
	if who := c.whoAmI(7); who != "" {
		t.Errorf("Who am I? behind a failed bind: %q, want anonymous", who)
	}
	checkAfterBind(t, e.ds, bobDN, "ou=after-bob", "")
}

// A bind whose result comes after BindWait ran out and the client sent
// another bind is stale: it neither sets the client's identity nor lets
// the requests behind the newer bind run before that one ends.
func TestLateBindResultIgnored(t *testing.T) {
	const wait = 300 * time.Millisecond
	e := newEnv(t, proxy.Config{OperationTimeout: time.Minute, BindTimeout: time.Minute}, Limits{BindWait: wait}, 2)
	e.ds.addUser(aliceDN, "alice-pw")
	e.ds.addUser(bobDN, "bob-pw")
	releaseAlice, releaseBob := e.ds.hold(aliceDN), e.ds.hold(bobDN)
	c := e.dial(t)
	c.send(ldapwire.AppendSimpleBind(nil, 1, aliceDN, "alice-pw"), ldapwire.AppendSimpleBind(nil, 2, bobDN, "bob-pw"),
		searchRequest(3, "ou=behind-bob"), ldapwire.AppendWhoAmI(nil, 4))
	e.ds.until(t, 5*time.Second, "bob's bind received", func() bool { return e.ds.findLocked(bindRequestOf(bobDN)) >= 0 })
	releaseAlice() // while bob's bind is in progress
	if res, _, _ := c.readDone(1, ldapwire.OpBindResponse); res.Code != ldapwire.Success {
		t.Fatalf("alice's bind: result %d %s", res.Code, res.Diagnostic)
	}
	if res, _, _ := c.readDone(3, ldapwire.OpSearchResultDone); res.Code != ldapwire.Success {
		t.Fatalf("search behind bob's bind: result %d %s", res.Code, res.Diagnostic)
	}
	if who := c.whoAmI(4); who != "" {
		t.Errorf("Who am I? while bob's bind is in progress: %q, want anonymous", who)
	}
	if ev := e.ds.event(t, searchOf("ou=behind-bob")); !ev.anonymous() {
		t.Errorf("the search sent while bob's bind was in progress was %s, want it anonymous", ev)
	}
	releaseBob()
	if res, _, _ := c.readDone(2, ldapwire.OpBindResponse); res.Code != ldapwire.Success {
		t.Fatalf("bob's bind: result %d %s", res.Code, res.Diagnostic)
	}
	c.send(ldapwire.AppendWhoAmI(nil, 5))
	if who := c.whoAmI(5); who != "dn:"+bobDN {
		t.Errorf("Who am I? after bob's bind: %q, want %q", who, "dn:"+bobDN)
	}
}

// Likewise an anonymous bind, which ldapmux answers itself, supersedes a
// bind still in progress: the client stays anonymous when that one ends.
func TestLateBindResultAfterAnonymousBind(t *testing.T) {
	e := newEnv(t, proxy.Config{OperationTimeout: time.Minute, BindTimeout: time.Minute}, Limits{BindWait: 200 * time.Millisecond}, 0)
	e.ds.addUser(aliceDN, "alice-pw")
	releaseAlice := e.ds.hold(aliceDN)
	c := e.dial(t)
	c.send(ldapwire.AppendSimpleBind(nil, 1, aliceDN, "alice-pw"), ldapwire.AppendSimpleBind(nil, 2, "", ""))
	if res, _, _ := c.readDone(2, ldapwire.OpBindResponse); res.Code != ldapwire.Success {
		t.Fatalf("anonymous bind: result %d %s", res.Code, res.Diagnostic)
	}
	releaseAlice()
	if res, _, _ := c.readDone(1, ldapwire.OpBindResponse); res.Code != ldapwire.Success {
		t.Fatalf("alice's bind: result %d %s", res.Code, res.Diagnostic)
	}
	c.send(ldapwire.AppendWhoAmI(nil, 3), searchRequest(4, "ou=after-anonymous-bind"))
	if who := c.whoAmI(3); who != "" {
		t.Errorf("Who am I? after an anonymous bind: %q, want anonymous", who)
	}
	c.readDone(4, ldapwire.OpSearchResultDone)
	if ev := e.ds.event(t, searchOf("ou=after-anonymous-bind")); !ev.anonymous() {
		t.Errorf("the search after an anonymous bind was %s, want it anonymous", ev)
	}
}

// A bind that never ends holds the requests behind it only for BindWait;
// they then run anonymously, not as whoever the client was before.
func TestBindWaitIsBounded(t *testing.T) {
	const wait = 200 * time.Millisecond
	// the proxy's own bind timeout is far longer: only BindWait can end the wait
	e := newEnv(t, proxy.Config{OperationTimeout: time.Minute, BindTimeout: time.Minute}, Limits{BindWait: wait}, 0)
	e.ds.addUser(aliceDN, "alice-pw")
	e.ds.addUser(bobDN, "bob-pw")
	c := e.dial(t)
	if code := c.bind(1, bobDN, "bob-pw"); code != ldapwire.Success {
		t.Fatalf("bob's bind: result %d", code)
	}
	e.ds.hold(aliceDN) // never answered

	start := time.Now()
	c.send(ldapwire.AppendSimpleBind(nil, 2, aliceDN, "alice-pw"), searchRequest(3, "ou=behind-hung-bind"), ldapwire.AppendWhoAmI(nil, 4))
	if res, _, _ := c.readDone(3, ldapwire.OpSearchResultDone); res.Code != ldapwire.Success {
		t.Fatalf("search behind a hung bind: result %d %s", res.Code, res.Diagnostic)
	}
	if elapsed := time.Since(start); elapsed < wait {
		t.Errorf("the search behind the bind was answered after %s, before BindWait (%s) ran out", elapsed, wait)
	}
	if who := c.whoAmI(4); who != "" {
		t.Errorf("Who am I? behind a hung bind: %q, want anonymous", who)
	}
	if ev := e.ds.event(t, searchOf("ou=behind-hung-bind")); !ev.anonymous() {
		t.Errorf("the search behind a hung bind was %s, want it anonymous", ev)
	}
}

// A bind the server never answers is ended by the proxy's bind timeout,
// long before BindWait; the requests behind it then run anonymously.
func TestHungBindEndedByBindTimeout(t *testing.T) {
	e := newEnv(t, proxy.Config{BindTimeout: 300 * time.Millisecond}, Limits{}, 0) // BindWait: 1 minute
	e.ds.addUser(aliceDN, "alice-pw")
	e.ds.hold(aliceDN) // never answered
	c := e.dial(t)
	c.send(ldapwire.AppendSimpleBind(nil, 1, aliceDN, "alice-pw"), searchRequest(2, "ou=behind-timed-out-bind"), ldapwire.AppendWhoAmI(nil, 3))
	if res, _, _ := c.readDone(1, ldapwire.OpBindResponse); res.Code == ldapwire.Success {
		t.Fatalf("a bind the server never answered succeeded")
	}
	if res, _, _ := c.readDone(2, ldapwire.OpSearchResultDone); res.Code != ldapwire.Success {
		t.Fatalf("search behind a timed-out bind: result %d %s", res.Code, res.Diagnostic)
	}
	if who := c.whoAmI(3); who != "" {
		t.Errorf("Who am I? behind a timed-out bind: %q, want anonymous", who)
	}
	if ev := e.ds.event(t, searchOf("ou=behind-timed-out-bind")); !ev.anonymous() {
		t.Errorf("the search behind a timed-out bind was %s, want it anonymous", ev)
	}
}

// "Who am I?" is answered by ldapmux from the identity it tracks: a client
// that never bound is anonymous, and no server is asked.
func TestWhoAmIAnonymousAnsweredLocally(t *testing.T) {
	e := newEnv(t, proxy.Config{}, Limits{}, 0)
	c := e.dial(t)
	c.send(ldapwire.AppendWhoAmI(nil, 1))
	if who := c.whoAmI(1); who != "" {
		t.Errorf("Who am I? without a bind: %q, want anonymous", who)
	}
	for _, ev := range e.ds.events() {
		if ev.tag == ldapwire.OpExtendedRequest {
			t.Errorf("Who am I? was forwarded: %s", ev)
		}
	}
}

// startPaging reads two pages of a paged search and returns the server
// connection they came on, which must be leased.
func startPaging(t *testing.T, e *env, c *client) int {
	t.Helper()
	c.send(pagedSearch(1, "ou=paged", ""))
	res, msg, entries := c.readDone(1, ldapwire.OpSearchResultDone)
	if res.Code != ldapwire.Success || len(entries) != 1 {
		t.Fatalf("first page: result %d %s, %d entries", res.Code, res.Diagnostic, len(entries))
	}
	cookie := pagedCookie(t, msg)
	if cookie == "" {
		t.Fatal("first page: no cookie")
	}
	c.send(pagedSearch(2, "ou=paged", cookie))
	if res, msg, _ := c.readDone(2, ldapwire.OpSearchResultDone); res.Code != ldapwire.Success || pagedCookie(t, msg) == "" {
		t.Fatalf("second page: result %d %s, cookie %q", res.Code, res.Diagnostic, pagedCookie(t, msg))
	}
	e.untilLeased(t, 1, "paging")
	var conns []int
	for _, ev := range e.ds.events() {
		if ev.paged {
			conns = append(conns, ev.conn)
		}
	}
	if len(conns) != 2 || conns[0] != conns[1] {
		t.Fatalf("the pages came on server connections %v, want both on one", conns)
	}
	return conns[0]
}

// untilConnClosed waits for the server to see connection id close.
func untilConnClosed(t *testing.T, ds *fakeDS, id int) {
	t.Helper()
	ds.until(t, 5*time.Second, "leased connection closed", func() bool { return ds.isClosedLocked(id) })
}

// The connection leased to a client for its paged search lives as long as
// the client's identity and connection do: a new bind, leaving and
// unbinding each end it.
func TestLeaseFollowsSession(t *testing.T) {
	t.Run("bind", func(t *testing.T) {
		e := newEnv(t, proxy.Config{}, Limits{}, 0)
		e.ds.addUser(aliceDN, "alice-pw")
		c := e.dial(t)
		leased := startPaging(t, e, c)
		if code := c.bind(3, aliceDN, "alice-pw"); code != ldapwire.Success {
			t.Fatalf("bind: result %d", code)
		}
		e.untilLeased(t, 0, "after a new bind")
		untilConnClosed(t, e.ds, leased)
		// the cookie belonged to the identity before the bind
		c.send(pagedSearch(4, "ou=paged", "2"))
		if res, _, _ := c.readDone(4, ldapwire.OpSearchResultDone); res.Code != ldapwire.UnwillingToPerform {
			t.Errorf("cookie from before the bind: result %d %s, want %d", res.Code, res.Diagnostic, ldapwire.UnwillingToPerform)
		}
	})
	t.Run("disconnect", func(t *testing.T) {
		e := newEnv(t, proxy.Config{}, Limits{}, 0)
		c := e.dial(t)
		leased := startPaging(t, e, c)
		c.nc.Close()
		e.untilLeased(t, 0, "after the client left")
		untilConnClosed(t, e.ds, leased)
	})
	t.Run("unbind", func(t *testing.T) {
		e := newEnv(t, proxy.Config{}, Limits{}, 0)
		c := e.dial(t)
		leased := startPaging(t, e, c)
		c.send(ldapwire.AppendUnbind(nil, 3))
		e.untilLeased(t, 0, "after an unbind")
		untilConnClosed(t, e.ds, leased)
	})
}

// The root DSE a client reads through ldapmux does not advertise what
// ldapmux refuses: the Start Transaction extended operation and the proxied
// authorization control.
func TestRootDSEFiltered(t *testing.T) {
	e := newEnv(t, proxy.Config{}, Limits{}, 0)
	c := e.dial(t)
	c.send(rootDSESearch(1))
	res, _, entries := c.readDone(1, ldapwire.OpSearchResultDone)
	if res.Code != ldapwire.Success || len(entries) != 1 {
		t.Fatalf("root DSE: result %d %s, %d entries", res.Code, res.Diagnostic, len(entries))
	}
	attrs := map[string][]string{}
	if err := ldapwire.EntryValues(entries[0], func(a, v []byte) { attrs[string(a)] = append(attrs[string(a)], string(v)) }); err != nil {
		t.Fatal(err)
	}
	if got, want := attrs["supportedExtension"], []string{ldapwire.OIDWhoAmI, ldapwire.OIDPasswordModify}; !slices.Equal(got, want) {
		t.Errorf("supportedExtension %q, want %q", got, want)
	}
	if got, want := attrs["supportedControl"], []string{ldapwire.OIDPagedResults}; !slices.Equal(got, want) {
		t.Errorf("supportedControl %q, want %q", got, want)
	}
	if got := attrs["objectClass"]; !slices.Equal(got, []string{"top"}) {
		t.Errorf("objectClass %q, want top", got)
	}
}
