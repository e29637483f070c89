package backend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// IdentityMode is how a client's identity reaches a server.
type IdentityMode int32

const (
	// ModeAuto chooses from the server's root DSE (configuration only):
	// proxied authorization when the server supports the control, client
	// bind otherwise.
	ModeAuto IdentityMode = iota
	// ModeProxied sends every operation on shared connections bound as
	// the service account, with a Proxied Authorization v2 control.
	ModeProxied
	// ModeClientBind performs the client's own bind on a connection leased
	// to the client, which then carries its operations without a control.
	ModeClientBind
)

func (m IdentityMode) String() string {
	switch m {
	case ModeProxied:
		return "proxied-authorization"
	case ModeClientBind:
		return "client-bind"
	}
	return "auto"
}

// Server types, detected from the root DSE or configured.
const (
	TypeOpenLDAP = "openldap"
	Type389DS    = "389ds"
	TypeAD       = "active-directory"
	TypeGeneric  = "generic"
)

// IdentitySettings are what the configuration says of a server's identity
// handling; zero values mean auto.
type IdentitySettings struct {
	Mode IdentityMode
	Type string // "" to detect
	// ProxyCheckDN, when set, is an identity the service account must be
	// able to proxy as: proven at connect, before the server is used.
	ProxyCheckDN string
}

// Capabilities are what ldapmux found out about a server at connect time.
type Capabilities struct {
	Type         string
	Vendor       string // vendorName and vendorVersion, when the server says
	Mode         IdentityMode
	ProxiedAuthz bool // Proxied Authorization v2 in supportedControl
	// PasswordPolicy: the password policy control is in supportedControl
	// (OpenLDAP lists it once its ppolicy module is loaded, 389 always).
	PasswordPolicy bool
	Err            error     // why the server cannot serve its identity mode
	At             time.Time // when this was found
	// namingContexts are the root DSE's, parsed; nil when it lists none.
	namingContexts []*ldap.DN
	// extensions are the root DSE's supportedExtension values.
	extensions []string
}

// Advertises reports whether the server lists the extended operation oid
// in its root DSE (true before anything was read: nothing is known).
func (c *Capabilities) Advertises(oid string) bool {
	return c == nil || slices.Contains(c.extensions, oid)
}

// CannotAssume reports whether the server refuses proxied authorization as
// dn, so that a client bound as dn must have a connection bound as itself.
// 389 Directory Server refuses to assume its root DN ("Proxy dn should not
// be rootdn"), which names no entry in its data: any DN outside the
// server's naming contexts is taken for one (when the root DSE lists
// none, the default root DN, cn=Directory Manager).
func (c *Capabilities) CannotAssume(dn string) bool {
	if c == nil || c.Type != Type389DS || c.Mode != ModeProxied || dn == "" {
		return false
	}
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return false
	}
	if len(c.namingContexts) == 0 {
		return parsed.EqualFold(ds389RootDN)
	}
	for _, nc := range c.namingContexts {
		if nc.EqualFold(parsed) || nc.AncestorOfFold(parsed) {
			return false
		}
	}
	return true
}

// KeepsSessionAfter reports whether the server leaves a connection's
// session as it was when a bind fails with code, rather than anonymous as
// RFC 4511 (4.2.1) has it: 389 Directory Server rejects a bind whose DN is
// not one (invalidDNSyntax) or that carries an unknown critical control
// (unavailableCriticalExtension) before it touches the session (seen with
// 2.3.1). slapd makes the session anonymous after any failed bind.
func (c *Capabilities) KeepsSessionAfter(code int) bool {
	return c != nil && c.Type == Type389DS &&
		(code == ldapwire.InvalidDNSyntax || code == ldapwire.UnavailableCriticalExtension)
}

// refusedDNs are the DNs whose proxied authorization a server refused
// (authorizationDenied: outside the service account's authzTo in
// OpenLDAP), in lower case; at most maxRefusedDNs, an arbitrary one
// forgotten for each past that.
type refusedDNs struct {
	any atomic.Bool // set once a DN is noted: until then binds need not lock
	mu  sync.Mutex
	set map[string]struct{}
}

// maxRefusedDNs bounds the refused DNs kept per server.
const maxRefusedDNs = 1024

// NoteRefused records that the server refused to let the proxy assume dn,
// and reports whether it was not known yet.
func (s *Server) NoteRefused(dn string) bool {
	key := strings.ToLower(dn)
	r := &s.refused
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, known := r.set[key]; known {
		return false
	}
	if r.set == nil {
		r.set = make(map[string]struct{})
	}
	if len(r.set) >= maxRefusedDNs {
		for k := range r.set {
			delete(r.set, k)
			break
		}
	}
	r.set[key] = struct{}{}
	r.any.Store(true)
	return true
}

