package config

import (
	"fmt"
	"path/filepath"
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

// Admin is the admin HTTP listener. It has no authentication: bind it to
// loopback or a management network.
type Admin struct {
	// Address is host:port; empty (the default) means no admin listener.
	// It serves /metrics, /healthz, /readyz, /api/status, /api/reload and
	// the status page at /.
	Address string `yaml:"address"`
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
	if a := c.Admin.Address; a != "" {
		if msg := checkAddress(a, 0, false); msg != "" {
			v.add("admin.address", "%s", msg)
		}
	}
	for i, dn := range c.Monitor.AdminDNs {
		if msg := validateDN(dn); msg != "" {
			v.add(fmt.Sprintf("monitor.admin-dns[%d]", i), "%s", msg)
		}
	}
}

// setObservabilityDefaults makes a relative access-log-file relative to the
// configuration file's directory.
func (c *Config) setObservabilityDefaults() {
	if f := c.Log.AccessLogFile; f != "" && !filepath.IsAbs(f) && c.Dir != "" {
		c.Log.AccessLogFile = filepath.Join(c.Dir, f)
	}
}
