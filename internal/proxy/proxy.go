// Package proxy forwards one client operation at a time to a backend server:
// it asks the router for candidates, sends the raw request on a pooled
// connection with the client's identity attached, streams the responses back
// and retries reads on the next candidate when a server fails.
package proxy

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/route"
)

// Identity is who a client is bound as, with the Proxied Authorization
// control that carries it on shared connections.
type Identity struct {
	DN      string // "" for anonymous and for a "u:" authorization ID
	AuthzID string // "dn:<DN>" or "u:<name>" (RFC 4513, 5.2.1.8); "" for anonymous
	control []byte
	// postRead is control followed by the Post-Read control, made on
	// first use (replicated.go).
	postRead atomic.Pointer[[]byte]
	// simpleBind is set when a simple bind gave the identity: its
	// operations may go on a connection that such a bind left bound as DN
	// (backend.Pool.BoundConn), without a control.
	simpleBind bool
}

// Anonymous is the identity of clients that have not bound.
var Anonymous = NewIdentity("")

// NewIdentity prepares the identity of a client bound as name: a DN, or in
// client-bind mode also a user name Active Directory accepts
// (alice@EXAMPLE.TEST, EXAMPLE\alice), whose authorization ID is "u:name".
// The anonymous identity is carried as the authzId "dn:" (RFC 4513,
// 5.2.1.8: an empty DN), which OpenLDAP and 389 Directory Server both
// accept; 389 refuses the empty authzId.
func NewIdentity(name string) *Identity {
	authzID := "dn:" + name
	if name != "" && !strings.Contains(name, "=") {
		authzID = "u:" + name
	}
	ident := &Identity{DN: name, AuthzID: authzID, control: ldapwire.ProxiedAuthzControl(authzID)}
	if name == "" {
		ident.AuthzID = ""
	}
	return ident
}

// NewSimpleBindIdentity is the identity a successful simple bind as dn
// gives.
func NewSimpleBindIdentity(dn string) *Identity {
	ident := NewIdentity(dn)
	ident.simpleBind = dn != ""
	return ident
}

// boundDN is the DN of a connection bound as this identity that may carry
// its operations, or "" (anonymous, SASL, proxied only).
func (id *Identity) boundDN() string {
	if !id.simpleBind {
		return ""
	}
	return id.DN
}

// Sink receives the responses of one client operation. No method may block:
// they run on backend connection readers shared by many clients.
type Sink interface {
	// SendMessage queues msg with the client's message ID id; it is written
	// at the next Flush (the backend reader flushes after each read batch).
	SendMessage(msg ldapwire.Message, id int32)
	// Send queues a whole frame, already carrying the client's message ID,
	// and flushes. The frame is copied.
	Send(frame []byte)
	backend.Flusher
	// Ended is called once when the operation is over, last.
	Ended(req *Request)
}

// HealthReporter hears about failed operations (passive health).
type HealthReporter interface {
	OperationFailed(s *backend.Server, err error)
	// OperationDeclined: the server answered an operation busy or
	// unavailable; reason says how.
	OperationDeclined(s *backend.Server, reason string)
}

// Outcome describes how an operation ended, for logs and metrics.
type Outcome struct {
	Server    string // backend that answered, "" when none
	Algorithm string
	Code      int  // result code sent to the client, -1 when none
	Attempts  int  // servers tried
	Failover  bool // answered by another server than the first candidate
	Elapsed   time.Duration
	Failed    []string // servers whose attempt failed (not sent, lost, timed out), in order
}

// Observer hears about every forwarded operation.
type Observer interface {
	Forwarded(req *Request, out Outcome)
}

// Config holds the forwarding parameters.
type Config struct {
	OperationTimeout time.Duration
	ConnectTimeout   time.Duration
	MaxAttempts      int // servers tried for one operation; default 3
	// MaxPerServer caps operations in flight to one server (0: no cap);
	// an operation finding every candidate at the cap is answered busy.
	MaxPerServer int64
	// BindTimeout, when shorter, replaces OperationTimeout for binds.
	BindTimeout time.Duration
	// SearchTimeLimit, when not 0, caps a whole search however steadily
	// its entries arrive (OperationTimeout measures silence); long-lived
	// searches are exempt.
	SearchTimeLimit time.Duration
	// LeaseIdle ends a client's leased connection whose paged or VLV
	// cursors were not used for this long (0: DefaultLeaseIdle).
	LeaseIdle time.Duration
}

// DefaultLeaseIdle is how long unused cursors keep a lease by default.
const DefaultLeaseIdle = 5 * time.Minute

// Proxy forwards operations. Its router can be replaced at run time.
type Proxy struct {
	cfg      atomic.Pointer[Config] // replaced whole on reload; read through conf()
	registry *backend.Registry
	router   atomic.Pointer[route.Router]
	health   HealthReporter
	observer Observer
	log      *slog.Logger
	warned   sync.Map // server name + misbehaviour already logged
}

// New builds a Proxy.
func New(cfg Config, reg *backend.Registry, router *route.Router, health HealthReporter, obs Observer, log *slog.Logger) *Proxy {
	p := &Proxy{registry: reg, health: health, observer: obs, log: log}
	p.SetConfig(cfg)
	p.router.Store(router)
	return p
}

// SetConfig replaces the timeouts and limits for operations that start afterwards.
func (p *Proxy) SetConfig(cfg Config) {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.LeaseIdle <= 0 {
		cfg.LeaseIdle = DefaultLeaseIdle
	}
	p.cfg.Store(&cfg)
}

// conf returns the settings in force.
func (p *Proxy) conf() *Config { return p.cfg.Load() }

// SetRouter replaces the routing rules for operations that start afterwards.
func (p *Proxy) SetRouter(r *route.Router) { p.router.Store(r) }

// isRead reports whether an operation may be sent again to another server
// after its connection failed: it changes nothing on the server.
func isRead(req *Request) bool {
	switch req.Msg.OpTag {
	case ldapwire.OpSearchRequest, ldapwire.OpCompareRequest, ldapwire.OpBindRequest:
		return true
	case ldapwire.OpExtendedRequest:
		return string(req.Msg.ExtendedOID()) == ldapwire.OIDWhoAmI
	}
	return false
}

// WhoAmI is the answer to "Who am I?" for a client of identity id, which
// ldapmux gives itself on shared connections (the servers would name the
// connection, not the client), written as the servers write it: 389
// Directory Server puts a space after "dn:" ("dn: uid=..."), and its
// clients may count on it. The first server whose type is known, in the
// configured order, decides. forward is true instead when the client's
// operations go on a connection of its own (client-bind mode, a session
// the server restricts), whose server answers as it would directly.
func (p *Proxy) WhoAmI(id *Identity, ls *Leases) (answer string, forward bool) {
	caps := p.knownCapabilities()
	if ls != nil && ls.bound.Load() || caps != nil && caps.Err == nil && caps.Mode == backend.ModeClientBind {
		return "", true
	}
	dn, isDN := strings.CutPrefix(id.AuthzID, "dn:")
	if isDN && caps != nil && caps.Type == backend.Type389DS {
		return "dn: " + dn, false
	}
	return id.AuthzID, false
}

// knownCapabilities are those of the first server, in the configured
// order, whose capabilities are known; nil when none are.
func (p *Proxy) knownCapabilities() *backend.Capabilities {
	for _, s := range p.registry.Snapshot().Servers {
		if caps := s.Server.Capabilities(); caps != nil {
			return caps
		}
	}
	return nil
}
