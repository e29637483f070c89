package proxy

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/route"
)

// Users the fake servers accept client binds of.
const (
	aliceDN      = "uid=alice,ou=people,dc=example,dc=com"
	bobDN        = "uid=bob,ou=people,dc=example,dc=com"
	userPassword = "pw"
	usersBase    = "ou=people,dc=example,dc=com"
)

// newClientBindEnv is newEnvN in front of servers whose root DSE does not
// list proxied authorization, detected (as the identity health check does)
// before the test starts: every server is used in client-bind mode.
func newClientBindEnv(t *testing.T, n, entries int) *testEnv {
	t.Helper()
	e := newEnvN(t, n, entries, Config{}, backend.PoolConfig{})
	for i, ds := range e.dss {
		ds.locked(func(ds *fakeDS) {
			ds.clientBind = true
			ds.users = map[string]string{aliceDN: userPassword, bobDN: userPassword}
		})
		caps, err := e.pools[i].Detect(context.Background())
		if err != nil || caps == nil || caps.Err != nil || caps.Mode != backend.ModeClientBind {
			t.Fatalf("server %d: capabilities %+v, %v; want client-bind mode", i, caps, err)
		}
	}
	return e
}

// bind does what the frontend does at a simple bind: it ends the
// session's leases but the one it is bound on (RetireForBind), forwards
// the bind and, once it succeeded, sends the session's next requests as dn
// (anonymously otherwise). It returns the bind's result code.
func (s *session) bind(dn, password string) int {
	s.t.Helper()
	s.leases.RetireForBind()
	s.ident, s.bindAs = nil, NewSimpleBindIdentity(dn)
	o := s.start(func(id int32) []byte { return ldapwire.AppendSimpleBind(nil, id, dn, password) })
	res, _, _ := done(s.t, o.wait(waitLong), ldapwire.OpBindResponse)
	if res.Code == ldapwire.Success {
		s.ident = s.bindAs
	}
	return res.Code
}

// mustBind binds the session as dn and fails unless it succeeded.
func (s *session) mustBind(dn, password string) {
	s.t.Helper()
	if code := s.bind(dn, password); code != ldapwire.Success {
		s.t.Fatalf("bind as %s: result %d", dn, code)
	}
}

// aliceSession is a session bound as alice in front of n new client-bind
// servers with entries each.
func aliceSession(t *testing.T, n, entries int) (*testEnv, *session) {
	t.Helper()
	e := newClientBindEnv(t, n, entries)
	s := e.session(t)
	s.mustBind(aliceDN, userPassword)
	return e, s
}

// checkNoBinds checks that c, a connection of ds, received no bind.
func checkNoBinds(t *testing.T, ds *fakeDS, c *fakeConn) {
	t.Helper()
	ds.locked(func(ds *fakeDS) {
		if len(c.binds) != 0 {
			t.Errorf("conn %d received binds %q, want none", c.id, c.binds)
		}
	})
}

// search searches base and returns the result code and entry count.
func (s *session) search(base string) (int, int, string) {
	s.t.Helper()
	o := s.start(func(id int32) []byte { return searchRequest(id, base, ldapwire.ScopeSub) })
	res, _, entries := done(s.t, o.wait(waitLong), ldapwire.OpSearchResultDone)
	return res.Code, len(entries), string(res.Diagnostic)
}

// mustSearch searches base and fails unless it succeeded with every entry.
func (s *session) mustSearch(base string, entries int) {
	s.t.Helper()
	code, n, diag := s.search(base)
	if code != ldapwire.Success || n != entries {
		s.t.Fatalf("search of %s: result %d (%s) with %d entries, want success with %d", base, code, diag, n, entries)
	}
}

// opsOf lists, under the fake server's lock, the connections that
// received a request for base, with those requests.
func opsOf(ds *fakeDS, base string) map[*fakeConn][]fakeOp {
	found := map[*fakeConn][]fakeOp{}
	for _, c := range ds.conns {
		for _, o := range c.ops {
			if o.base == base {
				found[c] = append(found[c], o)
			}
		}
	}
	return found
}

// onlyConn checks that every request for base went to one connection,
// bound as boundAs when it came and without a proxied authorization
// control, count of them; it returns that connection.
func onlyConn(t *testing.T, ds *fakeDS, base, boundAs string, count int) *fakeConn {
	t.Helper()
	var conn *fakeConn
	ds.locked(func(ds *fakeDS) {
		found := opsOf(ds, base)
		if len(found) != 1 {
			t.Fatalf("requests for %s went to %d connections, want one", base, len(found))
		}
		for c, ops := range found {
			conn = c
			if len(ops) != count {
				t.Errorf("conn %d got %d requests for %s, want %d", c.id, len(ops), base, count)
			}
			for _, o := range ops {
				if o.boundAs != boundAs || o.proxied {
					t.Errorf("conn %d: request for %s came bound as %q, proxied authorization %v (%q); want bound as %q without the control",
						c.id, base, o.boundAs, o.proxied, o.authzID, boundAs)
				}
			}
		}
	})
	return conn
}

// boundConn is the backend connection the session's bind was performed on.
func (s *session) boundConn() *backend.Conn {
	s.t.Helper()
	l, gone, _ := s.leases.binding()
	if l == nil {
		s.t.Fatalf("the session holds no bound connection (lost on %v)", gone)
	}
	return l.conn
}

