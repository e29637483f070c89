package proxy

import (
	"fmt"
	"github.com/ldapmux/ldapmux/internal/evloop/evlooptest"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/balancer"
	"github.com/ldapmux/ldapmux/internal/fakeldap"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/route"
)

// Service account the proxy binds its connections with.
const (
	fakeBindDN   = "cn=ldapmux,dc=example,dc=com"
	fakePassword = "secret"
)

// Search bases that make the fake server misbehave.
const (
	wrongTypeBase = "cn=wrong-type"  // answered with an ExtendedResponse
	streamBase    = "cn=stream"      // entries one at a time (fakeDS.stream)
	silentBase    = "cn=silent"      // some entries (fakeDS.silentAfter), then nothing
	strayBase     = "cn=stray-entry" // a compare answered with an entry first
	postReadBase  = "cn=post-read"   // a modify that succeeds, with a Post-Read answer when asked
	heldBase      = "cn=held"        // answered once fakeDS.gate is opened (openGate)
)

// fakeDS is a fake directory server that keeps paged-results state per
// connection like 389 Directory Server: a cookie is a per-connection
// counter ("1", "2", ...), meaningful only on the connection that issued
// it. It records every misuse it sees (a cookie the connection did not
// issue, a cookie continuing another search) as a problem; close reports
// them as test errors.
//
// By search base and controls, it answers the service bind; serves
// fakeDS.entries entries of a base in pages (paged results control) or all
// at once; answers wrongTypeBase with an ExtendedResponse
// (unavailableCriticalExtension, "x"); holds a sync refreshAndPersist or
// persistent search open until abandoned; streams streamBase's entries one
// every fakeDS.stream; and answers the root DSE with rootDSE.
type fakeDS struct {
	t  testing.TB
	ln net.Listener
	wg sync.WaitGroup

	mu           sync.Mutex // mu guards the fields below and every fakeConn's state
	conns        []*fakeConn
	problems     []string
	searches     int           // search requests received (service probes of the root DSE included)
	anonSearches int           // searches received on unbound connections in proxied mode
	entries      int           // entries of each paged or plain search
	stream       time.Duration // interval between streamBase's entries
	streamCount  int
	silentAfter  int // entries silentBase gets before the server goes quiet
	rootDSE      []ldapwire.Attribute
	cookies      string        // prefix of the paged cookies issued ("" for 389's bare numbers)
	changed      chan struct{} // closed and replaced whenever the state above changes
	// clientBind: the root DSE read at connect does not list proxied
	// authorization (like Active Directory), so the proxy uses client-bind
	// mode: searches on unbound connections are fine, and a search
	// carrying a proxied authorization control is a problem.
	clientBind bool
	vendor     string            // vendorName in the root DSE read at connect
	users      map[string]string // DN → password of the client binds accepted besides the service account
	// mustChange holds the users whose password was reset: a bind that
	// asks gets a password policy control with changeAfterReset, and the
	// session is then limited to extended operations (password changes),
	// as OpenLDAP's password policy does
	mustChange map[string]bool
	// expiring holds the users whose password expires soon: a bind that
	// asks gets a password policy warning, and the session is free
	expiring map[string]bool
	// policy: the root DSE lists the password policy control, as a server
	// with a password policy does; policyAsked counts the binds that
	// carried it
	policy      bool
	policyAsked int
	gate        chan struct{} // heldBase's searches are answered once it is closed
	gateOnce    sync.Once
}

// fakeConn is one connection's state as the fake server sees it.
type fakeConn struct {
	id         int
	nc         net.Conn
	wmu        sync.Mutex // serialises writes (streams write from their own goroutine)
	bound      bool
	closed     bool
	counter    int                    // last paged-results cookie issued
	cursors    map[string]*fakeCursor // cookie → the paged search it continues
	issued     []string               // cookies sent
	received   []string               // cookies received
	bases      map[string]bool        // bases of the paged searches on this connection
	held       map[int32]bool         // long-lived searches still open, by message ID
	abandons   []int32                // targets of the abandons received
	boundAs    string                 // DN of the last successful bind, "" while anonymous
	restricted bool                   // the last bind was of a user in mustChange
	binds      []string               // DNs of the bind requests received ("sasl:" and the mechanism for SASL)
	ops        []fakeOp               // requests received other than binds, abandons and unbinds
}

