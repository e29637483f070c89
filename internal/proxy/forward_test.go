package proxy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// A server answering a search with an ExtendedResponse: the client gets a
// SearchResultDone with the same result code and diagnostic.
func TestWrongTypeFinalResponse(t *testing.T) {
	e := newEnv(t, 0, Config{}, backend.PoolConfig{})
	s := e.session(t)
	o := s.start(func(id int32) []byte { return searchRequest(id, wrongTypeBase, ldapwire.ScopeSub) })
	msgs := o.wait(waitLong)
	if len(msgs) != 1 {
		t.Fatalf("%d responses, want 1", len(msgs))
	}
	res, _, _ := done(t, msgs, ldapwire.OpSearchResultDone)
	if res.Code != ldapwire.UnavailableCriticalExtension || string(res.Diagnostic) != "x" {
		t.Errorf("result %d %q, want 12 \"x\"", res.Code, res.Diagnostic)
	}
	if o.req.out.Code != ldapwire.UnavailableCriticalExtension || o.req.out.Server != "ds1" {
		t.Errorf("outcome %+v", o.req.out)
	}
	if h := e.health.reports(); len(h) > 0 {
		t.Errorf("health told of %v", h)
	}
}

// An entry sent to a compare is dropped; the compare's result passes.
func TestStrayPartialResponseDropped(t *testing.T) {
	e := newEnv(t, 0, Config{}, backend.PoolConfig{})
	s := e.session(t)
	o := s.start(func(id int32) []byte { return compareRequest(id, strayBase) })
	msgs := o.wait(waitLong)
	if len(msgs) != 1 {
		t.Fatalf("%d responses (tags %v), want only the compare result", len(msgs), tags(msgs))
	}
	if res, _, _ := done(t, msgs, ldapwire.OpCompareResponse); res.Code != ldapwire.CompareTrue {
		t.Errorf("result %d, want compareTrue", res.Code)
	}
}

func tags(msgs []ldapwire.Message) []byte {
	var ts []byte
	for _, m := range msgs {
		ts = append(ts, m.OpTag)
	}
	return ts
}

// A sync refreshAndPersist search outlives the operation timeout, is not
// held against its server, and ends with the client's abandon, which
// reaches the server and ends the lease.
func TestLongLivedSearchHasNoTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	e := newEnv(t, 0, Config{OperationTimeout: timeout}, backend.PoolConfig{})
	s := e.session(t)
	syncCtl := ldapwire.AppendControl(nil, ldapwire.OIDSyncRequest, true, syncValue(ldapwire.SyncRefreshAndPersist))
	o := s.start(func(id int32) []byte { return searchRequest(id, "dc=example,dc=com", ldapwire.ScopeSub, syncCtl) })
	var held string
	e.ds.until(t, waitLong, "sync search held", func(ds *fakeDS) bool {
		h := ds.heldLocked()
		if len(h) == 1 {
			held = h[0]
		}
		return len(h) == 1
	})
	o.untilResponses(1, waitLong)

	// Proving that something does not happen: 10 timeouts, sweeps included.
	deadline := time.Now().Add(10 * timeout)
	for time.Now().Before(deadline) {
		if !o.pending() {
			t.Fatalf("long-lived search ended after %s: %v", 10*timeout, tags(o.responses()))
		}
		time.Sleep(timeout / 5)
	}
	e.ds.locked(func(ds *fakeDS) {
		if h := ds.heldLocked(); len(h) != 1 || h[0] != held {
			t.Errorf("server holds %v, want still %s", h, held)
		}
		for _, c := range ds.conns {
			if len(c.abandons) > 0 {
				t.Errorf("conn %d got abandons %v before the client abandoned", c.id, c.abandons)
			}
		}
	})
	if st := e.pool.Stats(); st.Leased != 1 {
		t.Errorf("%d leased, want 1", st.Leased)
	}

	e.p.Abandon(o.req)
	msgs := o.wait(waitLong)
	if len(msgs) != 1 || msgs[0].OpTag != ldapwire.OpSearchResultEntry {
		t.Errorf("responses %v, want the refresh entry only", tags(msgs))
	}
	e.ds.until(t, waitLong, "server got the abandon", func(ds *fakeDS) bool { return len(ds.heldLocked()) == 0 })
	e.ds.locked(func(ds *fakeDS) {
		n := 0
		for _, c := range ds.conns {
			n += len(c.abandons)
		}
		if n != 1 {
			t.Errorf("%d abandons, want 1", n)
		}
	})
	e.untilStats(t, waitLong, "lease ends", func(st backend.PoolStats) bool { return st.Leased == 0 })
	e.ds.until(t, waitLong, "leased connection closed", func(ds *fakeDS) bool { return ds.openConnsLocked() == 0 })
	if h := e.health.reports(); len(h) > 0 {
		t.Errorf("health told of %v", h)
	}
}

