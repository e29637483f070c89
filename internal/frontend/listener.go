package frontend

import (
	"crypto/tls"
	"net/netip"
	"slices"
	"sync/atomic"
)

// Listener says how the connections of one listener are secured.
type Listener struct {
	TLS      *TLSSource // the certificate; nil when none is configured
	LDAPS    bool       // TLS from the first byte (needs TLS)
	StartTLS bool       // the StartTLS operation is offered (needs TLS)
	// TrustedProxies are the networks whose connections start with a PROXY
	// protocol v2 header; empty means PROXY protocol is off.
	TrustedProxies []netip.Prefix
}

// trusts reports whether a connection from ip must send a PROXY header.
func (l *Listener) trusts(ip netip.Addr) bool {
	return slices.ContainsFunc(l.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(ip) })
}

// TLSSource hands every new TLS handshake the current server configuration,
// so that certificates (and client CAs, minimum version) can be replaced
// while clients are connected: Set is the reload hook.
type TLSSource struct {
	cur  atomic.Pointer[tls.Config]
	base *tls.Config
}

// NewTLSSource starts with cfg, which must hold a certificate.
func NewTLSSource(cfg *tls.Config) *TLSSource {
	s := &TLSSource{}
	s.cur.Store(cfg)
	s.base = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return s.cur.Load(), nil
	}}
	return s
}

// Set replaces the configuration used by handshakes from now on;
// established connections keep theirs. cfg must not be modified afterwards.
func (s *TLSSource) Set(cfg *tls.Config) { s.cur.Store(cfg) }

// Current is the configuration new handshakes use.
func (s *TLSSource) Current() *tls.Config { return s.cur.Load() }

// ServerConfig is the configuration to give tls.Server or tls.NewListener:
// each handshake takes the current one.
func (s *TLSSource) ServerConfig() *tls.Config { return s.base }