// fakeOp is one request as a fake connection received it.
type fakeOp struct {
	tag      byte
	base     string // target DN
	boundAs  string // the connection's identity when it came
	proxied  bool   // it carried a Proxied Authorization control
	authzID  string // that control's value
	critical bool
}

// fakeCursor is where a paged search stands.
type fakeCursor struct {
	base string
	next int // index of the next entry to send
}

// startFakeDS listens on 127.0.0.1:0 until the test ends.
func startFakeDS(t testing.TB, entries int) *fakeDS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ds := &fakeDS{t: t, ln: ln, entries: entries, changed: make(chan struct{}), gate: make(chan struct{})}
	ds.wg.Add(1)
	go ds.accept()
	t.Cleanup(ds.close)
	return ds
}

// advertisedExtensions are the extended operations a fake server lists in
// the root DSE it shows the proxy at connect.
var advertisedExtensions = []string{ldapwire.OIDPasswordModify, ldapwire.OIDWhoAmI, advertisedTestExtension}

// advertisedTestExtension is an extended operation the fake server lists
// but does not implement.
const advertisedTestExtension = "1.3.6.1.4.1.99999.1"

func (ds *fakeDS) addr() string { return ds.ln.Addr().String() }

// notifyLocked wakes those waiting in until. Caller must hold mu.
func (ds *fakeDS) notifyLocked() {
	close(ds.changed)
	ds.changed = make(chan struct{})
}

// problemLocked records a misuse by the proxy. Caller must hold mu.
func (ds *fakeDS) problemLocked(format string, args ...any) {
	ds.problems = append(ds.problems, fmt.Sprintf(format, args...))
}

// until waits for cond, evaluated under the server's lock, to hold; it
// fails the test after d.
func (ds *fakeDS) until(t testing.TB, d time.Duration, what string, cond func(ds *fakeDS) bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		ds.mu.Lock()
		ok, ch := cond(ds), ds.changed
		ds.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("fake server: %s: not after %s", what, d)
		}
	}
}

// locked runs fn under the server's lock, to read its state or change its
// behaviour.
func (ds *fakeDS) locked(fn func(ds *fakeDS)) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	fn(ds)
}

// openConnsLocked counts connections the server has not seen close.
func (ds *fakeDS) openConnsLocked() int {
	n := 0
	for _, c := range ds.conns {
		if !c.closed {
			n++
		}
	}
	return n
}

// heldLocked lists the long-lived searches open, as "conn/msgid". Caller
// must hold mu.
func (ds *fakeDS) heldLocked() []string {
	var held []string
	for _, c := range ds.conns {
		for id := range c.held {
			held = append(held, fmt.Sprintf("%d/%d", c.id, id))
		}
	}
	return held
}

// drop closes connection id from the server's side (a server restart).
func (ds *fakeDS) drop(id int) {
	ds.mu.Lock()
	c := ds.conns[id]
	ds.mu.Unlock()
	c.nc.Close()
}

// openGate lets heldBase's searches be answered.
func (ds *fakeDS) openGate() { ds.gateOnce.Do(func() { close(ds.gate) }) }

func (ds *fakeDS) close() {
	ds.openGate()
	ds.ln.Close()
	ds.mu.Lock()
	for _, c := range ds.conns {
		c.nc.Close()
	}
	problems := ds.problems
	ds.mu.Unlock()
	ds.wg.Wait()
	for _, p := range problems {
		ds.t.Errorf("fake server: %s", p)
	}
}

func (ds *fakeDS) accept() {
	defer ds.wg.Done()
	for {
		nc, err := ds.ln.Accept()
		if err != nil {
			return
		}
		ds.mu.Lock()
		c := &fakeConn{id: len(ds.conns), nc: nc, cursors: map[string]*fakeCursor{},
			bases: map[string]bool{}, held: map[int32]bool{}}
		ds.conns = append(ds.conns, c)
		ds.notifyLocked()
		ds.mu.Unlock()
		ds.wg.Add(1)
		go ds.serve(c)
	}
}

// serve answers one connection's requests in order until it closes.
func (ds *fakeDS) serve(c *fakeConn) {
	defer ds.wg.Done()
	defer func() {
		c.nc.Close()
		ds.mu.Lock()
		c.closed = true
		ds.notifyLocked()
		ds.mu.Unlock()
	}()
	fakeldap.ServeRequests(c.nc, func(msg ldapwire.Message) {
		if out := ds.answer(c, msg); len(out) > 0 {
			c.write(out)
		}
	}, func(err error) {
		ds.mu.Lock()
		ds.problemLocked("conn %d: malformed request: %v", c.id, err)
		ds.mu.Unlock()
	})
}

