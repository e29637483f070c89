package proxy

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// AccessLog writes one line per operation to a slog handler, whatever the
// handler's level. It is an Observer. It records who did what and how it
// ended, never request values: no password, no filter, no attribute value.
type AccessLog struct {
	h   atomic.Pointer[slog.Handler] // nil: off
	now func() time.Time
}

// NewAccessLog returns an access log that is off until SetHandler.
func NewAccessLog() *AccessLog { return &AccessLog{now: time.Now} }

// SetHandler sends the following lines to h; nil turns the log off.
func (l *AccessLog) SetHandler(h slog.Handler) {
	if h == nil {
		l.h.Store(nil)
		return
	}
	l.h.Store(&h)
}

// Forwarded implements Observer.
func (l *AccessLog) Forwarded(req *Request, out Outcome) {
	hp := l.h.Load()
	if hp == nil {
		return
	}
	r := slog.NewRecord(l.now(), slog.LevelInfo, "access", 0)
	r.AddAttrs(requestAttrs(req)...)
	r.AddAttrs(outcomeAttrs(out)...)
	_ = (*hp).Handle(context.Background(), r)
}

// requestAttrs describe the operation: connection and message IDs, client,
// identity, type and target.
func requestAttrs(req *Request) []slog.Attr {
	client := ""
	if req.Route.ClientIP.IsValid() {
		client = req.Route.ClientIP.String()
	}
	bindDN := ""
	if req.Identity != nil {
		bindDN = req.Identity.DN
		if bindDN == "" && req.Identity.AuthzID != "" {
			bindDN = req.Identity.AuthzID
		}
	}
	attrs := []slog.Attr{
		slog.Uint64("conn", req.ConnID), slog.Int("msgid", int(req.Msg.ID)),
		slog.String("client", client), slog.String("bind-dn", bindDN),
		slog.String("op", ldapwire.OperationName(req.Msg.OpTag)),
		slog.String("dn", string(req.Route.TargetDN)),
	}
	if oid := req.Route.ExtendedOID; len(oid) > 0 {
		attrs = append(attrs, slog.String("oid", string(oid)))
	}
	return attrs
}

// outcomeAttrs describe how the operation ended.
func outcomeAttrs(out Outcome) []slog.Attr {
	server := out.answeredBy()
	if server == "" {
		server = "-"
	}
	attrs := []slog.Attr{
		slog.Int("result", out.Code), slog.String("result-name", ldapwire.ResultName(out.Code)),
		slog.Float64("elapsed-ms", math.Round(float64(out.Elapsed)/1e3)/1e3),
		slog.String("server", server), slog.String("algorithm", out.Algorithm),
		slog.Int("attempts", out.Attempts), slog.Bool("failover", out.Failover),
	}
	if len(out.Failed) > 0 {
		attrs = append(attrs, slog.String("failed", strings.Join(out.Failed, ",")))
	}
	return attrs
}