// A client's simple bind is performed on a connection leased to it, and
// its following operations go on that connection, without a control.
func TestClientBindOperationsGoOnTheBoundConnection(t *testing.T) {
	const entries = 2
	e, s := aliceSession(t, 1, entries)
	if st := e.pool.Stats(); st.Leased != 1 {
		t.Fatalf("%d connections leased after the bind, want 1", st.Leased)
	}
	s.mustSearch(usersBase, entries)
	s.mustSearch(usersBase, entries)
	c := onlyConn(t, e.ds, usersBase, aliceDN, 2)
	e.ds.locked(func(ds *fakeDS) {
		if len(c.binds) != 1 || c.binds[0] != aliceDN {
			t.Errorf("conn %d received binds %q, want only alice's", c.id, c.binds)
		}
	})
	if st := e.pool.Stats(); st.Leased != 1 || st.OpenOps != 0 || st.OpenBinds != 0 {
		t.Errorf("stats %+v: want the one leased connection and neither pooled nor bind connections", st)
	}
}

// Two sessions bound as different users each use the connection bound as
// their own user, even when their searches interleave.
func TestClientBindSessionsKeepTheirIdentities(t *testing.T) {
	const entries = 3
	e := newClientBindEnv(t, 1, entries)
	alice, bob := e.session(t), e.session(t)
	alice.mustBind(aliceDN, userPassword)
	bob.mustBind(bobDN, userPassword)
	for range 3 {
		ops := []*op{
			alice.start(func(id int32) []byte { return searchRequest(id, "ou=alice", ldapwire.ScopeSub) }),
			bob.start(func(id int32) []byte { return searchRequest(id, "ou=bob", ldapwire.ScopeSub) }),
		}
		for _, o := range ops {
			if res, _, got := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone); res.Code != ldapwire.Success || len(got) != entries {
				t.Fatalf("search: result %d (%s), %d entries", res.Code, res.Diagnostic, len(got))
			}
		}
	}
	ca := onlyConn(t, e.ds, "ou=alice", aliceDN, 3)
	cb := onlyConn(t, e.ds, "ou=bob", bobDN, 3)
	if ca == cb {
		t.Fatal("both sessions' searches went to one connection")
	}
	if st := e.pool.Stats(); st.Leased != 2 {
		t.Errorf("%d connections leased, want one per bound session", st.Leased)
	}
	if alice.boundConn() == bob.boundConn() {
		t.Error("both sessions hold the same backend connection")
	}
}

// An anonymous session gets a leased connection that is not bound at all,
// kept for its next operations, and its requests carry no control.
func TestClientBindAnonymousSession(t *testing.T) {
	const entries = 1
	e := newClientBindEnv(t, 1, entries)
	s := e.session(t)
	s.mustSearch(usersBase, entries)
	s.mustSearch(usersBase, entries)
	c := onlyConn(t, e.ds, usersBase, "", 2)
	checkNoBinds(t, e.ds, c)
	if st := e.pool.Stats(); st.Leased != 1 || st.OpenOps != 0 {
		t.Errorf("stats %+v: want one leased connection and no pooled one", st)
	}
	if l, gone, _ := s.leases.binding(); l != nil || gone != nil {
		t.Errorf("an anonymous session has a bound connection (%v, lost on %v)", l, gone)
	}
}

// A failed bind of a session with no bound connection leaves it
// anonymous: the connection it was tried on is given back, and the next
// operation goes on a new, unbound connection.
func TestClientBindFailedBindLeavesTheSessionAnonymous(t *testing.T) {
	const entries = 1
	e := newClientBindEnv(t, 1, entries)
	s := e.session(t)
	if code := s.bind(bobDN, "wrong"); code != ldapwire.InvalidCredentials {
		t.Fatalf("bind with a wrong password: result %d, want %d", code, ldapwire.InvalidCredentials)
	}
	e.untilStats(t, waitLong, "no lease after the failed bind", func(st backend.PoolStats) bool { return st.Leased == 0 })
	if n := s.leases.Count(); n != 0 {
		t.Errorf("the session holds %d leases after a failed bind", n)
	}
	s.mustSearch("ou=after", entries)
	c := onlyConn(t, e.ds, "ou=after", "", 1)
	checkNoBinds(t, e.ds, c)
	e.ds.until(t, waitLong, "the connection of the failed bind closed", func(ds *fakeDS) bool {
		for _, c := range ds.conns {
			if len(c.binds) > 0 && c.binds[0] == bobDN && !c.closed {
				return false
			}
		}
		return true
	})
}

// A bound session's next bind goes on the connection it is bound on, and
// the session keeps that connection whatever the bind's result: the server
// decides what a failed bind leaves of the session (this one, as slapd,
// makes it anonymous; Samba keeps it as it was), exactly as on the
// client's own connection.
func TestClientBindRebindGoesOnTheBoundConnection(t *testing.T) {
	const entries = 1
	e, s := aliceSession(t, 1, entries)
	alice := s.boundConn()
	if code := s.bind(bobDN, "wrong"); code != ldapwire.InvalidCredentials {
		t.Fatalf("bind with a wrong password: result %d, want %d", code, ldapwire.InvalidCredentials)
	}
	if s.boundConn() != alice {
		t.Fatal("the session left the connection it was bound on after a failed bind")
	}
	s.mustSearch("ou=failed", entries)
	onlyConn(t, e.ds, "ou=failed", "", 1) // the server made it anonymous
	s.mustBind(bobDN, userPassword)
	if s.boundConn() != alice {
		t.Fatal("the session left the connection it was bound on after a new bind")
	}
	s.mustSearch(usersBase, entries)
	c := onlyConn(t, e.ds, usersBase, bobDN, 1)
	e.ds.locked(func(ds *fakeDS) {
		if want := []string{aliceDN, bobDN, bobDN}; strings.Join(c.binds, ";") != strings.Join(want, ";") {
			t.Errorf("conn %d received binds %q, want %q", c.id, c.binds, want)
		}
	})
	if st := e.pool.Stats(); st.Leased != 1 || st.OpenBinds != 0 {
		t.Errorf("stats %+v: want the one leased connection and no bind connection", st)
	}
}