// write sends responses; a closed connection is noticed by the reader.
func (c *fakeConn) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.Write(b)
}

// answer returns the responses to msg, or starts a goroutine that sends
// them later.
func (ds *fakeDS) answer(c *fakeConn, msg ldapwire.Message) []byte {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	defer ds.notifyLocked()
	switch msg.OpTag {
	case ldapwire.OpBindRequest:
		return ds.bind(c, msg)
	case ldapwire.OpAbandonRequest:
		target, err := msg.AbandonTarget()
		if err != nil {
			ds.problemLocked("conn %d: bad abandon: %v", c.id, err)
			return nil
		}
		c.abandons = append(c.abandons, target)
		delete(c.held, target)
		return nil
	}
	if c.restricted && msg.OpTag != ldapwire.OpExtendedRequest {
		return ldapwire.AppendResult(nil, msg.ID, ldapwire.ResponseTag(msg.OpTag), ldapwire.InsufficientAccessRights,
			"Operations are restricted to bind/unbind/abandon/StartTLS/modify password")
	}
	ctrl, proxied := ldapwire.FindControl(msg.Controls, ldapwire.OIDProxiedAuthzV2)
	c.ops = append(c.ops, fakeOp{tag: msg.OpTag, base: string(msg.TargetDN()), boundAs: c.boundAs,
		proxied: proxied, authzID: string(ctrl.Value), critical: ctrl.Critical})
	if proxied && ds.clientBind {
		ds.problemLocked("conn %d: a proxied authorization control sent to a server in client-bind mode", c.id)
	}
	switch msg.OpTag {
	case ldapwire.OpCompareRequest:
		if string(msg.TargetDN()) == strayBase {
			out := ldapwire.AppendSearchEntry(nil, msg.ID, strayBase, nil, false)
			return ldapwire.AppendResult(out, msg.ID, ldapwire.OpCompareResponse, ldapwire.CompareTrue, "")
		}
		return ldapwire.AppendResult(nil, msg.ID, ldapwire.OpCompareResponse, ldapwire.CompareTrue, "")
	case ldapwire.OpSearchRequest:
		return ds.search(c, msg)
	case ldapwire.OpModifyRequest:
		if string(msg.TargetDN()) == postReadBase {
			return postReadAnswer(msg)
		}
	case ldapwire.OpExtendedRequest:
		if string(msg.ExtendedOID()) == ldapwire.OIDPasswordModify && c.restricted {
			c.restricted = false // changed: the session is free
			delete(ds.mustChange, c.boundAs)
			return ldapwire.AppendExtendedResult(nil, msg.ID, ldapwire.Success, "")
		}
	}
	return ldapwire.AppendResult(nil, msg.ID, ldapwire.ResponseTag(msg.OpTag), ldapwire.UnwillingToPerform, "not in the fake")
}

// bind answers a bind: the service account's, and those of ds.users, with
// their passwords, succeed; so do SASL binds whose "sasl:" name is in
// ds.users (with no password), whatever their credentials. Caller must
// hold mu.
func (ds *fakeDS) bind(c *fakeConn, msg ldapwire.Message) []byte {
	b, err := ldapwire.ParseBind(msg.Body)
	name, password := string(b.Name), string(b.Password)
	if err == nil && b.Auth == ldapwire.AuthSASL {
		name = "sasl:" + string(b.Mechanism)
	}
	c.binds = append(c.binds, name)
	want, known := ds.users[name]
	if name == fakeBindDN {
		want, known = fakePassword, true
	}
	sasl := err == nil && b.Auth == ldapwire.AuthSASL
	if err != nil || !known || !sasl && (b.Auth != ldapwire.AuthSimple || password != want) {
		c.bound, c.boundAs = false, "" // a failed bind leaves the connection anonymous
		return ldapwire.AppendResult(nil, msg.ID, ldapwire.OpBindResponse, ldapwire.InvalidCredentials, "")
	}
	c.bound, c.boundAs = true, name
	c.restricted = ds.mustChange[name]
	_, asked := ldapwire.FindControl(msg.Controls, ldapwire.OIDPasswordPolicy)
	if asked {
		ds.policyAsked++
	}
	var policy []byte
	switch {
	case asked && c.restricted:
		policy = ldapwire.AppendElement(nil, 0x30, []byte{0x81, 1, 2}) // changeAfterReset
	case asked && ds.expiring[name]:
		policy = ldapwire.AppendElement(nil, 0x30, ldapwire.AppendElement(nil, 0xa0, []byte{0x80, 2, 0x0e, 0x10})) // expires in an hour
	}
	if policy != nil {
		return ldapwire.AppendResultControls(nil, msg.ID, ldapwire.OpBindResponse, ldapwire.Success, "",
			ldapwire.AppendControls(ldapwire.AppendControl(nil, ldapwire.OIDPasswordPolicy, false, policy)))
	}
	return ldapwire.AppendResult(nil, msg.ID, ldapwire.OpBindResponse, ldapwire.Success, "")
}

