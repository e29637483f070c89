package proxy

import (
	"context"
	"fmt"
	"strings"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// stateKind says whether an operation needs state the server keeps per
// connection, and so a leased connection (lease.go).
type stateKind uint8

const (
	stateless stateKind = iota
	// cursorOp starts or continues a paged-results or VLV cursor.
	cursorOp
	// longLived is a search that may last as long as the client wants:
	// sync refreshAndPersist (RFC 4533), persistent search or Active
	// Directory's change notification. It has no operation timeout, and
	// its end is never held against the server.
	longLived
)

// Cursor key prefixes, so that a cookie and a context ID never collide.
const (
	pagedKey = "p"
	vlvKey   = "v"
)

// classify finds in a search's controls whether it needs a leased
// connection, and the cursor it continues ("" when it starts one).
// Requests without controls cost one comparison.
func classify(msg *ldapwire.Message) (kind stateKind, key string) {
	if msg.OpTag != ldapwire.OpSearchRequest || msg.Controls == nil {
		return stateless, ""
	}
	if c, ok := ldapwire.FindControl(msg.Controls, ldapwire.OIDSyncRequest); ok {
		if mode, err := ldapwire.ParseSyncRequestMode(c.Value); err != nil || mode != ldapwire.SyncRefreshOnly {
			return longLived, ""
		}
	}
	if _, ok := ldapwire.FindControl(msg.Controls, ldapwire.OIDPersistentSearch); ok {
		return longLived, ""
	}
	if _, ok := ldapwire.FindControl(msg.Controls, ldapwire.OIDADNotification); ok {
		return longLived, ""
	}
	if c, ok := ldapwire.FindControl(msg.Controls, ldapwire.OIDPagedResults); ok {
		_, cookie, err := ldapwire.ParsePagedValue(c.Value)
		return cursorOp, cursorKey(pagedKey, cookie, err)
	}
	if c, ok := ldapwire.FindControl(msg.Controls, ldapwire.OIDVLVRequest); ok {
		id, err := ldapwire.ParseVLVRequestContext(c.Value)
		return cursorOp, cursorKey(vlvKey, id, err)
	}
	return stateless, ""
}

// cursorKey is the key of a parsed cookie or context ID: "" when it is
// empty or could not be read.
func cursorKey(prefix string, id []byte, err error) string {
	if err != nil || len(id) == 0 {
		return ""
	}
	return prefix + string(id)
}

// responseCursor is the cursor a final search response leaves open on its
// server: a non-empty paged-results cookie or VLV context ID ("" when the
// state ended). said is false when the response carries neither control
// (an error such as busy): the server did not say the cursor ended, so the
// one the request continued is kept, still pointing at its connection.
func responseCursor(msg ldapwire.Message) (key string, said bool) {
	if msg.Controls == nil {
		return "", false
	}
	if c, ok := ldapwire.FindControl(msg.Controls, ldapwire.OIDPagedResults); ok {
		_, cookie, err := ldapwire.ParsePagedValue(c.Value)
		return cursorKey(pagedKey, cookie, err), true
	}
	if c, ok := ldapwire.FindControl(msg.Controls, ldapwire.OIDVLVResponse); ok {
		id, err := ldapwire.ParseVLVResponseContext(c.Value)
		return cursorKey(vlvKey, id, err), true
	}
	return "", false
}

// pinToCursor sends a request that continues a cursor to the lease that
// holds it: the only server, and connection, where the cookie means
// anything. It reports false when the request was answered instead.
func (p *Proxy) pinToCursor(req *Request) bool {
	l, lost, clash := req.Leases.cursor(req.cursor)
	if l == nil && strings.HasPrefix(req.cursor, vlvKey) && !lost {
		req.cursor = "" // a context ID is a hint: a server that never issued it starts afresh
		return true
	}
	if l == nil {
		// OpenLDAP's words for a cookie of no search its connection has
		// open (it says protocolError "paged results cookie is invalid" to
		// some, by its connection's counters): no search of this client's
		// left it, or it ended (a new bind or an idle limit also end them,
		// docs/configuration.md).
		code, msg := ldapwire.UnwillingToPerform, "paged results cookie is invalid or old"
		switch {
		case lost:
			code, msg = ldapwire.UnwillingToPerform, "the server connection that held this paged search was lost; start the search again"
		case clash:
			code, msg = ldapwire.UnwillingToPerform, "paged results cookie is ambiguous: two servers gave this connection's searches the same cookie; start the search again"
		}
		req.out.Code = p.fail(req, code, msg)
		p.complete(req)
		return false
	}
	p.pinTo(req, l)
	return true
}

// preferCursorServer puts first, among the candidates of a request that
// opens a cursor, the server where the session already has cursors open.
func preferCursorServer(req *Request) {
	srv := req.Leases.cursorServer()
	if srv == nil {
		return
	}
	for i, idx := range req.cands {
		if req.snap.Servers[idx].Server == srv {
			copy(req.cands[1:i+1], req.cands[:i])
			req.cands[0] = idx
			return
		}
	}
}

// errLeaseLost is why a pinned request found its leased connection closed.
var errLeaseLost = fmt.Errorf("the connection leased to this client for its paged search or VLV state was lost: %w", backend.ErrConnClosed)

// leasedConn returns the connection leased to req's client on srv, leasing
// one when the session has none there; an anonymous client's request that
// needs a connection only for itself (ownConnection) gets an unbound one.
// Without mayWait it reports errMustWait instead of dialing.
func (p *Proxy) leasedConn(req *Request, srv *backend.Server, mayWait bool) (*lease, attemptResult) {
	if l := req.pinned; l != nil {
		return p.usePinned(req, l)
	}
	if req.state == stateless && req.Identity.AuthzID == "" {
		return p.anonymousOwnConn(req, srv, mayWait)
	}
	if l := req.Leases.take(srv, false); l != nil {
		return l, attemptResult{}
	}
	return p.newLease(req, srv, mayWait, lease{}, (*backend.Pool).Lease)
}

// newLease leases a connection on srv with dial and records it in the
// session as a copy of kind (direct, sticky); the session may already have
// got an equivalent one meanwhile, which is used instead.
func (p *Proxy) newLease(req *Request, srv *backend.Server, mayWait bool, kind lease,
	dial func(*backend.Pool, context.Context) (*backend.Conn, error)) (*lease, attemptResult) {
	ctx, cancel, res := p.waitContext(req, mayWait)
	if ctx == nil {
		return nil, res
	}
	defer cancel()
	pool := srv.Pool()
	conn, err := dial(pool, ctx)
	if err != nil {
		return nil, dialResult(req, err)
	}
	kind.srv, kind.pool, kind.conn = srv, pool, conn
	return recordLease(req, &kind)
}

// recordLease adds n, just leased, to req's session (Leases.addLease) and
// releases the spare connection, if any; the session being closed abandons
// req.
func recordLease(req *Request, n *lease) (*lease, attemptResult) {
	l, spare := req.Leases.addLease(n)
	if spare != nil {
		n.pool.ReleaseLease(spare)
	}
	if l == nil {
		return nil, attemptResult{status: abandoned}
	}
	return l, attemptResult{}
}

// rootDSEFilter keeps the root DSE's values that describe what passes
// through ldapmux: what it refuses is not advertised.
func rootDSEFilter(attr, value []byte) bool {
	switch {
	case strings.EqualFold(string(attr), "supportedExtension"):
		_, refused := RefusedExtensions[string(value)]
		return !refused
	case strings.EqualFold(string(attr), "supportedControl"):
		_, refused := RefusedControls[string(value)]
		return !refused
	}
	return true
}

// Extended operations and controls that act on the connection they arrive
// on rather than on one operation, which ldapmux refuses (unwillingToPerform)
// and removes from the root DSE; and the proxied authorization controls,
// which only ldapmux itself may send. Cancel, which names a message ID of
// the connection, is answered by ldapmux itself (frontend).
var (
	RefusedExtensions = map[string]string{
		ldapwire.OIDStartTxn: "Start Transaction",
		ldapwire.OIDEndTxn:   "End Transaction",
		ldapwire.OIDTurn:     "Turn",
	}
	RefusedControls = map[string]string{
		ldapwire.OIDTxnSpec:        "Transaction Specification",
		ldapwire.OIDProxiedAuthzV2: "Proxied Authorization",
		ldapwire.OIDProxiedAuthzV1: "Proxied Authorization (v1)",
	}
)

// readsOwnEntryOf389 reports whether req reads, on 389 Directory Server, an
// entry of the server's own — the root DSE (a base search) or its schema,
// cn=schema (any scope: it has no children) — in a search that is not
// long-lived. 389 shows those entries to no operation that carries proxied
// authorization unless the service account has the proxy right on them,
// and it refuses ACIs on cn=schema: such reads go on a connection bound as
// the client when the pool keeps one, else on an unbound one, as
// anonymous, which 389 lets read both. A paged one included: a single
// entry comes on the first page.
func readsOwnEntryOf389(req *Request, srv *backend.Server) bool {
	if req.Msg.OpTag != ldapwire.OpSearchRequest || req.state == longLived || len(req.Raw) > largeRequest {
		return false
	}
	if caps := srv.Capabilities(); caps == nil || caps.Type != backend.Type389DS {
		return false
	}
	return req.rootDSE || strings.EqualFold(strings.TrimSpace(string(req.Msg.TargetDN())), ds389SchemaDN)
}

// ds389SchemaDN is 389 Directory Server's subschema subentry.
const ds389SchemaDN = "cn=schema"

// isRootDSESearch reports whether msg reads the root DSE (a base search of
// the empty DN).
func isRootDSESearch(msg *ldapwire.Message) bool {
	if msg.OpTag != ldapwire.OpSearchRequest || len(msg.TargetDN()) != 0 {
		return false
	}
	scope, err := ldapwire.SearchScope(msg.Body)
	return err == nil && scope == ldapwire.ScopeBase
}
