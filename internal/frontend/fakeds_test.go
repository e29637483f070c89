package frontend

import (
	"context"
	"fmt"
	"github.com/ldapmux/ldapmux/internal/evloop/evlooptest"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/balancer"
	"github.com/ldapmux/ldapmux/internal/fakeldap"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/proxy"
	"github.com/ldapmux/ldapmux/internal/route"
)

// Service account the proxy binds its connections with.
const (
	serviceDN       = "cn=ldapmux,dc=example,dc=com"
	servicePassword = "secret"
)

// fakeDS is a fake directory server in front of which the tests run a real
// frontend and proxy. It accepts the service account and the users in
// users; a client bind for a DN in held is answered only once that DN's
// gate is opened (never, unless the test opens it). It records every
// request it receives, with the connection it came on and its Proxied
// Authorization control, and every bind response it sends, in one ordered
// log.
type fakeDS struct {
	t    testing.TB
	ln   net.Listener
	wg   sync.WaitGroup
	stop chan struct{} // closed when the server closes: held binds give up

	mu      sync.Mutex // mu guards the fields below
	conns   []*fakeConn
	log     []fakeEvent
	users   map[string]string        // DN → password of the client binds accepted
	held    map[string]chan struct{} // DN → gate of the binds held until it closes
	entries int                      // entries of a paged search
	changed chan struct{}            // closed and replaced whenever the state above changes
}

// fakeConn is one connection as the fake server sees it.
type fakeConn struct {
	id      int
	nc      net.Conn
	wmu     sync.Mutex // serialises writes (held binds answer from their own goroutine)
	closed  bool       // guarded by fakeDS.mu
	boundAs string     // the DN of the connection's last successful bind; guarded by fakeDS.mu
	counter int        // last paged cookie issued; guarded by fakeDS.mu
}

// fakeEvent is one request received, or one bind response sent.
type fakeEvent struct {
	conn     int
	tag      byte   // the request's operation tag, or OpBindResponse for a response sent
	msgID    int32  // message ID on the server connection
	dn       string // bind name, or target DN
	oid      string // extended operation name
	boundAs  string // the connection's identity when the request came ("" when never bound)
	proxied  bool   // the request carried a Proxied Authorization control
	authzID  string // that control's value
	paged    bool   // the request carried a paged results control
	code     int    // result code of a bind response
	response bool
}

// anonymous reports whether the request ran with anonymous rights: on a
// connection never bound and without a control, or on the service
// account's with the anonymous authzId.
func (e fakeEvent) anonymous() bool {
	if e.boundAs == "" {
		return !e.proxied
	}
	return e.boundAs == serviceDN && e.proxied && e.authzID == "dn:"
}

func (e fakeEvent) String() string {
	if e.response {
		return fmt.Sprintf("conn %d: bind response %d for %q", e.conn, e.code, e.dn)
	}
	return fmt.Sprintf("conn %d (bound as %q): request 0x%02x %q oid %q proxied %v %q", e.conn, e.boundAs, e.tag, e.dn, e.oid, e.proxied, e.authzID)
}

// startFakeDS listens on 127.0.0.1:0 until the test ends.
func startFakeDS(t testing.TB) *fakeDS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ds := &fakeDS{t: t, ln: ln, stop: make(chan struct{}), users: map[string]string{},
		held: map[string]chan struct{}{}, entries: 3, changed: make(chan struct{})}
	ds.wg.Add(1)
	go ds.accept()
	t.Cleanup(ds.close)
	return ds
}

func (ds *fakeDS) addr() string { return ds.ln.Addr().String() }

// addUser lets dn bind with password.
func (ds *fakeDS) addUser(dn, password string) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.users[dn] = password
}

// hold delays the answers to dn's binds until the returned function is
// called.
func (ds *fakeDS) hold(dn string) (release func()) {
	gate := make(chan struct{})
	ds.mu.Lock()
	ds.held[dn] = gate
	ds.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			ds.mu.Lock()
			delete(ds.held, dn)
			ds.mu.Unlock()
			close(gate)
		})
	}
}

// events is a copy of the log so far.
func (ds *fakeDS) events() []fakeEvent {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return append([]fakeEvent(nil), ds.log...)
}

// until waits for cond, evaluated under the server's lock, to hold; it
// fails the test after d.
func (ds *fakeDS) until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		ds.mu.Lock()
		ok, ch := cond(), ds.changed
		ds.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("fake server: %s: not after %s; log:\n%s", what, d, ds.dump())
		}
	}
}

// findLocked is the index in the log of the first event matching match, -1 when
// none. Caller must hold mu.
func (ds *fakeDS) findLocked(match func(fakeEvent) bool) int {
	for i, e := range ds.log {
		if match(e) {
			return i
		}
	}
	return -1
}

