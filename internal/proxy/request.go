package proxy

import (
	"context"
	"fmt"
	"github.com/ldapmux/ldapmux/internal/evloop"
	"sync"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/route"
)

// Request is one client operation to forward. Callers may reuse a Request
// (Reset) once its sink heard Ended, unless they abandoned it: an abandoned
// request may still be referenced by a late response and must be dropped.
type Request struct {
	Msg      ldapwire.Message
	Raw      []byte // the bytes Msg refers to, owned by the request
	Identity *Identity
	Route    route.Operation
	Sink     Sink
	ConnID   uint64
	// OnBindResult, for binds, hears the result code before the client does,
	// so that the new identity applies to the client's next operation.
	OnBindResult func(code int)
	// BindAs, for a simple bind, is the identity it gives when it
	// succeeds: the bind connection may then be kept bound as it
	// (backend.Pool.ReleaseBindAs).
	BindAs *Identity
	// Unauthenticated marks a simple bind with a DN and no password (RFC
	// 4513, 5.1.2), which gives no identity: the server's refusal reaches
	// the client as it is, its success as a refusal (refusedUnauthenticated).
	Unauthenticated bool
	// SASL, for SASL binds, is the client's negotiation; SASLBound hears
	// the identity of a successful one before the client hears of it.
	SASL      *SASLExchange
	SASLBound func(*Identity)
	// Leases, when not nil, are the client session's leased connections:
	// searches that need state kept per server connection (paging, VLV,
	// long-lived searches) run on them. Without it they share pooled
	// connections like any other operation.
	Leases *Leases
	// Loop, when not nil, is the event loop the client's requests are
	// handled on: a server connection read by the same loop is preferred.
	Loop *evloop.Loop
	// Batch, when not nil, is the event loop whose batch Start is called
	// in: a request written on the caller's goroutine may be left to the
	// batch's end (backend.Timing.Batch).
	Batch *evloop.Loop

	flight // the proxy's state while the operation is in progress
}

// flight is what the proxy keeps of an operation in progress.
type flight struct {
	proxy   *Proxy
	start   time.Time
	router  *route.Router
	snap    *backend.Snapshot
	cands   []int
	candBuf [16]int
	next    int // index in cands of the next server to try
	out     Outcome
	errs    []string // why servers failed, for the final error message
	allFull bool     // every failure so far was a server at its limit
	losses  int      // attempts lost or timed out after the request was sent
	call    *call    // reused by the next attempt unless spoiled
	state   stateKind
	// keptSession: a bind failed with an answer after which its server
	// leaves the session as it was (Capabilities.KeepsSessionAfter).
	keptSession bool
	cursor      string // the paged or VLV cursor it continues, "" for none
	pinned      *lease // the lease holding that cursor
	rootDSE     bool   // a read of the root DSE, whose advertised features are filtered
	// recordsWrite: a write whose success is recorded for read-your-writes;
	// postRead: it carries the proxy's Post-Read control (replicated.go).
	recordsWrite, postRead bool

	mu         sync.Mutex // mu guards the fields below
	abandoned  bool
	canceled   bool               // abandoned by a Cancel: the client is answered canceled
	cur        *call              // the attempt in flight
	cancelDial context.CancelFunc // stops waiting for a connection
}

// Reset clears req for another operation, keeping its buffers.
func (req *Request) Reset() {
	raw, call, errs := req.Raw[:0], req.call, req.errs[:0]
	*req = Request{Raw: raw}
	req.call, req.errs = call, errs
}

// begin prepares req to be forwarded by p.
func (req *Request) begin(p *Proxy) {
	req.proxy = p
	req.start = time.Now()
	req.router = p.router.Load() // before the snapshot: a reload publishes servers before routers
	req.snap = p.registry.Snapshot()
	if req.Leases != nil {
		req.state, req.cursor = classify(&req.Msg)
	}
	req.rootDSE = isRootDSESearch(&req.Msg)
	req.cands, req.out.Algorithm = req.router.Candidates(req.snap, &req.Route, req.candBuf[:0])
	if req.router.RecordsWrites(&req.Route) {
		req.recordsWrite, req.postRead = true, wantsPostRead(req)
	}
	req.out.Code = -1
	req.allFull = true
}

// KeptSession reports, to OnBindResult, whether the server that refused
// the bind leaves a session as it was after such a refusal: the client
// then keeps the identity it had, as on its own connection.
func (req *Request) KeptSession() bool { return req.keptSession }

// isCandidate reports whether srv is one of the servers req may go to.
func (req *Request) isCandidate(srv *backend.Server) bool {
	for _, i := range req.cands {
		if req.snap.Servers[i].Server == srv {
			return true
		}
	}
	return false
}

// newCall prepares an attempt on conn, reusing the last call when no
// connection can still refer to it.
func (req *Request) newCall(srv *backend.Server, conn *backend.Conn, l *lease, started int64) *call {
	c := req.call
	if c == nil {
		c = new(call)
		req.call = c
	}
	*c = call{req: req, srv: srv, conn: conn, lease: l, started: started}
	c.addsPolicy = c.addsPolicyRequest()
	return c
}

// spoil drops the call of an attempt that did not end with its final
// response: a connection or the timeout sweep may still hold it.
func (req *Request) spoil() { req.call = nil }

// note records why a server did not take the operation.
func (req *Request) note(srv *backend.Server, err error) {
	req.errs = append(req.errs, fmt.Sprintf("%s: %v", srv.Name, err))
}

// ResultCode is the result code the client was sent for the operation, -1
// when none (an abandoned operation); valid in Sink.Ended.
func (req *Request) ResultCode() int { return req.out.Code }

func (req *Request) wasCanceled() bool {
	req.mu.Lock()
	defer req.mu.Unlock()
	return req.canceled
}

func (req *Request) isAbandoned() bool {
	req.mu.Lock()
	defer req.mu.Unlock()
	return req.abandoned
}

// setDialCancel records how to stop waiting for a connection; it reports
// false when the operation is already abandoned.
func (req *Request) setDialCancel(cancel context.CancelFunc) bool {
	req.mu.Lock()
	defer req.mu.Unlock()
	req.cancelDial = cancel
	return !req.abandoned
}