// An anonymous session's bind goes on the unbound connection its
// operations used, which becomes the one it is bound on: one connection,
// as the client's own, and no dial for the bind.
func TestClientBindAnonymousSessionBindsOnItsConnection(t *testing.T) {
	const entries = 1
	e := newClientBindEnv(t, 1, entries)
	s := e.session(t)
	s.mustSearch("ou=anonymous", entries)
	anon := onlyConn(t, e.ds, "ou=anonymous", "", 1)
	if code := s.bind(aliceDN, "wrong"); code != ldapwire.InvalidCredentials {
		t.Fatalf("bind with a wrong password: result %d, want %d", code, ldapwire.InvalidCredentials)
	}
	s.mustSearch("ou=failed", entries)
	if c := onlyConn(t, e.ds, "ou=failed", "", 1); c != anon {
		t.Fatalf("after a failed bind the session's search went to conn %d, not its own conn %d", c.id, anon.id)
	}
	s.mustBind(aliceDN, userPassword)
	s.mustSearch(usersBase, entries)
	if c := onlyConn(t, e.ds, usersBase, aliceDN, 1); c != anon {
		t.Fatalf("the bound session's search went to conn %d, not its own conn %d", c.id, anon.id)
	}
	e.ds.locked(func(ds *fakeDS) {
		if want := []string{aliceDN, aliceDN}; strings.Join(anon.binds, ";") != strings.Join(want, ";") {
			t.Errorf("conn %d received binds %q, want %q", anon.id, anon.binds, want)
		}
	})
	if st := e.pool.Stats(); st.Leased != 1 || st.OpenBinds != 0 {
		t.Errorf("stats %+v: want the one leased connection and no bind connection", st)
	}
}

// A new bind goes on the bound connection while an operation still runs
// there, as on the client's own connection; the new identity's operations
// follow on it.
func TestClientBindRebindWhileAnOperationRuns(t *testing.T) {
	const entries = 1
	e, s := aliceSession(t, 1, entries)
	alice := s.boundConn()
	held := s.start(func(id int32) []byte { return searchRequest(id, heldBase, ldapwire.ScopeBase) })
	e.ds.until(t, waitLong, "the held search reached the server", func(ds *fakeDS) bool { return len(opsOf(ds, heldBase)) == 1 })
	s.mustBind(bobDN, userPassword)
	if alice.Err() != nil || !held.pending() {
		t.Fatalf("the bound connection was closed under its running search (%v)", alice.Err())
	}
	s.mustSearch(usersBase, entries)
	onlyConn(t, e.ds, usersBase, bobDN, 1)
	e.ds.openGate()
	if res, _, _ := done(t, held.wait(waitLong), ldapwire.OpSearchResultDone); res.Code != ldapwire.Success {
		t.Fatalf("the held search: result %d (%s)", res.Code, res.Diagnostic)
	}
	onlyConn(t, e.ds, heldBase, aliceDN, 1)
	if st := e.pool.Stats(); st.Leased != 1 {
		t.Errorf("%d connections leased, want the one the session is bound on", st.Leased)
	}
}

// A bind whose servers do not include the one the session is bound on
// (another route) ends that connection and goes to a new one.
func TestClientBindRebindElsewhereEndsTheBoundConnection(t *testing.T) {
	e, s := aliceSession(t, 1, 1)
	alice := s.boundConn()
	l := s.leases.rebindOn(func(*backend.Server) bool { return false })
	if l != nil {
		t.Fatal("a bind to another server was given the bound connection")
	}
	e.untilStats(t, waitLong, "the bound connection given back", func(st backend.PoolStats) bool { return st.Leased == 0 })
	select {
	case <-alice.Done():
	case <-time.After(waitLong):
		t.Fatal("the connection bound as alice is still open")
	}
	if l, gone, _ := s.leases.binding(); l != nil || gone != nil {
		t.Errorf("the session is still bound (%v, lost on %v)", l, gone)
	}
}

// Closing the session's leases ends every connection at once, the one
// with a search running too: the search ends.
func TestClientBindCloseEndsEverything(t *testing.T) {
	e, s := aliceSession(t, 1, 1)
	held := s.start(func(id int32) []byte { return searchRequest(id, heldBase, ldapwire.ScopeBase) })
	e.ds.until(t, waitLong, "the held search reached the server", func(ds *fakeDS) bool { return len(opsOf(ds, heldBase)) == 1 })
	anon := e.session(t)
	anon.mustSearch(usersBase, 1)
	if st := e.pool.Stats(); st.Leased != 2 {
		t.Fatalf("%d connections leased, want 2", st.Leased)
	}
	s.leases.Close()
	anon.leases.Close()
	if st := e.pool.Stats(); st.Leased != 0 {
		t.Errorf("%d connections still leased after the sessions closed", st.Leased)
	}
	held.wait(waitLong)
	e.ds.until(t, waitLong, "every client connection closed", func(ds *fakeDS) bool { return ds.openConnsLocked() == 0 })
}