// event is the first event matching match; the test fails when there is none.
func (ds *fakeDS) event(t testing.TB, match func(fakeEvent) bool) fakeEvent {
	t.Helper()
	ds.mu.Lock()
	i := ds.findLocked(match)
	var e fakeEvent
	if i >= 0 {
		e = ds.log[i]
	}
	ds.mu.Unlock()
	if i < 0 {
		t.Fatalf("fake server: no such request; log:\n%s", ds.dump())
	}
	return e
}

func (ds *fakeDS) dump() string {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	var s string
	for i, e := range ds.log {
		s += strconv.Itoa(i) + ": " + e.String() + "\n"
	}
	return s
}

// isClosedLocked reports whether the server saw connection id close.
func (ds *fakeDS) isClosedLocked(id int) bool { return ds.conns[id].closed }

func (ds *fakeDS) notifyLocked() {
	close(ds.changed)
	ds.changed = make(chan struct{})
}

func (ds *fakeDS) close() {
	close(ds.stop)
	ds.ln.Close()
	ds.mu.Lock()
	for _, c := range ds.conns {
		c.nc.Close()
	}
	ds.mu.Unlock()
	ds.wg.Wait()
}

func (ds *fakeDS) accept() {
	defer ds.wg.Done()
	for {
		nc, err := ds.ln.Accept()
		if err != nil {
			return
		}
		ds.mu.Lock()
		c := &fakeConn{id: len(ds.conns), nc: nc}
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
	}, nil)
}

func (c *fakeConn) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.Write(b)
}

// answer records msg and returns its responses (a held bind is answered
// later, from a goroutine).
func (ds *fakeDS) answer(c *fakeConn, msg ldapwire.Message) []byte {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	defer ds.notifyLocked()
	ctrl, proxied := ldapwire.FindControl(msg.Controls, ldapwire.OIDProxiedAuthzV2)
	e := fakeEvent{conn: c.id, tag: msg.OpTag, msgID: msg.ID, dn: string(msg.TargetDN()), oid: string(msg.ExtendedOID()),
		boundAs: c.boundAs, proxied: proxied, authzID: string(ctrl.Value), paged: ldapwire.HasControl(msg.Controls, ldapwire.OIDPagedResults)}
	switch msg.OpTag {
	case ldapwire.OpBindRequest:
		b, err := ldapwire.ParseBind(msg.Body)
		e.dn = string(b.Name)
		ds.log = append(ds.log, e)
		code := ldapwire.InvalidCredentials
		if want, ok := ds.users[e.dn]; err == nil && b.Auth == ldapwire.AuthSimple && (ok || e.dn == serviceDN) {
			if e.dn == serviceDN {
				want = servicePassword
			}
			if string(b.Password) == want {
				code = ldapwire.Success
			}
		}
		if e.dn == serviceDN && code == ldapwire.Success {
			c.boundAs = serviceDN // user binds, on bind connections, carry no other request
		}
		gate := ds.held[e.dn]
		if gate == nil {
			ds.log = append(ds.log, fakeEvent{conn: c.id, tag: ldapwire.OpBindResponse, msgID: msg.ID, dn: e.dn, code: code, response: true})
			return ldapwire.AppendResult(nil, msg.ID, ldapwire.OpBindResponse, code, "")
		}
		go func() {
			select {
			case <-gate:
			case <-ds.stop:
				return
			}
			ds.mu.Lock()
			ds.log = append(ds.log, fakeEvent{conn: c.id, tag: ldapwire.OpBindResponse, msgID: msg.ID, dn: e.dn, code: code, response: true})
			ds.notifyLocked()
			ds.mu.Unlock()
			c.write(ldapwire.AppendResult(nil, msg.ID, ldapwire.OpBindResponse, code, ""))
		}()
		return nil
	case ldapwire.OpAbandonRequest:
		ds.log = append(ds.log, e)
		return nil
	}
	ds.log = append(ds.log, e)
	switch msg.OpTag {
	case ldapwire.OpSearchRequest:
		return ds.search(c, msg)
	case ldapwire.OpExtendedRequest:
		if e.oid == ldapwire.OIDWhoAmI { // a server names the connection's identity
			return ldapwire.AppendExtendedResult(nil, msg.ID, ldapwire.Success, "dn:"+serviceDN)
		}
	}
	return ldapwire.AppendResult(nil, msg.ID, ldapwire.ResponseTag(msg.OpTag), ldapwire.UnwillingToPerform, "not in the fake")
}