// Refused reports whether the server refused to let the proxy assume dn
// (NoteRefused).
func (s *Server) Refused(dn string) bool {
	r := &s.refused
	if !r.any.Load() {
		return false
	}
	key := strings.ToLower(dn)
	r.mu.Lock()
	defer r.mu.Unlock()
	_, refused := r.set[key]
	return refused
}

// ds389RootDN is 389 Directory Server's default root DN.
var ds389RootDN = &ldap.DN{RDNs: []*ldap.RelativeDN{{Attributes: []*ldap.AttributeTypeAndValue{{Type: "cn", Value: "Directory Manager"}}}}}

// Summary is a one-line description for status and logs.
func (c *Capabilities) Summary() string {
	s := fmt.Sprintf("%s, identity %s", c.Type, c.Mode)
	if c.PasswordPolicy {
		s += ", password policy"
	}
	if c.Vendor != "" {
		s += " (" + c.Vendor + ")"
	}
	return s
}

// capsState holds a server's detected capabilities.
type capsState struct{ p atomic.Pointer[Capabilities] }

// Capabilities returns what was detected at the last connect, or nil
// before the first.
func (s *Server) Capabilities() *Capabilities { return s.caps.p.Load() }

// ClientBind reports whether the server is used in client-bind mode.
func (s *Server) ClientBind() bool {
	c := s.caps.p.Load()
	return c != nil && c.Err == nil && c.Mode == ModeClientBind
}

// detectEvery is how often a connect reads the root DSE again.
const detectEvery = time.Minute

// needsDetection reports whether the next service-bound connect should
// read the root DSE.
func (s *Server) needsDetection() bool {
	c := s.caps.p.Load()
	return c == nil || c.Err != nil || time.Since(c.At) > detectEvery
}

// ErrIdentityMode wraps why a server cannot serve its identity mode.
var ErrIdentityMode = errors.New("server cannot serve the identity mode")

// rootDSEAttrs are read to recognise a server.
var rootDSEAttrs = []string{"objectClass", "vendorName", "vendorVersion", "supportedControl",
	"supportedExtension", "forestFunctionality", "domainControllerFunctionality", "supportedCapabilities", "namingContexts"}

// detect reads the root DSE on a connection bound as the service account,
// before its reader starts, chooses the identity mode and proves it: in
// proxied-authorization mode the service account must be able to proxy
// (as anonymous, and as ProxyCheckDN when set).
func (c *Conn) detect(r *ldapwire.Reader) *Capabilities {
	caps := &Capabilities{At: time.Now(), Type: TypeGeneric}
	dse, err := c.roundTrip(r, ldapwire.AppendBaseSearch(nil, c.nextID+1, "", rootDSEAttrs, nil))
	if err != nil {
		caps.Err = fmt.Errorf("%w: reading the root DSE: %v", ErrIdentityMode, err)
		return caps
	}
	set := c.server.Identity
	caps.Type, caps.Vendor = recognise(dse)
	if set.Type != "" {
		caps.Type = set.Type
	}
	caps.ProxiedAuthz = slices.Contains(dse["supportedcontrol"], ldapwire.OIDProxiedAuthzV2)
	caps.PasswordPolicy = slices.Contains(dse["supportedcontrol"], ldapwire.OIDPasswordPolicy)
	caps.extensions = dse["supportedextension"]
	for _, nc := range dse["namingcontexts"] {
		if parsed, err := ldap.ParseDN(nc); err == nil && len(parsed.RDNs) > 0 {
			caps.namingContexts = append(caps.namingContexts, parsed)
		}
	}
	caps.Mode = set.Mode
	if caps.Mode == ModeAuto {
		caps.Mode = ModeClientBind
		if caps.ProxiedAuthz {
			caps.Mode = ModeProxied
		}
	}
	if caps.Mode == ModeProxied {
		caps.Err = c.proveProxy(r, caps.ProxiedAuthz, set.ProxyCheckDN)
	}
	return caps
}

// recognise names the server type and vendor from its root DSE.
func recognise(dse map[string][]string) (typ, vendor string) {
	vendor = strings.TrimSpace(strings.Join(append(dse["vendorname"], dse["vendorversion"]...), " "))
	lower := strings.ToLower(vendor)
	switch {
	case len(dse["forestfunctionality"]) > 0 || len(dse["domaincontrollerfunctionality"]) > 0 ||
		slices.Contains(dse["supportedcapabilities"], "1.2.840.113556.1.4.800"):
		return TypeAD, vendor
	case strings.Contains(lower, "389") || strings.Contains(lower, "red hat") || strings.Contains(lower, "fedora"):
		return Type389DS, vendor
	case slices.ContainsFunc(dse["objectclass"], func(v string) bool { return strings.EqualFold(v, "OpenLDAProotDSE") }):
		return TypeOpenLDAP, vendor
	}
	return TypeGeneric, vendor
}