// search answers a search. Caller must hold mu.
func (ds *fakeDS) search(c *fakeConn, msg ldapwire.Message) []byte {
	ds.searches++
	proxied := ldapwire.HasControl(msg.Controls, ldapwire.OIDProxiedAuthzV2)
	if !c.bound && !ds.clientBind {
		ds.anonSearches++
		if proxied {
			ds.problemLocked("conn %d: proxied authorization on an unbound connection", c.id)
		}
	}
	sr, err := ldapwire.ParseSearch(msg.Body)
	if err == nil && c.boundAs == fakeBindDN && msg.Controls == nil && len(sr.BaseDN) == 0 && sr.Scope == ldapwire.ScopeBase {
		// the root DSE read at connect: it advertises proxied
		// authorization, unless the server is in client-bind mode (then it
		// looks like Active Directory)
		dse := []ldapwire.Attribute{{Type: "supportedControl", Values: []string{ldapwire.OIDProxiedAuthzV2}},
			{Type: "supportedExtension", Values: advertisedExtensions}}
		if ds.policy {
			dse[0].Values = append(dse[0].Values, ldapwire.OIDPasswordPolicy)
		}
		if ds.clientBind {
			dse = []ldapwire.Attribute{{Type: "forestFunctionality", Values: []string{"7"}},
				{Type: "supportedControl", Values: []string{"1.2.840.113556.1.4.319"}}}
		}
		if ds.vendor != "" {
			dse = append(dse, ldapwire.Attribute{Type: "vendorName", Values: []string{ds.vendor}})
		}
		out := ldapwire.AppendSearchEntry(nil, msg.ID, "", dse, false)
		return ldapwire.AppendResult(out, msg.ID, ldapwire.OpSearchResultDone, ldapwire.Success, "")
	}
	if !ds.clientBind && c.boundAs == fakeBindDN && !proxied {
		ds.problemLocked("conn %d: search as the service account without the proxied authorization control", c.id)
	}
	if err != nil {
		ds.problemLocked("conn %d: bad search: %v", c.id, err)
		return ldapwire.AppendResult(nil, msg.ID, ldapwire.OpSearchResultDone, ldapwire.ProtocolError, err.Error())
	}
	base := string(sr.BaseDN)
	if sc, ok := ldapwire.FindControl(msg.Controls, ldapwire.OIDSyncRequest); ok {
		if mode, err := ldapwire.ParseSyncRequestMode(sc.Value); err == nil && mode == ldapwire.SyncRefreshAndPersist {
			c.held[msg.ID] = true // refresh done, persisting: nothing more until a change or an abandon
			return ldapwire.AppendSearchEntry(nil, msg.ID, "uid=e0,"+base, nil, false)
		}
	}
	if ldapwire.HasControl(msg.Controls, ldapwire.OIDPersistentSearch) {
		c.held[msg.ID] = true
		return nil
	}
	if pc, ok := ldapwire.FindControl(msg.Controls, ldapwire.OIDPagedResults); ok {
		return ds.page(c, msg, base, pc.Value)
	}
	switch {
	case base == "" && sr.Scope == ldapwire.ScopeBase:
		out := ldapwire.AppendSearchEntry(nil, msg.ID, "", ds.rootDSE, false)
		return ldapwire.AppendResult(out, msg.ID, ldapwire.OpSearchResultDone, ldapwire.Success, "")
	case base == wrongTypeBase:
		return ldapwire.AppendResult(nil, msg.ID, ldapwire.OpExtendedResponse, ldapwire.UnavailableCriticalExtension, "x")
	case base == streamBase:
		go c.streamEntries(msg.ID, ds.streamCount, ds.stream)
		return nil
	case base == heldBase:
		go func(gate chan struct{}, id int32) {
			<-gate
			c.write(ldapwire.AppendResult(nil, id, ldapwire.OpSearchResultDone, ldapwire.Success, ""))
		}(ds.gate, msg.ID)
		return nil
	case base == silentBase:
		var out []byte
		for i := range ds.silentAfter {
			out = ldapwire.AppendSearchEntry(out, msg.ID, entryDN(i, base), nil, false)
		}
		return out
	}
	var out []byte
	for i := range ds.entries {
		out = ldapwire.AppendSearchEntry(out, msg.ID, entryDN(i, base), nil, false)
	}
	return ldapwire.AppendResult(out, msg.ID, ldapwire.OpSearchResultDone, ldapwire.Success, "")
}

