package frontend

import (
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/proxy"
)

// cancelOperation answers a Cancel request (RFC 3909) itself, since the message ID
// it names belongs to the client's connection, not to the shared server
// connection: the operation is abandoned on its server as an abandon would
// be and answered with canceled; the Cancel's own answer follows once that
// operation ended (cancelEnded).
func (s *Session) cancelOperation(msg ldapwire.Message) {
	target, err := msg.CancelTarget()
	if err != nil {
		s.reply(msg, ldapwire.ProtocolError, "malformed cancel request: "+err.Error())
		return
	}
	s.mu.Lock()
	req := s.ops[target]
	switch {
	case req == nil:
		s.mu.Unlock()
		s.reply(msg, ldapwire.NoSuchOperation, "message ID not found") // as OpenLDAP words it
		return
	case req.Msg.OpTag == ldapwire.OpBindRequest:
		s.mu.Unlock()
		s.reply(msg, ldapwire.CannotCancel, "a bind cannot be canceled")
		return
	}
	delete(s.ops, target) // as for an abandon: out of the map, req is never reused
	if s.cancels == nil {
		s.cancels = make(map[*proxy.Request]int32)
	}
	s.cancels[req] = msg.ID
	s.mu.Unlock()
	s.srv.proxy.Cancel(req)
}

// takeCancel returns the message ID of the Cancel waiting for req to end,
// if any. Caller holds mu.
func (s *Session) takeCancel(req *proxy.Request) (int32, bool) {
	id, ok := s.cancels[req]
	if ok {
		delete(s.cancels, req)
	}
	return id, ok
}

// cancelEnded answers Cancel id once the operation it named has ended:
// success when ldapmux cut it short, tooLate when the server's own final
// response came first.
func (s *Session) cancelEnded(req *proxy.Request, id int32) {
	code := ldapwire.Success
	if req.ResultCode() != ldapwire.Canceled {
		code = ldapwire.TooLate
	}
	s.Send(ldapwire.AppendResult(nil, id, ldapwire.OpExtendedResponse, code, ""))
	s.observeLocal(ldapwire.Message{ID: id, OpTag: ldapwire.OpExtendedRequest}, code)
}