// proveProxy sends base searches of the root DSE with a critical Proxied
// Authorization control: a service account that may not proxy is found
// before any client's operation fails with it.
func (c *Conn) proveProxy(r *ldapwire.Reader, advertised bool, checkDN string) error {
	if !advertised {
		return fmt.Errorf("%w: proxied-authorization: the server does not list Proxied Authorization (%s) in supportedControl; use identity-mode: client-bind",
			ErrIdentityMode, ldapwire.OIDProxiedAuthzV2)
	}
	if _, err := c.roundTrip(r, ldapwire.AppendBaseSearch(nil, c.nextID+1, "", []string{"1.1"}, ldapwire.ProxiedAuthzControl("dn:"))); err != nil && !anonymousRefused(err) {
		return proxyRefused("dn:", err)
	}
	if checkDN == "" {
		return nil
	}
	// The user's own entry, read as that user: OpenLDAP refuses the control
	// (123) when the service account may not proxy; 389 Directory Server
	// evaluates its proxy right on each entry and silently returns none.
	entry, err := c.roundTrip(r, ldapwire.AppendBaseSearch(nil, c.nextID+1, checkDN, []string{"1.1"}, ldapwire.ProxiedAuthzControl("dn:"+checkDN)))
	switch {
	case err != nil:
		return proxyRefused("dn:"+checkDN, err)
	case entry == nil:
		return proxyRefused("dn:"+checkDN, errors.New("its own entry is not visible to it through the control"))
	}
	return nil
}

// anonymousRefused reports whether err is the server applying its own rules
// for anonymous clients to the proxied anonymous read (slapd's `require
// authc` answers unwillingToPerform, "authentication required"): the
// control was honoured, as a direct anonymous client would be refused the
// same. Only refusing the control itself (unavailableCriticalExtension,
// authorizationDenied, protocolError) or failing to answer fails the proof.
func anonymousRefused(err error) bool {
	var res *resultError
	if !errors.As(err, &res) {
		return false
	}
	switch res.code {
	case ldapwire.UnavailableCriticalExtension, ldapwire.AuthorizationDenied, ldapwire.ProtocolError:
		return false
	}
	return true
}

// resultError is a result other than success to a search of roundTrip.
type resultError struct {
	code       int
	diagnostic string
}

func (e *resultError) Error() string {
	return fmt.Sprintf("result %d (%s) %s", e.code, ldapwire.ResultName(e.code), e.diagnostic)
}

// proxyRefused explains a failed proof of the right to proxy as id.
func proxyRefused(id string, err error) error {
	return fmt.Errorf("%w: the service account cannot use proxied authorization as %q: %v (grant it the right to proxy: authzTo in OpenLDAP, a proxy ACI in 389 Directory Server)",
		ErrIdentityMode, id, err)
}

// roundTrip sends one search before the reader starts and returns the
// values of the entry it returned (nil when none), attribute names in lower
// case; a result other than success is an error.
func (c *Conn) roundTrip(r *ldapwire.Reader, req []byte) (map[string][]string, error) {
	c.nextID++
	if _, err := c.nc.Write(req); err != nil {
		return nil, err
	}
	var values map[string][]string // nil until an entry arrives
	for {
		frame, err := r.Next()
		if err != nil {
			return nil, err
		}
		msg, err := ldapwire.Parse(frame)
		if err != nil {
			return nil, err
		}
		switch msg.OpTag {
		case ldapwire.OpSearchResultEntry:
			if values == nil {
				values = map[string][]string{}
			}
			if err := ldapwire.EntryValues(msg, func(a, v []byte) {
				k := strings.ToLower(string(a))
				values[k] = append(values[k], string(v))
			}); err != nil {
				return nil, err
			}
		case ldapwire.OpSearchResultReference, ldapwire.OpIntermediateResponse:
		default:
			res, err := ldapwire.ParseResult(msg.Body)
			if err != nil {
				return nil, err
			}
			if res.Code != ldapwire.Success {
				return nil, &resultError{res.Code, string(res.Diagnostic)}
			}
			return values, nil
		}
	}
}

// Detect reads the server's root DSE again when it was not read lately (or
// the last reading found a problem), on a connection of its own bound as
// the service account, and returns what is known. err is why no
// connection could be made.
func (p *Pool) Detect(ctx context.Context) (*Capabilities, error) {
	if !p.server.needsDetection() {
		return p.server.Capabilities(), nil
	}
	c, err := Dial(ctx, p.server, OpConn, p.cfg.BindDN, p.cfg.Password, p.cfg.ConnectTimeout, p.cfg.MaxPDU)
	if err != nil {
		if caps := p.server.Capabilities(); caps != nil && caps.Err != nil && errors.Is(err, ErrIdentityMode) {
			return caps, nil
		}
		return nil, err
	}
	c.closeGracefully()
	return p.server.Capabilities(), nil
}