// When the connection a client is bound on is lost, its operations fail
// with unavailable and a message asking it to bind again, instead of
// going on another connection as someone else; after a new bind they work
// again.
func TestClientBindLostConnectionAsksToBindAgain(t *testing.T) {
	const entries = 2
	e, s := aliceSession(t, 1, entries)
	s.mustSearch(usersBase, entries)
	alice := s.boundConn()
	c := onlyConn(t, e.ds, usersBase, aliceDN, 1)
	e.ds.drop(c.id)
	select {
	case <-alice.Done():
	case <-time.After(waitLong):
		t.Fatal("the proxy did not notice the lost connection")
	}
	for range 2 {
		code, n, diag := s.search("ou=lost")
		if code != ldapwire.Unavailable || n != 0 || !strings.Contains(diag, "bind again") {
			t.Fatalf("search after the loss: result %d (%q), %d entries; want %d asking to bind again", code, diag, n, ldapwire.Unavailable)
		}
	}
	e.ds.locked(func(ds *fakeDS) {
		if found := opsOf(ds, "ou=lost"); len(found) != 0 {
			t.Errorf("searches of a client whose connection was lost reached the server on %d connections", len(found))
		}
	})
	s.mustBind(aliceDN, userPassword)
	s.mustSearch("ou=again", entries)
	again := onlyConn(t, e.ds, "ou=again", aliceDN, 1)
	if again == c {
		t.Fatal("the search after the new bind went to the lost connection")
	}
	e.untilStats(t, waitLong, "one connection leased", func(st backend.PoolStats) bool { return st.Leased == 1 })
}

// A bound client's operations stay on the server its bind was performed
// on, even when the router would now choose another server: there it
// would run anonymously. An anonymous client goes where the router says.
func TestClientBindOperationsStayOnTheBoundServer(t *testing.T) {
	const entries = 1
	e, s := aliceSession(t, 2, entries)
	e.reg.SetHealth(0, backend.Health{State: backend.Unavailable, Score: 1, Reason: "test"})
	s.mustSearch(usersBase, entries)
	s.mustSearch(usersBase, entries)
	onlyConn(t, e.dss[0], usersBase, aliceDN, 2)
	e.dss[1].locked(func(ds *fakeDS) {
		if found := opsOf(ds, usersBase); len(found) != 0 {
			t.Errorf("the bound client's searches went to ds2 as well, on %d connections", len(found))
		}
	})
	anon := e.session(t)
	anon.mustSearch("ou=anonymous", entries)
	onlyConn(t, e.dss[1], "ou=anonymous", "", 1)
}

// saslBindRequest encodes a SASL bind with mechanism and credentials.
func saslBindRequest(id int32, mechanism, credentials string) []byte {
	creds := ldapwire.AppendElement(nil, 0x04, []byte(mechanism))
	creds = ldapwire.AppendElement(creds, 0x04, []byte(credentials))
	body := ldapwire.AppendInteger(nil, 0x02, 3)
	body = ldapwire.AppendElement(body, 0x04, nil)
	body = ldapwire.AppendElement(body, ldapwire.AuthSASL, creds)
	return ldapwire.AppendMessage(nil, id, ldapwire.AppendElement(nil, ldapwire.OpBindRequest, body), nil, nil)
}

// startSASL starts a SASL PLAIN bind of a new session on e's proxy; bound
// is set when the proxy tells the session of a new identity.
func startSASL(t *testing.T, e *testEnv, bound *atomic.Bool) (*op, *SASLExchange) {
	t.Helper()
	raw := saslBindRequest(1, "PLAIN", "\x00alice\x00pw")
	msg, err := ldapwire.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	x, leases := new(SASLExchange), new(Leases)
	t.Cleanup(x.Close)
	t.Cleanup(leases.Close)
	sink := newSink()
	req := &Request{Msg: msg, Raw: raw, Identity: Anonymous, Sink: sink, Leases: leases, ConnID: 1,
		SASL: x, SASLBound: func(*Identity) { bound.Store(true) },
		Route: route.Operation{Tag: msg.OpTag}}
	e.p.Start(req)
	return &op{t: t, req: req, sink: sink, id: 1}, x
}

// checkSASLOnOwnConnection checks that a SASL bind in client-bind mode,
// which the fake refuses, reached the server on an unbound connection of
// the session's own, kept for it, and set no identity.
func checkSASLOnOwnConnection(t *testing.T, e *testEnv, o *op, x *SASLExchange, bound *atomic.Bool) {
	t.Helper()
	res, _, _ := done(t, o.wait(waitLong), ldapwire.OpBindResponse)
	if res.Code != ldapwire.InvalidCredentials {
		t.Fatalf("SASL bind: result %d (%s), want the server's %d", res.Code, res.Diagnostic, ldapwire.InvalidCredentials)
	}
	if bound.Load() || x.Holding() {
		t.Errorf("a refused SASL bind set an identity (%v) or holds a negotiation (%v)", bound.Load(), x.Holding())
	}
	e.ds.locked(func(ds *fakeDS) {
		var got []string
		for _, c := range ds.conns {
			for _, b := range c.binds {
				if strings.HasPrefix(b, "sasl:") {
					got = append(got, b)
				}
			}
		}
		if len(got) != 1 || got[0] != "sasl:PLAIN" {
			t.Errorf("the server received SASL binds %q, want the client's one", got)
		}
	})
	if st := e.pool.Stats(); st.Leased != 1 {
		t.Errorf("%d connections leased after the SASL bind, want the session's own", st.Leased)
	}
}