// A persistent search is long-lived too: it also outlives the timeout.
func TestPersistentSearchHasNoTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	e := newEnv(t, 0, Config{OperationTimeout: timeout}, backend.PoolConfig{})
	s := e.session(t)
	ps := ldapwire.AppendControl(nil, ldapwire.OIDPersistentSearch, true, psearchValue())
	o := s.start(func(id int32) []byte { return searchRequest(id, "dc=example,dc=com", ldapwire.ScopeSub, ps) })
	e.ds.until(t, waitLong, "persistent search held", func(ds *fakeDS) bool { return len(ds.heldLocked()) == 1 })
	deadline := time.Now().Add(6 * timeout)
	for time.Now().Before(deadline) {
		if !o.pending() {
			t.Fatalf("persistent search ended: %v", tags(o.responses()))
		}
		time.Sleep(timeout / 5)
	}
	e.p.Abandon(o.req)
	o.wait(waitLong)
	e.ds.until(t, waitLong, "server got the abandon", func(ds *fakeDS) bool { return len(ds.heldLocked()) == 0 })
	e.untilStats(t, waitLong, "lease ends", func(st backend.PoolStats) bool { return st.Leased == 0 })
	if h := e.health.reports(); len(h) > 0 {
		t.Errorf("health told of %v", h)
	}
}

// A running long-lived search cut by its server ends with unavailable and
// is not held against the server.
func TestLongLivedSearchEndNotHeldAgainstServer(t *testing.T) {
	e := newEnv(t, 0, Config{OperationTimeout: 50 * time.Millisecond}, backend.PoolConfig{})
	s := e.session(t)
	syncCtl := ldapwire.AppendControl(nil, ldapwire.OIDSyncRequest, true, syncValue(ldapwire.SyncRefreshAndPersist))
	o := s.start(func(id int32) []byte { return searchRequest(id, "dc=example,dc=com", ldapwire.ScopeSub, syncCtl) })
	o.untilResponses(1, waitLong)
	var conn int
	e.ds.locked(func(ds *fakeDS) {
		for _, c := range ds.conns {
			if len(c.held) > 0 {
				conn = c.id
			}
		}
	})
	e.ds.drop(conn)
	res, _, entries := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone)
	if res.Code != ldapwire.Unavailable || len(entries) != 1 {
		t.Errorf("result %d %q after %d entries, want unavailable (52) after 1", res.Code, res.Diagnostic, len(entries))
	}
	e.untilStats(t, waitLong, "lease ends", func(st backend.PoolStats) bool { return st.Leased == 0 })
	if h := e.health.reports(); len(h) > 0 {
		t.Errorf("health told of %v", h)
	}
}

