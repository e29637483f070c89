package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// status is how one attempt on one server ended.
type status int

const (
	answered  status = iota // the final response reached the client
	abandoned               // the client abandoned the operation or left
	notSent                 // no connection, or the request was not written
	lost                    // the connection failed after the request was sent
	timedOut                // no final response within the operation timeout
	full                    // the server is at its operation limit: not sent
)

// attemptResult is the end of one attempt.
type attemptResult struct {
	status    status
	code      int
	err       error
	delivered int // responses already passed to the client
}

// retryable reports whether another server may be tried after r.
func (r attemptResult) retryable(req *Request) bool {
	switch r.status {
	case notSent:
		return true
	case lost, timedOut:
		return r.delivered == 0 && isRead(req)
	}
	return false
}

// Forward sends req to a backend server chosen by the router and streams its
// responses to req.Sink. It returns when the operation is over.
func (p *Proxy) Forward(ctx context.Context, req *Request) Outcome {
	start := time.Now()
	router := p.router.Load() // before the snapshot: a reload publishes servers before routers
	snap := p.registry.Snapshot()
	var buf [16]int
	cands, alg := router.Candidates(snap, &req.Route, buf[:0])
	out := Outcome{Algorithm: alg, Code: -1}
	defer func() {
		out.Elapsed = time.Since(start)
		if p.observer != nil {
			p.observer.Forwarded(req, out)
		}
	}()
	if len(cands) == 0 {
		out.Code = p.fail(req, ldapwire.Unavailable, noServerMessage(snap))
		return out
	}
	var errs []string
	allFull := true
	for i, idx := range cands[:min(len(cands), p.conf().MaxAttempts)] {
		srv := snap.Servers[idx].Server
		res := p.attempt(ctx, srv, req)
		out.Attempts++
		switch res.status {
		case answered:
			out.Server, out.Code, out.Failover = srv.Name, res.code, i > 0
			router.Record(&req.Route, srv.Name, res.code, time.Now())
			return out
		case abandoned:
			return out
		case full: // busy, not failing: health is not told
			errs = append(errs, fmt.Sprintf("%s: %v", srv.Name, res.err))
			continue
		}
		allFull = false
		p.health.OperationFailed(srv, res.err)
		out.Failed = append(out.Failed, srv.Name)
		errs = append(errs, fmt.Sprintf("%s: %v", srv.Name, res.err))
		if !res.retryable(req) {
			out.Server = srv.Name
			code, msg := failureReply(srv, res)
			out.Code = p.fail(req, code, msg)
			return out
		}
		p.log.Debug("retrying on next server", "conn", req.ConnID, "msgid", req.Msg.ID, "server", srv.Name, "err", res.err)
	}
	code := ldapwire.Unavailable
	if allFull {
		code = ldapwire.Busy
	}
	out.Code = p.fail(req, code, "no backend server could take the operation: "+strings.Join(errs, "; "))
	return out
}

// attempt forwards req to one server and waits for the end.
func (p *Proxy) attempt(ctx context.Context, srv *backend.Server, req *Request) attemptResult {
	end, ok := srv.TryBegin(p.conf().MaxPerServer)
	if !ok {
		return attemptResult{status: full, err: errServerFull}
	}
	defer end()
	conn, err := p.connFor(ctx, srv, req)
	if err != nil {
		if ctx.Err() != nil {
			return attemptResult{status: abandoned}
		}
		if errors.Is(err, backend.ErrBusy) {
			return attemptResult{status: full, err: err}
		}
		return attemptResult{status: notSent, err: err}
	}
	if req.Msg.OpTag == ldapwire.OpBindRequest {
		defer srv.Pool().ReleaseBind(conn)
	}
	c := newCall(req)
	id, err := conn.Send(c, c.encode)
	if err != nil {
		return attemptResult{status: notSent, err: err}
	}
	return p.await(ctx, conn, id, c)
}

// connFor gets a bind connection for binds and a shared one for the rest.
func (p *Proxy) connFor(ctx context.Context, srv *backend.Server, req *Request) (*backend.Conn, error) {
	if req.Msg.OpTag != ldapwire.OpBindRequest {
		if c, err := srv.Pool().ReadyOpConn(); c != nil || err != nil {
			return c, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.conf().ConnectTimeout)
	defer cancel()
	if req.Msg.OpTag == ldapwire.OpBindRequest {
		return srv.Pool().BindConn(ctx)
	}
	return srv.Pool().OpConn(ctx)
}

// await waits for the call's end, the operation timeout or the client.
func (p *Proxy) await(ctx context.Context, conn *backend.Conn, id int32, c *call) attemptResult {
	limit := p.timeoutFor(c.req)
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case r := <-c.done:
		return r
	case <-timer.C:
		return c.interrupt(conn, id, timedOut, fmt.Errorf("no answer within %s", limit))
	case <-ctx.Done():
		return c.interrupt(conn, id, abandoned, ctx.Err())
	}
}

// failureReply chooses the result sent to the client after a failed attempt
// that may not be retried.
func failureReply(srv *backend.Server, r attemptResult) (int, string) {
	switch {
	case r.status == timedOut:
		return ldapwire.TimeLimitExceeded, fmt.Sprintf("no answer from server %s within the operation timeout; the operation was abandoned", srv.Name)
	case r.delivered > 0:
		return ldapwire.Unavailable, fmt.Sprintf("connection to server %s lost after %d responses", srv.Name, r.delivered)
	}
	return ldapwire.Unavailable, fmt.Sprintf("connection to server %s lost before its answer; the operation may or may not have been applied", srv.Name)
}

// fail answers the client with an error result (none for operations
// without a response) and returns the code sent.
func (p *Proxy) fail(req *Request, code int, msg string) int {
	tag := ldapwire.ResponseTag(req.Msg.OpTag)
	if tag == 0 {
		return -1
	}
	if req.OnBindResult != nil {
		req.OnBindResult(code)
	}
	req.Sink.Send(ldapwire.AppendResult(nil, req.Msg.ID, tag, code, msg))
	return code
}

// noServerMessage explains why no server is usable.
func noServerMessage(snap *backend.Snapshot) string {
	var b strings.Builder
	b.WriteString("no usable backend server")
	for i, s := range snap.Servers {
		sep := ": "
		if i > 0 {
			sep = "; "
		}
		fmt.Fprintf(&b, "%s%s %s (%s)", sep, s.Name, s.Health.State, s.Health.Reason)
	}
	return b.String()
}

// errInterrupted marks attempts stopped by the proxy.
var errInterrupted = errors.New("operation interrupted")