// In client-bind mode a SASL bind goes on the client's own connection, as
// a simple bind does: the server answers it there, and the session keeps
// the connection.
func TestClientBindSASLGoesToTheServer(t *testing.T) {
	e := newClientBindEnv(t, 1, 1)
	var bound atomic.Bool
	o, x := startSASL(t, e, &bound)
	checkSASLOnOwnConnection(t, e, o, x, &bound)
}

// A SASL bind that the server accepts makes the client's own connection
// the one it is bound on: its next operations go there, as whoever the
// server authenticated; one that it refuses leaves the connection as the
// server does.
func TestClientBindSASLBindsTheOwnConnection(t *testing.T) {
	const entries = 1
	e := newClientBindEnv(t, 1, entries)
	e.ds.locked(func(ds *fakeDS) { ds.users["sasl:TEST-OK"] = "" })
	s := e.session(t)
	s.mustSearch("ou=anonymous", entries)
	own := onlyConn(t, e.ds, "ou=anonymous", "", 1)
	if code := s.saslBind("TEST-BAD"); code != ldapwire.InvalidCredentials {
		t.Fatalf("SASL bind with a mechanism the server refuses: result %d", code)
	}
	if code := s.saslBind("TEST-OK"); code != ldapwire.Success {
		t.Fatalf("SASL bind: result %d, want success", code)
	}
	s.mustSearch(usersBase, entries)
	if c := onlyConn(t, e.ds, usersBase, "sasl:TEST-OK", 1); c != own {
		t.Fatalf("the bound session's search went to conn %d, not its own conn %d", c.id, own.id)
	}
	e.ds.locked(func(ds *fakeDS) {
		if want := []string{"sasl:TEST-BAD", "sasl:TEST-OK"}; strings.Join(own.binds, ";") != strings.Join(want, ";") {
			t.Errorf("conn %d received binds %q, want %q", own.id, own.binds, want)
		}
	})
	if st := e.pool.Stats(); st.Leased != 1 || st.OpenBinds != 0 {
		t.Errorf("stats %+v: want the one leased connection and no bind connection", st)
	}
}

// saslBind does what the frontend does at a SASL bind (one round with no
// credentials): RetireForBind, then the bind; it returns the result code.
func (s *session) saslBind(mech string) int {
	s.t.Helper()
	s.leases.RetireForBind()
	x := new(SASLExchange)
	s.t.Cleanup(x.Close)
	o := s.startWith(func(id int32) []byte { return saslBindRequest(id, mech, "") }, func(req *Request) {
		req.SASL, req.SASLBound = x, func(*Identity) {}
	})
	res, _, _ := done(s.t, o.wait(waitLong), ldapwire.OpBindResponse)
	return res.Code
}

// that is not bound at all, without a control, as on its own connection.
func TestProxiedModeSendsTheIdentityControl(t *testing.T) {
	e := newEnv(t, 1, Config{}, backend.PoolConfig{})
	e.ds.locked(func(ds *fakeDS) { ds.users = map[string]string{aliceDN: userPassword} })
	anon := e.session(t)
	anon.mustSearch("ou=anonymous", 1)
	if e.srv.ClientBind() {
		t.Fatal("a server listing proxied authorization is used in client-bind mode")
	}
	alice := e.session(t)
	alice.mustBind(aliceDN, userPassword)
	alice.mustSearch("ou=alice", 1)
	named := e.session(t)
	named.ident = NewIdentity("alice@EXAMPLE.TEST")
	named.mustSearch("ou=named", 1)
	for base, want := range map[string]string{"ou=alice": "dn:" + aliceDN, "ou=named": "u:alice@EXAMPLE.TEST"} {
		e.ds.locked(func(ds *fakeDS) {
			found := opsOf(ds, base)
			if len(found) != 1 {
				t.Fatalf("requests for %s went to %d connections", base, len(found))
			}
			for c, ops := range found {
				if len(ops) != 1 || !ops[0].proxied || !ops[0].critical || ops[0].authzID != want || ops[0].boundAs != fakeBindDN {
					t.Errorf("conn %d: request for %s: %+v; want a critical control with %q on a connection bound as the service account",
						c.id, base, ops, want)
				}
			}
		})
	}
	e.ds.locked(func(ds *fakeDS) {
		found := opsOf(ds, "ou=anonymous")
		if len(found) != 1 {
			t.Fatalf("anonymous requests went to %d connections", len(found))
		}
		for c, ops := range found {
			if len(ops) != 1 || ops[0].proxied || ops[0].boundAs != "" || c.bound {
				t.Errorf("conn %d: anonymous request: %+v (bound %v); want no control on a connection never bound", c.id, ops, c.bound)
			}
		}
	})
	if st := e.pool.Stats(); st.OpenAnon != 1 || st.Opened[backend.AnonConn] != 1 {
		t.Errorf("pool stats: %d anonymous connections open, %d opened; want 1 and 1", st.OpenAnon, st.Opened[backend.AnonConn])
	}
	// A request larger than 255 KiB goes on a connection of its own, closed
	// once answered: a server that closes it for the request's size ends no
	// one else's operation. An anonymous client's is unbound and carries no
	// control, so that the server's limits for anonymous sessions apply as
	// on the client's own connection.
	large := strings.Repeat("x", largeRequest)
	o := anon.start(func(id int32) []byte { return compareRequestOf(id, "ou=large", large) })
	if res, _, _ := done(t, o.wait(waitLong), ldapwire.OpCompareResponse); res.Code != ldapwire.CompareTrue {
		t.Fatalf("large anonymous compare: result %d", res.Code)
	}
	e.ds.locked(func(ds *fakeDS) {
		found := opsOf(ds, "ou=large")
		if len(found) != 1 {
			t.Errorf("the large request went to %d connections", len(found))
		}
		for c, ops := range found {
			if len(ops) != 1 || ops[0].proxied || ops[0].boundAs != "" || c.bound || len(c.ops) != 1 {
				t.Errorf("conn %d: large anonymous request: %+v, %d operations in all; want one without a control on an unbound connection of its own", c.id, ops, len(c.ops))
			}
		}
	})
	waitFor(t, func() bool { return e.pool.Stats().Leased == 0 }, "the large request's connection closed")
	e.ds.locked(func(ds *fakeDS) {
		for _, c := range ds.conns {
			if c.boundAs == aliceDN && len(c.ops) > 0 {
				t.Errorf("conn %d, bound as alice, received operations %+v", c.id, c.ops)
			}
		}
	})
}