// page answers one page of a paged search, 389-style. Caller must hold mu.
func (ds *fakeDS) page(c *fakeConn, msg ldapwire.Message, base string, value []byte) []byte {
	size, cookie, err := ldapwire.ParsePagedValue(value)
	if err != nil || size <= 0 {
		ds.problemLocked("conn %d: bad paged control: %v (size %d)", c.id, err, size)
		return ldapwire.AppendResult(nil, msg.ID, ldapwire.OpSearchResultDone, ldapwire.ProtocolError, "bad paged control")
	}
	cur := &fakeCursor{base: base}
	if len(cookie) > 0 {
		c.received = append(c.received, string(cookie))
		cur = c.cursors[string(cookie)]
		switch {
		case cur == nil:
			ds.problemLocked("conn %d: paged cookie %q that this connection never issued (or already used), for %q", c.id, cookie, base)
			return ldapwire.AppendResult(nil, msg.ID, ldapwire.OpSearchResultDone, ldapwire.UnwillingToPerform, "invalid paged cookie")
		case cur.base != base:
			ds.problemLocked("conn %d: paged cookie %q of a search of %q continues a search of %q", c.id, cookie, cur.base, base)
			return ldapwire.AppendResult(nil, msg.ID, ldapwire.OpSearchResultDone, ldapwire.UnwillingToPerform, "paged cookie of another search")
		}
		delete(c.cursors, string(cookie))
	}
	c.bases[base] = true
	var out []byte
	end := min(cur.next+size, ds.entries)
	for i := cur.next; i < end; i++ {
		out = ldapwire.AppendSearchEntry(out, msg.ID, entryDN(i, base), nil, false)
	}
	next := ""
	if end < ds.entries {
		c.counter++
		next = ds.cookies + strconv.Itoa(c.counter)
		c.cursors[next] = &fakeCursor{base: base, next: end}
		c.issued = append(c.issued, next)
	}
	ctrl := ldapwire.AppendControl(nil, ldapwire.OIDPagedResults, false, ldapwire.AppendPagedValue(nil, 0, next))
	return ldapwire.AppendResultControls(out, msg.ID, ldapwire.OpSearchResultDone, ldapwire.Success, "", ldapwire.AppendControls(ctrl))
}

// streamEntries sends count entries of streamBase, one every interval,
// then the search's success.
func (c *fakeConn) streamEntries(id int32, count int, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := range count {
		<-t.C
		c.write(ldapwire.AppendSearchEntry(nil, id, entryDN(i, streamBase), nil, false))
	}
	c.write(ldapwire.AppendResult(nil, id, ldapwire.OpSearchResultDone, ldapwire.Success, ""))
}

// entryDN names entry i of base.
func entryDN(i int, base string) string { return "uid=e" + strconv.Itoa(i) + "," + base }

// BER encoders for what ldapwire does not build.

func syncValue(mode int) []byte {
	return ldapwire.AppendElement(nil, 0x30, ldapwire.AppendInteger(nil, 0x0a, int64(mode)))
}

func psearchValue() []byte {
	v := ldapwire.AppendInteger(nil, 0x02, 15)        // changeTypes: all
	v = ldapwire.AppendElement(v, 0x01, []byte{0xff}) // changesOnly
	v = ldapwire.AppendElement(v, 0x01, []byte{0xff}) // returnECs
	return ldapwire.AppendElement(nil, 0x30, v)
}

// vlvValue is a VLV request by offset, with a contextID unless it is nil.
func vlvValue(contextID []byte) []byte {
	v := ldapwire.AppendInteger(nil, 0x02, 0)
	v = ldapwire.AppendInteger(v, 0x02, 9)
	target := ldapwire.AppendInteger(nil, 0x02, 1)
	target = ldapwire.AppendInteger(target, 0x02, 0)
	v = ldapwire.AppendElement(v, 0xa0, target)
	if contextID != nil {
		v = ldapwire.AppendElement(v, 0x04, contextID)
	}
	return ldapwire.AppendElement(nil, 0x30, v)
}

