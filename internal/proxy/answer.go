package proxy

import (
	"fmt"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// matchResponse makes the final response of an operation the one its
// request calls for. A server that answers with another type (Samba's AD DC
// answers a search carrying an unsupported critical control with an
// ExtendedResponse) would leave the client waiting for the right one
// forever: its result code and diagnostic are sent in a response of the
// right type instead.
func (p *Proxy) matchResponse(c *call, msg ldapwire.Message) ldapwire.Message {
	want := ldapwire.ResponseTag(c.req.Msg.OpTag)
	if want == 0 || msg.OpTag == want {
		return msg
	}
	code, text := ldapwire.Other, fmt.Sprintf("server %s answered with an unreadable response of the wrong type", c.srv.Name)
	if res, err := ldapwire.ParseResult(msg.Body); err == nil {
		code, text = res.Code, string(res.Diagnostic)
	}
	p.warnOnce(c.srv, "wrong-type", "server answered with a response of the wrong type; the client gets its result in the right one",
		"request", ldapwire.OperationName(c.req.Msg.OpTag), "response-tag", fmt.Sprintf("0x%02x", msg.OpTag), "code", code)
	fixed, err := ldapwire.Parse(ldapwire.AppendResult(nil, msg.ID, want, code, text))
	if err != nil {
		return msg
	}
	return fixed
}

// expectedPartial reports whether a response that does not end its
// operation belongs to it: entries and references answer searches only;
// intermediate responses any operation (extended operations and controls
// such as sync use them). Others are dropped.
func (p *Proxy) expectedPartial(c *call, msg ldapwire.Message) bool {
	if msg.OpTag == ldapwire.OpIntermediateResponse || c.req.Msg.OpTag == ldapwire.OpSearchRequest {
		return true
	}
	p.warnOnce(c.srv, "stray-partial", "server sent a search result to an operation that is not a search; dropped",
		"request", ldapwire.OperationName(c.req.Msg.OpTag), "response-tag", fmt.Sprintf("0x%02x", msg.OpTag))
	return false
}

// filterRootDSE removes from a root DSE entry the extensions and controls
// that ldapmux does not pass on.
func filterRootDSE(msg ldapwire.Message) ldapwire.Message {
	rootEntry := len(msg.Body) >= 2 && msg.Body[0] == 0x04 && msg.Body[1] == 0 // objectName ""
	if !rootEntry || !ldapwire.EntryDropsAny(msg, rootDSEFilter) {             // the common case: nothing to copy
		return msg
	}
	b, err := ldapwire.AppendEntryFiltered(nil, msg, msg.ID, rootDSEFilter)
	if err != nil {
		return msg
	}
	filtered, err := ldapwire.Parse(b)
	if err != nil {
		return msg
	}
	return filtered
}

// warnOnce logs a misbehaviour of a server the first time it is seen.
func (p *Proxy) warnOnce(srv *backend.Server, what, msg string, args ...any) {
	if _, seen := p.warned.LoadOrStore(srv.Name+"\x00"+what, true); seen {
		return
	}
	p.log.Warn(msg, append([]any{"server", srv.Name, "logged", "once per server"}, args...)...)
}

// resultCode is the result code of a response, -1 when unreadable.
func resultCode(msg ldapwire.Message) int {
	if res, err := ldapwire.ParseResult(msg.Body); err == nil {
		return res.Code
	}
	return -1
}
