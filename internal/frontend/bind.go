package frontend

import (
	"strings"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/proxy"
)

// bind checks a client's credentials on a backend bind connection. Once the
// backend accepts them, the client's next operations carry its DN; a failed
// bind leaves the client anonymous (RFC 4511, 4.2.1).
func (s *Session) bind(msg ldapwire.Message) {
	s.supersedeBind()
	br, err := ldapwire.ParseBind(msg.Body)
	if err != nil || br.Auth != ldapwire.AuthSASL {
		s.sasl.Close() // any other bind aborts a SASL negotiation (RFC 4513, 5.2.1.2)
	}
	prev := s.ident.Swap(proxy.Anonymous) // until a bind succeeds, and after one fails (RFC 4511, 4.2.1)
	// Paged and VLV cursors belong to the identity that opened them, but
	// for those on the client's own connection, where a bind a server
	// answers goes in client-bind mode (Leases.RetireForBind).
	if s.forwardsBind(br, err) {
		s.leases.RetireForBind()
	} else {
		s.leases.Retire()
	}
	switch {
	case err != nil:
		s.reply(msg, ldapwire.ProtocolError, "malformed bind request")
	case br.Version != 3:
		s.reply(msg, ldapwire.ProtocolError, "historical protocol version requested, use LDAPv3 instead") // as OpenLDAP words it
	case br.Auth == ldapwire.AuthSASL:
		s.forwardSASL(msg, string(br.Mechanism))
	case br.Auth != ldapwire.AuthSimple:
		s.reply(msg, ldapwire.AuthMethodNotSupported, "unknown authentication method")
	case len(br.Name) == 0 && len(br.Password) == 0:
		s.reply(msg, ldapwire.Success, "")
	case len(br.Password) == 0:
		// RFC 4513, 5.1.2: a DN without a password must not authenticate.
		s.unauthenticatedBind(msg)
	case s.refuseInsecure(msg):
	default:
		s.forwardBind(msg, string(br.Name), prev)
	}
}

// forwardsBind reports whether bind will pass a bind on to a server rather
// than answer it: the cases of bind's switch, decided before it runs,
// since the leases must be retired first.
func (s *Session) forwardsBind(br ldapwire.BindRequest, err error) bool {
	switch {
	case err != nil || br.Version != 3:
		return false
	case br.Auth == ldapwire.AuthSASL:
		return !cleartextMechanisms[strings.ToUpper(string(br.Mechanism))] || !s.refusesPasswords()
	case br.Auth != ldapwire.AuthSimple || len(br.Name) == 0 && len(br.Password) == 0:
		return false
	case len(br.Password) == 0:
		return !s.srv.conf().AllowUnauthenticatedBinds
	}
	return !s.refusesPasswords()
}

// forwardBind sends a simple bind to a backend and sets the identity from
// its result: the bind's DN, anonymous after a failure, or prev (the
// identity before the bind) when the server that refused it leaves the
// session as it was (proxy.Request.KeptSession).
func (s *Session) forwardBind(msg ldapwire.Message, dn string, prev *proxy.Identity) {
	ident := proxy.NewSimpleBindIdentity(dn)
	s.start(msg, func(req *proxy.Request) {
		req.BindAs = ident
		req.OnBindResult = func(code int) {
			switch {
			case code == ldapwire.Success:
				s.bound(req, ident)
			case req.KeptSession() && prev != nil:
				s.bound(req, prev)
			default:
				s.bound(req, proxy.Anonymous)
			}
		}
	})
}

// forwardSASL sends one round of a SASL bind to a server: the first round
// to the server the router chooses, on a connection of its own, the next
// rounds of the same mechanism on that connection (proxy.SASLExchange). The
// client stays anonymous until the server accepts it, then acts as the
// authorization identity the server reports.
func (s *Session) forwardSASL(msg ldapwire.Message, mechanism string) {
	if cleartextMechanisms[strings.ToUpper(mechanism)] && s.refuseInsecure(msg) {
		s.sasl.Close()
		return
	}
	s.start(msg, func(req *proxy.Request) {
		req.SASL = &s.sasl
		req.SASLBound = func(ident *proxy.Identity) { s.bound(req, ident) }
	})
}

// cleartextMechanisms carry the password itself: require-secure-bind
// applies to them as to simple binds.
var cleartextMechanisms = map[string]bool{"PLAIN": true, "LOGIN": true}