// fakeRootDSE lists, besides what ldapmux passes through, Start Transaction
// and the proxied authorization control, which ldapmux refuses from clients.
var fakeRootDSE = []ldapwire.Attribute{
	{Type: "objectClass", Values: []string{"top"}},
	{Type: "supportedControl", Values: []string{ldapwire.OIDProxiedAuthzV2, ldapwire.OIDPagedResults}},
	{Type: "supportedExtension", Values: []string{ldapwire.OIDStartTxn, ldapwire.OIDWhoAmI, ldapwire.OIDPasswordModify}},
}

// search answers the root DSE with fakeRootDSE, a paged search with one
// entry per page and a cookie until ds.entries were sent, any other search
// with one entry. Caller must hold mu.
func (ds *fakeDS) search(c *fakeConn, msg ldapwire.Message) []byte {
	sr, err := ldapwire.ParseSearch(msg.Body)
	if err != nil {
		return ldapwire.AppendResult(nil, msg.ID, ldapwire.OpSearchResultDone, ldapwire.ProtocolError, err.Error())
	}
	base := string(sr.BaseDN)
	if base == "" && sr.Scope == ldapwire.ScopeBase {
		out := ldapwire.AppendSearchEntry(nil, msg.ID, "", fakeRootDSE, false)
		return ldapwire.AppendResult(out, msg.ID, ldapwire.OpSearchResultDone, ldapwire.Success, "")
	}
	if pc, ok := ldapwire.FindControl(msg.Controls, ldapwire.OIDPagedResults); ok {
		_, cookie, _ := ldapwire.ParsePagedValue(pc.Value)
		next := 0
		if len(cookie) > 0 {
			next, _ = strconv.Atoi(string(cookie))
		}
		out := ldapwire.AppendSearchEntry(nil, msg.ID, "uid=e"+strconv.Itoa(next)+","+base, nil, false)
		more := ""
		if next+1 < ds.entries {
			more = strconv.Itoa(next + 1)
		}
		return ldapwire.AppendResultControls(out, msg.ID, ldapwire.OpSearchResultDone, ldapwire.Success, "",
			ldapwire.AppendControls(ldapwire.AppendControl(nil, ldapwire.OIDPagedResults, false, ldapwire.AppendPagedValue(nil, 0, more))))
	}
	out := ldapwire.AppendSearchEntry(nil, msg.ID, "uid=e0,"+base, nil, false)
	return ldapwire.AppendResult(out, msg.ID, ldapwire.OpSearchResultDone, ldapwire.Success, "")
}

// BER encoders for what ldapwire does not build.

// searchRequest encodes a subtree search of base for every entry, with
// the given controls.
func searchRequest(id int32, base string, ctrls ...[]byte) []byte {
	body := ldapwire.AppendElement(nil, 0x04, []byte(base))
	body = ldapwire.AppendInteger(body, 0x0a, ldapwire.ScopeSub)
	body = ldapwire.AppendInteger(body, 0x0a, 0) // neverDerefAliases
	body = ldapwire.AppendInteger(body, 0x02, 0) // sizeLimit
	body = ldapwire.AppendInteger(body, 0x02, 0) // timeLimit
	body = ldapwire.AppendElement(body, 0x01, []byte{0})
	body = ldapwire.AppendElement(body, ldapwire.FilterPresent, []byte("objectClass"))
	body = ldapwire.AppendElement(body, 0x30, nil)
	var controls []byte
	if len(ctrls) > 0 {
		var all []byte
		for _, c := range ctrls {
			all = append(all, c...)
		}
		controls = ldapwire.AppendElement(nil, 0xa0, all)
	}
	return ldapwire.AppendMessage(nil, id, ldapwire.AppendElement(nil, ldapwire.OpSearchRequest, body), controls, nil)
}

// pagedSearch encodes a paged search of base, one entry a page.
func pagedSearch(id int32, base, cookie string) []byte {
	return searchRequest(id, base, ldapwire.AppendControl(nil, ldapwire.OIDPagedResults, true, ldapwire.AppendPagedValue(nil, 1, cookie)))
}

// rootDSESearch encodes a base search of the root DSE for all attributes.
func rootDSESearch(id int32) []byte {
	return ldapwire.AppendBaseSearch(nil, id, "", nil, nil)
}

// env is a frontend and a proxy forwarding to one fake server.
type env struct {
	ds   *fakeDS
	srv  *backend.Server
	pool *backend.Pool
	fe   *Server
	addr string
}