// A client's simple bind leaves its bind connection bound as the client:
// once the pool keeps it, the operations of the clients bound as that DN go
// there without a control, those of others do not, and an extended
// operation the server advertises still carries the control on a
// service-bound connection.
func TestBoundClientsUseTheConnectionTheirBindLeft(t *testing.T) {
	e := newEnv(t, 1, Config{}, backend.PoolConfig{BindConns: 2, MaxBound: 4})
	e.ds.locked(func(ds *fakeDS) { ds.users = map[string]string{aliceDN: userPassword, bobDN: userPassword} })
	alice, alice2, bob := e.session(t), e.session(t), e.session(t)
	alice.mustBind(aliceDN, userPassword)
	waitFor(t, func() bool { return e.pool.BoundConn(aliceDN) != nil }, "alice's bind connection not kept bound")
	bob.mustBind(bobDN, userPassword)
	waitFor(t, func() bool { return e.pool.BoundConn(bobDN) != nil }, "bob's bind connection not kept bound")
	alice2.mustBind(aliceDN, userPassword)
	alice.mustSearch("ou=alice", 1)
	alice2.mustSearch("ou=alice2", 1)
	bob.mustSearch("ou=bob", 1)
	for base, dn := range map[string]string{"ou=alice": aliceDN, "ou=alice2": aliceDN, "ou=bob": bobDN} {
		e.ds.locked(func(ds *fakeDS) {
			for c, ops := range opsOf(ds, base) {
				if len(ops) != 1 || ops[0].proxied || ops[0].boundAs != dn {
					t.Errorf("conn %d: request for %s: %+v; want no control, on a connection bound as %s", c.id, base, ops, dn)
				}
			}
		})
	}
	for _, oid := range []string{advertisedTestExtension, "1.3.6.1.4.1.99999.2"} {
		o := alice.start(func(id int32) []byte {
			return ldapwire.AppendMessage(nil, id, ldapwire.AppendElement(nil, ldapwire.OpExtendedRequest,
				ldapwire.AppendElement(nil, 0x80, []byte(oid))), nil, nil)
		})
		o.wait(waitLong)
	}
	// The advertised one goes with the control on a service-bound
	// connection; the other unbound, without it: the server answers it
	// unsupported whoever asks, and would refuse the control with it.
	e.ds.locked(func(ds *fakeDS) {
		var withControl, unbound int
		for _, c := range ds.conns {
			for _, op := range c.ops {
				switch {
				case op.tag != ldapwire.OpExtendedRequest:
				case op.proxied && op.boundAs == fakeBindDN:
					withControl++
				case !op.proxied && c.boundAs == "":
					unbound++
				default:
					t.Errorf("conn %d: extended request %+v", c.id, op)
				}
			}
		}
		if withControl != 1 || unbound != 1 {
			t.Errorf("extended requests: %d with the control on a service-bound connection, %d unbound; want 1 and 1", withControl, unbound)
		}
	})
	if st := e.pool.Stats(); st.OpenBound != 2 {
		t.Errorf("%d bound connections, want 2 (alice's and bob's)", st.OpenBound)
	}
}