// searchRequest encodes a search of base for every entry (objectClass
// present), all attributes.
func searchRequest(id int32, base string, scope int, ctrls ...[]byte) []byte {
	body := ldapwire.AppendElement(nil, 0x04, []byte(base))
	body = ldapwire.AppendInteger(body, 0x0a, int64(scope))
	body = ldapwire.AppendInteger(body, 0x0a, 0) // neverDerefAliases
	body = ldapwire.AppendInteger(body, 0x02, 0) // sizeLimit
	body = ldapwire.AppendInteger(body, 0x02, 0) // timeLimit
	body = ldapwire.AppendElement(body, 0x01, []byte{0})
	body = ldapwire.AppendElement(body, ldapwire.FilterPresent, []byte("objectClass"))
	body = ldapwire.AppendElement(body, 0x30, nil)
	return ldapwire.AppendMessage(nil, id, ldapwire.AppendElement(nil, ldapwire.OpSearchRequest, body), ldapwire.AppendControls(ctrls...), nil)
}

// compareRequest encodes a compare of dn's cn with "x".
func compareRequest(id int32, dn string) []byte { return compareRequestOf(id, dn, "x") }

// compareRequestOf encodes a compare of dn's cn with value.
func compareRequestOf(id int32, dn, value string) []byte {
	ava := ldapwire.AppendElement(nil, 0x04, []byte("cn"))
	ava = ldapwire.AppendElement(ava, 0x04, []byte(value))
	body := ldapwire.AppendElement(nil, 0x04, []byte(dn))
	body = ldapwire.AppendElement(body, 0x30, ava)
	return ldapwire.AppendMessage(nil, id, ldapwire.AppendElement(nil, ldapwire.OpCompareRequest, body), nil, nil)
}

// pagedSearch encodes a paged search of base with the given page size and cookie.
func pagedSearch(id int32, base string, size int, cookie string) []byte {
	return searchRequest(id, base, ldapwire.ScopeSub, ldapwire.AppendControl(nil, ldapwire.OIDPagedResults, true, ldapwire.AppendPagedValue(nil, size, cookie)))
}

// A tiny BER reader for checking responses.

// element splits the first element of b.
func element(t testing.TB, b []byte) (tag byte, content, rest []byte) {
	t.Helper()
	if len(b) < 2 {
		t.Fatalf("short element % x", b)
	}
	tag, n, hdr := b[0], int(b[1]), 2
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 3 || len(b) < 2+k {
			t.Fatalf("bad length in % x", b)
		}
		n = 0
		for _, x := range b[2 : 2+k] {
			n = n<<8 | int(x)
		}
		hdr += k
	}
	if len(b) < hdr+n {
		t.Fatalf("truncated element % x", b)
	}
	return tag, b[hdr : hdr+n], b[hdr+n:]
}

// entryOf decodes a SearchResultEntry into its DN and attributes.
func entryOf(t testing.TB, msg ldapwire.Message) (dn string, attrs map[string][]string) {
	t.Helper()
	if msg.OpTag != ldapwire.OpSearchResultEntry {
		t.Fatalf("response tag 0x%02x, want an entry", msg.OpTag)
	}
	_, name, rest := element(t, msg.Body)
	_, list, _ := element(t, rest)
	attrs = map[string][]string{}
	for len(list) > 0 {
		var attr []byte
		_, attr, list = element(t, list)
		_, typ, vals := element(t, attr)
		_, set, _ := element(t, vals)
		values := []string{}
		for len(set) > 0 {
			var v []byte
			_, v, set = element(t, set)
			values = append(values, string(v))
		}
		attrs[string(typ)] = values
	}
	return string(name), attrs
}

// Building a proxy in front of fake servers.

// healthLog is a HealthReporter that remembers what it heard.
type healthLog struct {
	mu     sync.Mutex
	failed []string
}

func (h *healthLog) OperationFailed(s *backend.Server, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed = append(h.failed, fmt.Sprintf("%s: %v", s.Name, err))
}

func (h *healthLog) OperationDeclined(s *backend.Server, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed = append(h.failed, fmt.Sprintf("%s declined: %s", s.Name, reason))
}

func (h *healthLog) reports() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.failed...)
}

