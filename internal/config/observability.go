package config

import (
	"crypto/tls"
	"fmt"
	"path/filepath"
	"strings"
)

// Observability holds the admin HTTP listener, cn=monitor access and logging
// extras. Its keys sit at the top level of the file.
type Observability struct {
	// Admin is the HTTP listener for metrics, probes, the status page and
	// reloads. Off unless an address is given.
	Admin Admin `yaml:"admin"`
	// Monitor controls the cn=monitor subtree ldapmux serves itself.
	Monitor Monitor `yaml:"monitor"`
}

// Admin is the admin HTTP listener. Without tls and token-file it has no
// protection of its own: bind it to loopback or a management network.
type Admin struct {
	// Address is host:port; empty (the default) means no admin listener.
	// It serves /metrics, /healthz, /readyz, /api/status, /api/reload and
	// the status page at /.
	Address string `yaml:"address"`
	// TLS serves the admin endpoints over HTTPS; with client-ca-file only
	// clients holding a certificate it signed get in. Files are read again
	// on every reload.
	TLS ListenerTLS `yaml:"tls"`
	// TokenFile holds the admin token (at least 16 characters). When set,
	// every endpoint but /healthz and /readyz asks for it, as a bearer
	// token or as the password of HTTP basic authentication (any user
	// name). Read again on every reload.
	TokenFile string `yaml:"token-file"`
	// Token is the token read from TokenFile.
	Token Secret `yaml:"-"`
}

// minAdminToken is the shortest admin token accepted.
const minAdminToken = 16

// Protected reports whether the admin endpoints ask for a token or a
// client certificate.
func (a Admin) Protected() bool {
	return a.TokenFile != "" || a.TLS.ClientAuthType() == tls.RequireAndVerifyClientCert
}

// Monitor controls the cn=monitor subtree.
type Monitor struct {
	// AdminDNs are the bind DNs allowed to read cn=monitor through the
	// client listeners; ldapmux answers those searches itself. Others get
	// insufficientAccessRights. Empty (the default): searches of cn=monitor
	// are forwarded like any other (to the servers' own cn=monitor).
	AdminDNs []string `yaml:"admin-dns"`
}

func (c *Config) validateObservability(v *validator) {
	c.Admin.validate(v, c.Dir)
	for i, dn := range c.Monitor.AdminDNs {
		if msg := validateDN(dn); msg != "" {
			v.add(fmt.Sprintf("monitor.admin-dns[%d]", i), "%s", msg)
		}
	}
}

func (a *Admin) validate(v *validator, dir string) {
	if a.Address == "" {
		if a.TLS.Enabled() || a.TokenFile != "" {
			v.add("admin", "tls and token-file need an address")
		}
		return
	}
	if msg := checkAddress(a.Address, 0, false); msg != "" {
		v.add("admin.address", "%s", msg)
	}
	a.TLS.validate(v, "admin.tls", dir)
	if a.TokenFile == "" {
		return
	}
	token, msg := readPasswordFile(a.TokenFile, dir)
	switch {
	case msg != "":
		v.add("admin.token-file", "%s", msg)
	case len(strings.TrimSpace(token)) < minAdminToken:
		v.add("admin.token-file", "the token is shorter than %d characters; make one with: head -c 24 /dev/urandom | base64", minAdminToken)
	}
	a.Token = Secret(strings.TrimSpace(token))
}

// setObservabilityDefaults makes a relative access-log-file relative to the
// configuration file's directory.
func (c *Config) setObservabilityDefaults() {
	if f := c.Log.AccessLogFile; f != "" && !filepath.IsAbs(f) && c.Dir != "" {
		c.Log.AccessLogFile = filepath.Join(c.Dir, f)
	}
	c.Admin.TLS.resolve(c.Dir)
	c.Admin.TokenFile = ResolvePath(c.Dir, c.Admin.TokenFile)
}