// The operation timeout measures the server's silence: a search whose
// entries keep coming lasts as long as it needs; a time limit caps it as a
// whole without blaming the server; a silent server is timed out and
// blamed.
func TestSearchTimeouts(t *testing.T) {
	const every, count = 20 * time.Millisecond, 20 // about 400 ms in all
	streaming := func(t *testing.T, cfg Config) (*testEnv, *op) {
		e := newEnv(t, 0, cfg, backend.PoolConfig{})
		e.ds.locked(func(ds *fakeDS) { ds.stream, ds.streamCount = every, count })
		o := e.session(t).start(func(id int32) []byte { return searchRequest(id, streamBase, ldapwire.ScopeSub) })
		return e, o
	}

	t.Run("steady entries outlast the operation timeout", func(t *testing.T) {
		e, o := streaming(t, Config{OperationTimeout: 100 * time.Millisecond})
		start := time.Now()
		res, _, entries := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone)
		if res.Code != ldapwire.Success {
			t.Fatalf("result %d %q", res.Code, res.Diagnostic)
		}
		if got, want := entryDNs(t, entries), wantDNs(streamBase, 0, count); !sameStrings(got, want) {
			t.Errorf("entries %v, want %v", got, want)
		}
		if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
			t.Errorf("search took %s: the stream was not slow enough to prove anything", elapsed)
		}
		if h := e.health.reports(); len(h) > 0 {
			t.Errorf("health told of %v", h)
		}
	})

	t.Run("search time limit", func(t *testing.T) {
		e, o := streaming(t, Config{OperationTimeout: 100 * time.Millisecond, SearchTimeLimit: 150 * time.Millisecond})
		res, _, entries := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone)
		if res.Code != ldapwire.TimeLimitExceeded {
			t.Fatalf("result %d %q, want timeLimitExceeded (3)", res.Code, res.Diagnostic)
		}
		if len(entries) == 0 || len(entries) >= count {
			t.Errorf("%d entries before the time limit, want some but not all %d", len(entries), count)
		}
		if !strings.Contains(string(res.Diagnostic), "search-time-limit") {
			t.Errorf("diagnostic %q does not name the limit", res.Diagnostic)
		}
		if h := e.health.reports(); len(h) > 0 {
			t.Errorf("a time limit was held against the server: %v", h)
		}
		e.ds.until(t, waitLong, "server got the abandon", func(ds *fakeDS) bool {
			for _, c := range ds.conns {
				if len(c.abandons) > 0 {
					return true
				}
			}
			return false
		})
	})

	t.Run("silent after some entries", func(t *testing.T) {
		e := newEnv(t, 0, Config{OperationTimeout: 100 * time.Millisecond}, backend.PoolConfig{})
		e.ds.locked(func(ds *fakeDS) { ds.silentAfter = 2 })
		o := e.session(t).start(func(id int32) []byte { return searchRequest(id, silentBase, ldapwire.ScopeSub) })
		res, _, entries := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone)
		if res.Code != ldapwire.TimeLimitExceeded || len(entries) != 2 {
			t.Fatalf("result %d %q after %d entries, want timeLimitExceeded (3) after 2", res.Code, res.Diagnostic, len(entries))
		}
		h := e.health.reports()
		if len(h) != 1 || !strings.HasPrefix(h[0], "ds1: ") {
			t.Errorf("health told of %v, want one failure of ds1", h)
		}
	})

	t.Run("silent from the start", func(t *testing.T) {
		// A read with nothing delivered is retried elsewhere; with no other
		// server, the client hears that none could take it.
		e := newEnv(t, 0, Config{OperationTimeout: 100 * time.Millisecond}, backend.PoolConfig{})
		o := e.session(t).start(func(id int32) []byte { return searchRequest(id, silentBase, ldapwire.ScopeSub) })
		res, _, entries := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone)
		if res.Code != ldapwire.Unavailable || len(entries) != 0 || !strings.Contains(string(res.Diagnostic), "timed out") {
			t.Fatalf("result %d %q after %d entries, want unavailable (52) naming the timeout", res.Code, res.Diagnostic, len(entries))
		}
		if h := e.health.reports(); len(h) != 1 {
			t.Errorf("health told of %v, want one failure", h)
		}
	})
}