// newEnv starts a fake server, a proxy with a failover router in front of
// it and a frontend on 127.0.0.1:0; pc and lim get test defaults where
// zero. The pool has one operation connection and bindConns bind
// connections (1 when 0).
func newEnv(t *testing.T, pc proxy.Config, lim Limits, bindConns int) *env {
	t.Helper()
	ds := startFakeDS(t)
	srv := &backend.Server{Name: "ds1", Address: ds.addr(), Loops: evlooptest.Loops()}
	pool := backend.NewPool(srv, backend.PoolConfig{Conns: 1, BindConns: max(bindConns, 1), ConnectTimeout: 2 * time.Second,
		OperationTimeout: 5 * time.Second, BindDN: serviceDN, Password: servicePassword})
	t.Cleanup(pool.Close)
	reg := backend.NewRegistry([]*backend.Server{srv}, nil)
	alg, err := balancer.New("failover", balancer.Flat([]int{0}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if pc.OperationTimeout == 0 {
		pc.OperationTimeout = 5 * time.Second
	}
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = 2 * time.Second
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p := proxy.New(pc, reg, &route.Router{Default: alg}, noHealth{}, nil, log)
	fe := NewServer(Config{Limits: lim}, evlooptest.Loops(), p, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		fe.ServeListener(ln, &Listener{})
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		fe.Shutdown(ctx)
		<-served
	})
	return &env{ds: ds, srv: srv, pool: pool, fe: fe, addr: ln.Addr().String()}
}

// untilLeased waits for the pool to hold n leased connections.
func (e *env) untilLeased(t *testing.T, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := e.pool.Stats()
		if st.Leased == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d leased connections, want %d", what, st.Leased, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type noHealth struct{}

func (noHealth) OperationFailed(*backend.Server, error) {}

func (noHealth) OperationDeclined(*backend.Server, string) {}

// client is a raw LDAP client of the frontend.
type client struct {
	t    *testing.T
	nc   net.Conn
	r    *ldapwire.Reader
	kept map[int32][]ldapwire.Message // responses read, by message ID, not yet asked for
}

func (e *env) dial(t *testing.T) *client {
	t.Helper()
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: ldapwire.NewReader(nc, 0)}
}

// send writes the requests in one write.
func (c *client) send(reqs ...[]byte) {
	c.t.Helper()
	var b []byte
	for _, r := range reqs {
		b = append(b, r...)
	}
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next response, failing the test after d.
func (c *client) read(d time.Duration) ldapwire.Message {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(d))
	frame, err := c.r.Next()
	if err != nil {
		c.t.Fatalf("reading a response: %v", err)
	}
	msg, err := ldapwire.Parse(append([]byte(nil), frame...))
	if err != nil {
		c.t.Fatal(err)
	}
	return msg
}

// readDone reads the responses of message id up to its final one, which
// must have tag; it returns the final result and the entries. Responses to
// other messages read meanwhile are kept for their own readDone: responses
// to different operations may come in any order.
func (c *client) readDone(id int32, tag byte) (ldapwire.Result, ldapwire.Message, []ldapwire.Message) {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if msgs := c.kept[id]; len(msgs) > 0 && ldapwire.IsFinal(msgs[len(msgs)-1].OpTag) {
			delete(c.kept, id)
			final := msgs[len(msgs)-1]
			if final.OpTag != tag {
				c.t.Fatalf("message %d: final response 0x%02x, want 0x%02x", id, final.OpTag, tag)
			}
			res, err := ldapwire.ParseResult(final.Body)
			if err != nil {
				c.t.Fatal(err)
			}
			return res, final, msgs[:len(msgs)-1]
		}
		msg := c.read(time.Until(deadline))
		if c.kept == nil {
			c.kept = map[int32][]ldapwire.Message{}
		}
		c.kept[msg.ID] = append(c.kept[msg.ID], msg)
	}
}

// bind binds as dn and returns the result code.
func (c *client) bind(id int32, dn, password string) int {
	c.t.Helper()
	c.send(ldapwire.AppendSimpleBind(nil, id, dn, password))
	res, _, _ := c.readDone(id, ldapwire.OpBindResponse)
	return res.Code
}

// whoAmI reads the answer to a "Who am I?" request id.
func (c *client) whoAmI(id int32) string {
	c.t.Helper()
	res, msg, _ := c.readDone(id, ldapwire.OpExtendedResponse)
	if res.Code != ldapwire.Success {
		c.t.Fatalf("Who am I?: result %d %s", res.Code, res.Diagnostic)
	}
	v, _, err := ldapwire.ParseExtendedValue(msg.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return string(v)
}

// pagedCookie is the cookie of a paged search's final response.
func pagedCookie(t *testing.T, msg ldapwire.Message) string {
	t.Helper()
	c, ok := ldapwire.FindControl(msg.Controls, ldapwire.OIDPagedResults)
	if !ok {
		t.Fatal("no paged results control in the final response")
	}
	_, cookie, err := ldapwire.ParsePagedValue(c.Value)
	if err != nil {
		t.Fatal(err)
	}
	return string(cookie)
}
