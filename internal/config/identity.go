package config

import "fmt"

// Identity modes: how a client's identity reaches a server.
const (
	IdentityAuto       = "auto"
	IdentityProxied    = "proxied-authorization"
	IdentityClientBind = "client-bind"
)

// Server types.
const (
	ServerTypeAuto     = "auto"
	ServerTypeOpenLDAP = "openldap"
	ServerType389DS    = "389ds"
	ServerTypeAD       = "active-directory"
	ServerTypeGeneric  = "generic"
)

var (
	identityModes = []string{IdentityAuto, IdentityProxied, IdentityClientBind}
	serverTypes   = []string{ServerTypeAuto, ServerTypeOpenLDAP, ServerType389DS, ServerTypeAD, ServerTypeGeneric}
)

// ServerIdentity says how clients' identities reach a server and what kind
// of directory it is. Both keys exist per server and at the top level (the
// default of every server).
type ServerIdentity struct {
	// IdentityMode is auto (the default: proxied-authorization when the
	// server's root DSE lists the Proxied Authorization control,
	// client-bind otherwise), proxied-authorization (shared connections
	// bound as the service account, every operation with a Proxied
	// Authorization control) or client-bind (the client's own bind is
	// performed on a connection leased to it, which carries its
	// operations: the only way to serve Active Directory).
	IdentityMode string `yaml:"identity-mode"`
	// ServerType is auto (the default: recognised from the root DSE),
	// openldap, 389ds, active-directory or generic.
	ServerType string `yaml:"server-type"`
}

func (s ServerIdentity) validate(v *validator, prefix string) {
	v.oneOf(prefix+"identity-mode", "identity mode", s.IdentityMode, identityModes)
	v.oneOf(prefix+"server-type", "server type", s.ServerType, serverTypes)
}

// validateIdentity checks the identity settings of the file and of every
// server.
func (c *Config) validateIdentity(v *validator) {
	c.ServerIdentity.validate(v, "")
	for i, s := range c.Servers {
		s.ServerIdentity.validate(v, fmt.Sprintf("servers[%d].", i))
	}
	if c.ServiceAccount.ProxyCheckDN != "" {
		v.optionalDN("service-account.proxy-check-dn", c.ServiceAccount.ProxyCheckDN)
	}
}

// setIdentityDefaults gives every server the file's settings where it has
// none, and auto where neither says.
func (c *Config) setIdentityDefaults() {
	setDefault(&c.IdentityMode, IdentityAuto)
	setDefault(&c.ServerType, ServerTypeAuto)
	for i := range c.Servers {
		setDefault(&c.Servers[i].IdentityMode, c.IdentityMode)
		setDefault(&c.Servers[i].ServerType, c.ServerType)
	}
}