// The time limit error is a timeout and says so, and is told apart from
// the silence timeout.
func TestFailureReplyTimeLimit(t *testing.T) {
	srv := &backend.Server{Name: "ds9"}
	code, msg := failureReply(&Request{}, srv, attemptResult{status: timedOut, err: backend.ErrTimeLimit, delivered: 4})
	if code != ldapwire.TimeLimitExceeded || !strings.Contains(msg, "after 4 responses") {
		t.Errorf("time limit: %d %q", code, msg)
	}
	if !errors.Is(backend.ErrTimeLimit, backend.ErrTimeout) {
		t.Errorf("ErrTimeLimit does not wrap ErrTimeout")
	}
	req := &Request{}
	req.Msg.OpTag = ldapwire.OpSearchRequest
	if heldAgainstServer(req, attemptResult{status: timedOut, err: backend.ErrTimeLimit}) {
		t.Errorf("a time limit is held against the server")
	}
	if !heldAgainstServer(req, attemptResult{status: timedOut, err: backend.ErrTimeout}) {
		t.Errorf("a silent server is not held against")
	}
	if (attemptResult{status: timedOut, err: backend.ErrTimeLimit}).retryable(req) {
		t.Errorf("a search stopped by its time limit would be retried")
	}
}

// classify tells which searches need a leased connection and the cursor
// they continue.
func TestClassify(t *testing.T) {
	paged := func(cookie string) []byte {
		return ldapwire.AppendControl(nil, ldapwire.OIDPagedResults, true, ldapwire.AppendPagedValue(nil, 10, cookie))
	}
	vlv := func(id []byte) []byte { return ldapwire.AppendControl(nil, ldapwire.OIDVLVRequest, true, vlvValue(id)) }
	syncCtl := func(mode int) []byte {
		return ldapwire.AppendControl(nil, ldapwire.OIDSyncRequest, true, syncValue(mode))
	}
	other := ldapwire.AppendControl(nil, "1.2.840.113556.1.4.473", false, nil) // server-side sort, no value
	for _, tc := range []struct {
		name  string
		raw   []byte
		state stateKind
		key   string
	}{
		{"no controls", searchRequest(1, "dc=x", 2), stateless, ""},
		{"unrelated control", searchRequest(1, "dc=x", 2, other), stateless, ""},
		{"paged, first page", searchRequest(1, "dc=x", 2, paged("")), cursorOp, ""},
		{"paged, next page", searchRequest(1, "dc=x", 2, paged("c1")), cursorOp, "pc1"},
		{"paged after another control", searchRequest(1, "dc=x", 2, other, paged("c2")), cursorOp, "pc2"},
		{"paged, malformed value", searchRequest(1, "dc=x", 2, ldapwire.AppendControl(nil, ldapwire.OIDPagedResults, true, []byte{0x30, 0x01})), cursorOp, ""},
		{"VLV without contextID", searchRequest(1, "dc=x", 2, vlv(nil)), cursorOp, ""},
		{"VLV with empty contextID", searchRequest(1, "dc=x", 2, vlv([]byte{})), cursorOp, ""},
		{"VLV with contextID", searchRequest(1, "dc=x", 2, vlv([]byte("ctx"))), cursorOp, "vctx"},
		{"paged and VLV cursors do not collide", searchRequest(1, "dc=x", 2, paged("ctx")), cursorOp, "pctx"},
		{"sync refreshOnly", searchRequest(1, "dc=x", 2, syncCtl(ldapwire.SyncRefreshOnly)), stateless, ""},
		{"sync refreshOnly, paged", searchRequest(1, "dc=x", 2, syncCtl(ldapwire.SyncRefreshOnly), paged("c3")), cursorOp, "pc3"},
		{"sync refreshAndPersist", searchRequest(1, "dc=x", 2, syncCtl(ldapwire.SyncRefreshAndPersist)), longLived, ""},
		{"sync refreshAndPersist, paged", searchRequest(1, "dc=x", 2, paged("c4"), syncCtl(ldapwire.SyncRefreshAndPersist)), longLived, ""},
		{"sync, malformed value", searchRequest(1, "dc=x", 2, ldapwire.AppendControl(nil, ldapwire.OIDSyncRequest, true, []byte{4, 0})), longLived, ""},
		{"persistent search", searchRequest(1, "dc=x", 2, ldapwire.AppendControl(nil, ldapwire.OIDPersistentSearch, true, psearchValue())), longLived, ""},
		{"AD change notification", searchRequest(1, "dc=x", 1, ldapwire.AppendControl(nil, ldapwire.OIDADNotification, true, nil)), longLived, ""},
		{"not a search", ldapwire.AppendMessage(nil, 1, compareRequestOp(), ldapwire.AppendControls(paged("c5")), nil), stateless, ""},
	} {
		msg, err := ldapwire.Parse(tc.raw)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		state, key := classify(&msg)
		if state != tc.state || key != tc.key {
			t.Errorf("%s: classify = %d, %q; want %d, %q", tc.name, state, key, tc.state, tc.key)
		}
	}
}