// A bind whose answer carries a control (here the password policy's
// changeAfterReset, which the proxy asks for) opens a session that is the
// client's own: its operations go there without a control, so the
// server's restriction applies exactly as directly, and so does the end of
// it once the password is changed on that connection. The client, which
// did not ask for the policy control, does not get it; the connection is
// never kept for the user's other clients.
func TestRestrictedSessionIsTheClientsOwn(t *testing.T) {
	e := newEnv(t, 1, Config{}, backend.PoolConfig{MaxBound: 4})
	e.ds.locked(func(ds *fakeDS) {
		ds.users = map[string]string{aliceDN: userPassword}
		ds.mustChange = map[string]bool{aliceDN: true}
		ds.policy = true
	})
	alice := e.session(t)
	alice.bindAs = NewSimpleBindIdentity(aliceDN)
	o := alice.start(func(id int32) []byte { return ldapwire.AppendSimpleBind(nil, id, aliceDN, userPassword) })
	msgs := o.wait(waitLong)
	if res, _, _ := done(t, msgs, ldapwire.OpBindResponse); res.Code != ldapwire.Success {
		t.Fatalf("bind: result %d", res.Code)
	}
	if ctrls := msgs[len(msgs)-1].Controls; ctrls != nil {
		t.Errorf("the client got controls it did not ask for: % x", ctrls)
	}
	alice.ident = alice.bindAs
	if code, _, diag := alice.search("ou=alice"); code != ldapwire.InsufficientAccessRights {
		t.Fatalf("search in a restricted session: result %d (%s), want insufficientAccessRights", code, diag)
	}
	change := alice.start(func(id int32) []byte {
		body := ldapwire.AppendElement(nil, 0x80, []byte(ldapwire.OIDPasswordModify))
		return ldapwire.AppendMessage(nil, id, ldapwire.AppendElement(nil, ldapwire.OpExtendedRequest, body), nil, nil)
	})
	if res, _, _ := done(t, change.wait(waitLong), ldapwire.OpExtendedResponse); res.Code != ldapwire.Success {
		t.Fatalf("password change: result %d (%s)", res.Code, res.Diagnostic)
	}
	alice.mustSearch("ou=alice", 1)
	e.ds.locked(func(ds *fakeDS) {
		for c, ops := range opsOf(ds, "ou=alice") {
			for _, op := range ops {
				if op.proxied || op.boundAs != aliceDN {
					t.Errorf("conn %d: %+v; want alice's operations on her own connection, without a control", c.id, op)
				}
			}
		}
	})
	if st := e.pool.Stats(); st.OpenBound != 0 || st.Leased != 1 {
		t.Errorf("pool %+v: want alice's connection leased to her, none kept bound", st)
	}
}

// The proxy asks for the password policy control on the binds it checks
// only of a server that lists the control in its root DSE: one without a
// password policy has nothing to report, and a bind carrying a control the
// server does not know costs it more. A client that asks itself always
// gets its control through.
func TestPolicyControlOnlyWhereTheServerHasOne(t *testing.T) {
	for _, policy := range []bool{false, true} {
		e := newEnv(t, 1, Config{}, backend.PoolConfig{MaxBound: 4})
		e.ds.locked(func(ds *fakeDS) {
			ds.users = map[string]string{aliceDN: userPassword}
			ds.policy = policy
		})
		for _, asks := range []bool{false, true} {
			alice := e.session(t)
			o := alice.start(aliceBind(asks))
			if res, _, _ := done(t, o.wait(waitLong), ldapwire.OpBindResponse); res.Code != ldapwire.Success {
				t.Fatalf("policy %v, asking %v: bind: result %d", policy, asks, res.Code)
			}
		}
		want := 1 // the client's own request
		if policy {
			want = 2
		}
		e.ds.locked(func(ds *fakeDS) {
			if ds.policyAsked != want {
				t.Errorf("server lists the control: %v: %d binds carried it, want %d", policy, ds.policyAsked, want)
			}
		})
	}
}

// aliceBind encodes alice's simple bind, asking for the password policy
// control when asks.
func aliceBind(asks bool) func(id int32) []byte {
	return func(id int32) []byte {
		var ctrls []byte
		if asks {
			ctrls = ldapwire.AppendControls(ldapwire.AppendControl(nil, ldapwire.OIDPasswordPolicy, false, nil))
		}
		bind, _ := ldapwire.Parse(ldapwire.AppendSimpleBind(nil, id, aliceDN, userPassword))
		return ldapwire.AppendMessage(nil, id, bind.Op, ctrls, nil)
	}
}

// A bind whose answer only warns that the password expires soon restricts
// nothing: the client's operations carry the control on the service
// account's connections as before (no lease, no bound connection), and the
// client sees the warning only when it asked for it.
func TestExpiringPasswordIsNotPinned(t *testing.T) {
	e := newEnv(t, 1, Config{}, backend.PoolConfig{MaxBound: 4})
	e.ds.locked(func(ds *fakeDS) {
		ds.users = map[string]string{aliceDN: userPassword}
		ds.expiring = map[string]bool{aliceDN: true}
		ds.policy = true
	})
	for _, asks := range []bool{false, true} {
		alice := e.session(t)
		alice.bindAs = NewSimpleBindIdentity(aliceDN)
		o := alice.start(aliceBind(asks))
		msgs := o.wait(waitLong)
		if res, _, _ := done(t, msgs, ldapwire.OpBindResponse); res.Code != ldapwire.Success {
			t.Fatalf("bind: result %d", res.Code)
		}
		if _, warned := ldapwire.FindControl(msgs[len(msgs)-1].Controls, ldapwire.OIDPasswordPolicy); warned != asks {
			t.Errorf("asking %v: the client got the warning: %v", asks, warned)
		}
		alice.ident = alice.bindAs
		alice.mustSearch("ou=alice", 1)
	}
	e.ds.locked(func(ds *fakeDS) {
		for c, ops := range opsOf(ds, "ou=alice") {
			for _, op := range ops {
				if !op.proxied || op.boundAs != fakeBindDN {
					t.Errorf("conn %d: %+v; want the control on a service-bound connection", c.id, op)
				}
			}
		}
	})
	if st := e.pool.Stats(); st.OpenBound != 0 || st.Leased != 0 {
		t.Errorf("pool %+v: want no lease and no bound connection for a warning", st)
	}
}