// testEnv is a proxy forwarding to fake servers; ds, srv and pool are
// the first one's.
type testEnv struct {
	ds     *fakeDS
	srv    *backend.Server
	pool   *backend.Pool
	dss    []*fakeDS
	pools  []*backend.Pool
	reg    *backend.Registry
	p      *Proxy
	health *healthLog
}

// newEnv starts a fake server with entries per search and a proxy in front
// of it, with a failover router; pc and cfg get test defaults where zero.
func newEnv(t *testing.T, entries int, cfg Config, pc backend.PoolConfig) *testEnv {
	t.Helper()
	return newEnvN(t, 1, entries, cfg, pc)
}

// newEnvN is newEnv with n servers, ds1 to dsn, in failover order.
func newEnvN(t *testing.T, n, entries int, cfg Config, pc backend.PoolConfig) *testEnv {
	t.Helper()
	if pc.Conns == 0 {
		pc.Conns = 1
	}
	if pc.BindConns == 0 {
		pc.BindConns = 1
	}
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = 2 * time.Second
	}
	if pc.OperationTimeout == 0 {
		pc.OperationTimeout = 2 * time.Second
	}
	pc.BindDN, pc.Password = fakeBindDN, fakePassword
	e := &testEnv{health: &healthLog{}}
	var servers []*backend.Server
	var order []int
	for i := range n {
		ds := startFakeDS(t, entries)
		srv := &backend.Server{Name: fmt.Sprintf("ds%d", i+1), Address: ds.addr(), Loops: evlooptest.Loops()}
		pool := backend.NewPool(srv, pc)
		t.Cleanup(pool.Close)
		e.dss, e.pools = append(e.dss, ds), append(e.pools, pool)
		servers, order = append(servers, srv), append(order, i)
	}
	e.ds, e.srv, e.pool = e.dss[0], servers[0], e.pools[0]
	e.reg = backend.NewRegistry(servers, nil)
	alg, err := balancer.New("failover", balancer.Flat(order), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OperationTimeout == 0 {
		cfg.OperationTimeout = 2 * time.Second
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 2 * time.Second
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.p = New(cfg, e.reg, &route.Router{Default: alg}, e.health, nil, log)
	return e
}

// untilStats waits for the pool's stats to satisfy cond.
func (e *testEnv) untilStats(t *testing.T, d time.Duration, what string, cond func(backend.PoolStats) bool) {
	t.Helper()
	untilPoolStats(t, e.pool, e.srv.Name, d, what, cond)
}

// untilPoolStats waits for a pool's stats to satisfy cond.
func untilPoolStats(t *testing.T, pool *backend.Pool, name string, d time.Duration, what string, cond func(backend.PoolStats) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := pool.Stats()
		if cond(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool %s: %s: not after %s (stats %+v)", name, what, d, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testSink collects one operation's responses.
type testSink struct {
	mu      sync.Mutex
	frames  [][]byte
	grew    chan struct{} // closed and replaced at each response
	ended   chan struct{}
	endings int
}

func newSink() *testSink { return &testSink{ended: make(chan struct{}), grew: make(chan struct{})} }

func (s *testSink) SendMessage(msg ldapwire.Message, id int32) {
	s.add(msg.WithID(nil, id))
}

func (s *testSink) Send(frame []byte) {
	s.add(append([]byte(nil), frame...))
}

func (s *testSink) add(frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endings > 0 {
		panic("response after Ended")
	}
	s.frames = append(s.frames, frame)
	close(s.grew)
	s.grew = make(chan struct{})
}

func (s *testSink) Flush() {}

func (s *testSink) Ended(*Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endings++
	if s.endings == 1 {
		close(s.ended)
	}
}

// session is one test client: its message IDs and its leases.
type session struct {
	t      *testing.T
	p      *Proxy
	leases Leases
	nextID int32
	ident  *Identity // the identity its requests carry; nil for anonymous
	bindAs *Identity // the identity of the simple bind in progress
}

func (e *testEnv) session(t *testing.T) *session {
	s := &session{t: t, p: e.p}
	t.Cleanup(s.leases.Close)
	return s
}

// op is one operation started by a session.
type op struct {
	t    *testing.T
	req  *Request
	sink *testSink
	id   int32
}

// start sends the request encode builds with the session's next message ID.
func (s *session) start(encode func(id int32) []byte) *op {
	s.t.Helper()
	return s.startWith(encode, nil)
}

// startWith is start with prepare, when not nil, completing the request.
func (s *session) startWith(encode func(id int32) []byte, prepare func(*Request)) *op {
	s.t.Helper()
	s.nextID++
	raw := encode(s.nextID)
	msg, err := ldapwire.Parse(raw)
	if err != nil {
		s.t.Fatalf("test request: %v", err)
	}
	sink := newSink()
	ident := s.ident
	if ident == nil {
		ident = Anonymous
	}
	req := &Request{Msg: msg, Raw: raw, Identity: ident, Sink: sink, Leases: &s.leases, ConnID: 1,
		Route: route.Operation{Tag: msg.OpTag, TargetDN: msg.TargetDN(), Controls: msg.Controls}}
	if msg.OpTag == ldapwire.OpBindRequest {
		req.BindAs = s.bindAs
	}
	if prepare != nil {
		prepare(req)
	}
	s.p.Start(req)
	return &op{t: s.t, req: req, sink: sink, id: s.nextID}
}

// wait waits for the operation's end and returns its responses.
func (o *op) wait(d time.Duration) []ldapwire.Message {
	o.t.Helper()
	select {
	case <-o.sink.ended:
	case <-time.After(d):
		o.t.Fatalf("operation %d not ended after %s", o.id, d)
	}
	return o.responses()
}

// untilResponses waits for the operation's first n responses.
func (o *op) untilResponses(n int, d time.Duration) {
	o.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		o.sink.mu.Lock()
		got, ch := len(o.sink.frames), o.sink.grew
		o.sink.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			o.t.Fatalf("operation %d: %d responses after %s, want %d", o.id, got, d, n)
		}
	}
}

// pending reports whether the operation has not ended.
func (o *op) pending() bool {
	select {
	case <-o.sink.ended:
		return false
	default:
		return true
	}
}

// responses parses what the sink received so far.
func (o *op) responses() []ldapwire.Message {
	o.t.Helper()
	o.sink.mu.Lock()
	defer o.sink.mu.Unlock()
	msgs := make([]ldapwire.Message, len(o.sink.frames))
	for i, f := range o.sink.frames {
		msg, err := ldapwire.Parse(f)
		if err != nil {
			o.t.Fatalf("response %d: %v", i, err)
		}
		if msg.ID != o.id {
			o.t.Errorf("response %d has message ID %d, want %d", i, msg.ID, o.id)
		}
		msgs[i] = msg
	}
	return msgs
}

// done checks that msgs end with exactly one final response of tag and
// returns its result; it reports the entries before it.
func done(t *testing.T, msgs []ldapwire.Message, tag byte) (ldapwire.Result, ldapwire.Message, []ldapwire.Message) {
	t.Helper()
	if len(msgs) == 0 {
		t.Fatalf("no response")
	}
	last := msgs[len(msgs)-1]
	if last.OpTag != tag {
		t.Fatalf("final response tag 0x%02x, want 0x%02x", last.OpTag, tag)
	}
	for i, m := range msgs[:len(msgs)-1] {
		if ldapwire.IsFinal(m.OpTag) {
			t.Fatalf("response %d (tag 0x%02x) is final but not last", i, m.OpTag)
		}
	}
	res, err := ldapwire.ParseResult(last.Body)
	if err != nil {
		t.Fatalf("final response: %v", err)
	}
	return res, last, msgs[:len(msgs)-1]
}

// responseCookie is the paged-results cookie of a final response, "" when none.
func responseCookie(t *testing.T, msg ldapwire.Message) string {
	t.Helper()
	c, ok := ldapwire.FindControl(msg.Controls, ldapwire.OIDPagedResults)
	if !ok {
		t.Fatalf("final response has no paged results control")
	}
	_, cookie, err := ldapwire.ParsePagedValue(c.Value)
	if err != nil {
		t.Fatal(err)
	}
	return string(cookie)
}

// entryDNs lists the DNs of entries.
func entryDNs(t *testing.T, msgs []ldapwire.Message) []string {
	t.Helper()
	var dns []string
	for _, m := range msgs {
		dn, _ := entryOf(t, m)
		dns = append(dns, dn)
	}
	return dns
}

// wantDNs is entries from..to-1 of base.
func wantDNs(base string, from, to int) []string {
	var dns []string
	for i := from; i < to; i++ {
		dns = append(dns, entryDN(i, base))
	}
	return dns
}

func sameStrings(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// waitFor waits up to waitLong for cond.
func waitFor(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