// compareRequestOp is a compare's protocolOp.
func compareRequestOp() []byte {
	msg, _ := ldapwire.Parse(compareRequest(1, "cn=a"))
	return msg.Op
}

// The root DSE read through ldapmux lists only what passes through it.
func TestRootDSEFiltered(t *testing.T) {
	e := newEnv(t, 0, Config{}, backend.PoolConfig{})
	e.ds.locked(func(ds *fakeDS) {
		ds.rootDSE = []ldapwire.Attribute{
			{Type: "namingContexts", Values: []string{"dc=example,dc=com"}},
			{Type: "supportedExtension", Values: []string{ldapwire.OIDStartTxn, ldapwire.OIDCancel, ldapwire.OIDWhoAmI}},
			{Type: "supportedControl", Values: []string{ldapwire.OIDProxiedAuthzV2, ldapwire.OIDPagedResults}},
			{Type: "supportedLDAPVersion", Values: []string{"3"}},
		}
	})
	s := e.session(t)
	o := s.start(func(id int32) []byte { return searchRequest(id, "", ldapwire.ScopeBase) })
	res, _, entries := done(t, o.wait(waitLong), ldapwire.OpSearchResultDone)
	if res.Code != ldapwire.Success || len(entries) != 1 {
		t.Fatalf("result %d with %d entries", res.Code, len(entries))
	}
	dn, attrs := entryOf(t, entries[0])
	if dn != "" {
		t.Errorf("root DSE named %q", dn)
	}
	want := map[string][]string{
		"namingContexts":       {"dc=example,dc=com"},
		"supportedExtension":   {ldapwire.OIDCancel, ldapwire.OIDWhoAmI},
		"supportedControl":     {ldapwire.OIDPagedResults},
		"supportedLDAPVersion": {"3"},
	}
	if len(attrs) != len(want) {
		t.Errorf("attributes %v, want %v", attrs, want)
	}
	for typ, vals := range want {
		if !sameStrings(attrs[typ], vals) {
			t.Errorf("%s: %v, want %v", typ, attrs[typ], vals)
		}
	}

	// Only a base search of the empty DN reads the root DSE.
	for _, tc := range []struct {
		base  string
		scope int
		want  bool
	}{{"", ldapwire.ScopeBase, true}, {"", ldapwire.ScopeSub, false}, {"", ldapwire.ScopeOne, false}, {"dc=example,dc=com", ldapwire.ScopeBase, false}} {
		msg, _ := ldapwire.Parse(searchRequest(1, tc.base, tc.scope))
		if got := isRootDSESearch(&msg); got != tc.want {
			t.Errorf("base %q scope %d: isRootDSESearch %v", tc.base, tc.scope, got)
		}
	}
}