// The identity mode is known before the first operation chooses how to
// reach a server, even when no health check read the root DSE yet (the
// first clients after a start or a reload): a client's bind in client-bind
// mode is performed on its own connection, and its operations go there,
// never with a control, nor anonymously.
func TestClientBindModeKnownBeforeTheFirstOperation(t *testing.T) {
	const entries = 1
	e := newEnv(t, entries, Config{}, backend.PoolConfig{})
	e.ds.locked(func(ds *fakeDS) {
		ds.clientBind = true
		ds.users = map[string]string{aliceDN: userPassword}
	})
	if e.srv.Capabilities() != nil {
		t.Fatal("capabilities known before any connection")
	}
	s := e.session(t)
	s.mustBind(aliceDN, userPassword)
	if !e.srv.ClientBind() {
		t.Fatalf("after the first bind, the server is not in client-bind mode (%+v)", e.srv.Capabilities())
	}
	s.mustSearch(usersBase, entries)
	s.mustSearch(usersBase, entries)
	onlyConn(t, e.ds, usersBase, aliceDN, 2)

	// An anonymous first operation on another fresh server.
	e2 := newEnv(t, entries, Config{}, backend.PoolConfig{})
	e2.ds.locked(func(ds *fakeDS) { ds.clientBind = true })
	anon := e2.session(t)
	anon.mustSearch(usersBase, entries)
	onlyConn(t, e2.ds, usersBase, "", 1)

	// A SASL bind first.
	e3 := newEnv(t, entries, Config{}, backend.PoolConfig{})
	e3.ds.locked(func(ds *fakeDS) { ds.clientBind = true })
	var bound atomic.Bool
	o, x := startSASL(t, e3, &bound)
	checkSASLOnOwnConnection(t, e3, o, x, &bound)
}

// When every unbound connection carries its most, an anonymous client's
// operation goes on the service account's connection with the anonymous
// identity in a control, instead of being refused busy.
func TestAnonymousOverflowGoesOnTheServiceConnections(t *testing.T) {
	e := newEnv(t, 1, Config{OperationTimeout: time.Minute}, backend.PoolConfig{MaxConns: 1, OperationTimeout: time.Minute})
	anon := e.session(t)
	held := make([]*op, 0, backend.AnonMaxPerConn)
	for range backend.AnonMaxPerConn {
		held = append(held, anon.start(func(id int32) []byte { return searchRequest(id, heldBase, ldapwire.ScopeSub) }))
	}
	e.ds.until(t, waitLong, "every held search received", func(ds *fakeDS) bool {
		n := 0
		for _, ops := range opsOf(ds, heldBase) {
			n += len(ops)
		}
		return n == backend.AnonMaxPerConn
	})
	anon.mustSearch("ou=overflow", 1)
	e.ds.locked(func(ds *fakeDS) {
		for c, ops := range opsOf(ds, "ou=overflow") {
			if len(ops) != 1 || !ops[0].proxied || ops[0].authzID != "dn:" || ops[0].boundAs != fakeBindDN {
				t.Errorf("conn %d: the overflowing anonymous search: %+v; want a control with \"dn:\" on a service-bound connection", c.id, ops)
			}
		}
	})
	e.ds.openGate()
	for _, o := range held {
		if res, _, _ := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone); res.Code != ldapwire.Success {
			t.Fatalf("held search: result %d", res.Code)
		}
	}
}

// "Who am I?" is answered by ldapmux for clients on shared connections,
// written as the servers write it (389 Directory Server: "dn: " and the
// DN), and left to the server for a client on a connection of its own.
func TestWhoAmIAnswer(t *testing.T) {
	alice := NewSimpleBindIdentity(aliceDN)
	for _, tc := range []struct {
		name, vendor, want string
	}{
		{"OpenLDAP", "", "dn:" + aliceDN},
		{"389 Directory Server", "389 Project", "dn: " + aliceDN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 0, Config{}, backend.PoolConfig{})
			e.ds.locked(func(ds *fakeDS) { ds.vendor = tc.vendor })
			if _, err := e.pool.Detect(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got, forward := e.p.WhoAmI(alice, new(Leases)); got != tc.want || forward {
				t.Errorf("got %q, forward %v; want %q answered by ldapmux", got, forward, tc.want)
			}
			if got, forward := e.p.WhoAmI(Anonymous, new(Leases)); got != "" || forward {
				t.Errorf("anonymous: got %q, forward %v", got, forward)
			}
		})
	}
	t.Run("client-bind mode", func(t *testing.T) {
		e, s := aliceSession(t, 1, 0)
		if _, forward := e.p.WhoAmI(alice, &s.leases); !forward {
			t.Error("answered by ldapmux for a client bound on its own connection")
		}
		if _, forward := e.p.WhoAmI(Anonymous, new(Leases)); !forward {
			t.Error("answered by ldapmux for an anonymous client of a server in client-bind mode")
		}
	})
}
