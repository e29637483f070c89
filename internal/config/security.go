package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Security holds client-side protections and the default TLS settings of
// the servers. Its keys sit at the top level of the file.
type Security struct {
	// RequireSecureBind refuses simple binds that carry a password, and
	// Password Modify requests, on client connections that are not
	// encrypted (neither LDAPS, nor StartTLS, nor TLS terminated by a
	// trusted PROXY protocol load balancer): the client gets
	// confidentialityRequired (13) and nothing reaches a server.
	// Default false.
	RequireSecureBind bool `yaml:"require-secure-bind"`
	// AllowUnauthenticatedBinds answers binds with a DN and an empty
	// password (RFC 4513, 5.1.2) with success, leaving the client
	// anonymous. Default false: a server answers them, and its success
	// is turned into unwillingToPerform (53); the client stays anonymous.
	AllowUnauthenticatedBinds bool `yaml:"allow-unauthenticated-binds"`
	// BackendTLS is the TLS used towards every server; a server's own tls
	// settings override it field by field.
	BackendTLS BackendTLS `yaml:"backend-tls"`
}

// Listener modes.
const (
	ModeLDAP  = "ldap"
	ModeLDAPS = "ldaps"
)

// Client certificate policies of a listener.
const (
	ClientAuthNone    = "none"
	ClientAuthRequest = "request"
	ClientAuthRequire = "require"
)

// Backend TLS modes.
const (
	BackendTLSNone     = "none"
	BackendTLSLDAPS    = "ldaps"
	BackendTLSStartTLS = "starttls"
)

var (
	listenerModes   = []string{ModeLDAP, ModeLDAPS}
	clientAuths     = []string{ClientAuthNone, ClientAuthRequest, ClientAuthRequire}
	backendTLSModes = []string{BackendTLSNone, BackendTLSLDAPS, BackendTLSStartTLS}
	tlsVersions     = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}
)

// ListenerSecurity holds a listener's TLS and PROXY protocol settings.
type ListenerSecurity struct {
	// Mode is ldap (default: plain LDAP, with StartTLS when tls is set) or
	// ldaps (TLS from the first byte; tls is required).
	Mode string `yaml:"mode"`
	// TLS is the listener's certificate and client-certificate policy.
	TLS ListenerTLS `yaml:"tls"`
	// StartTLS offers the StartTLS operation on an ldap listener with tls.
	// Default true.
	StartTLS *bool `yaml:"start-tls"`
	// ProxyProtocol reads a PROXY protocol v2 header on connections from
	// TrustedProxies, whose source address then stands for the client's in
	// routing, affinity, limits and logs. Other connections are served as
	// direct clients (a header from them is a protocol error).
	// Default false.
	ProxyProtocol bool `yaml:"proxy-protocol"`
	// TrustedProxies lists the networks (CIDR or single addresses) of the
	// load balancers allowed to send a PROXY header; required with
	// ProxyProtocol.
	TrustedProxies []string `yaml:"trusted-proxies"`
}

// ListenerTLS is a listener's certificate. Files are read at load time and
// again on every configuration reload.
type ListenerTLS struct {
	// CertFile is the PEM certificate chain, leaf first; required with
	// KeyFile.
	CertFile string `yaml:"cert-file"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `yaml:"key-file"`
	// MinVersion is the lowest TLS version accepted: 1.2 (default) or 1.3.
	MinVersion string `yaml:"min-version"`
	// ClientCAFile holds the PEM CA certificates that client certificates
	// are verified against.
	ClientCAFile string `yaml:"client-ca-file"`
	// ClientAuth is none, request (verify a certificate when the client
	// sends one) or require. Default require with ClientCAFile, none
	// without.
	ClientAuth string `yaml:"client-auth"`
}

// Enabled reports whether a certificate is configured.
func (t ListenerTLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// ServerSecurity holds a backend server's TLS settings.
type ServerSecurity struct {
	// TLS overrides backend-tls for this server, field by field.
	TLS BackendTLS `yaml:"tls"`
}

// BackendTLS is how ldapmux secures its connections to a server, health
// checks included.
type BackendTLS struct {
	// Mode is none (default), ldaps (TLS from the first byte) or starttls.
	Mode string `yaml:"mode"`
	// CAFile holds the PEM CA certificates the server's certificate is
	// verified against. Default: the system's roots.
	CAFile string `yaml:"ca-file"`
	// ServerName is the name checked in the server's certificate. Default:
	// the host of the server's address. Per server only.
	ServerName string `yaml:"server-name"`
	// InsecureSkipVerify accepts any server certificate. For tests only:
	// it allows anybody in the path to read every password. Default false.
	InsecureSkipVerify bool `yaml:"insecure-skip-verify"`
	// CertFile and KeyFile are an optional client certificate presented to
	// the server.
	CertFile string `yaml:"cert-file"`
	KeyFile  string `yaml:"key-file"`
	// MinVersion is the lowest TLS version used: 1.2 (default) or 1.3.
	MinVersion string `yaml:"min-version"`
}

// Enabled reports whether the server is reached over TLS.
func (t BackendTLS) Enabled() bool { return t.Mode == BackendTLSLDAPS || t.Mode == BackendTLSStartTLS }

// TLSVersion converts a min-version value ("" meaning 1.2).
func TLSVersion(s string) uint16 {
	if v, ok := tlsVersions[s]; ok {
		return v
	}
	return tls.VersionTLS12
}

// ClientAuthType converts client-auth to its crypto/tls value.
func (t ListenerTLS) ClientAuthType() tls.ClientAuthType {
	switch {
	case t.ClientAuth == ClientAuthRequest:
		return tls.VerifyClientCertIfGiven
	case t.ClientAuth == ClientAuthRequire, t.ClientAuth == "" && t.ClientCAFile != "":
		return tls.RequireAndVerifyClientCert
	}
	return tls.NoClientCert
}

// IsLDAPS reports whether the listener speaks TLS from the first byte.
func (l Listener) IsLDAPS() bool { return l.Mode == ModeLDAPS }

// StartTLSEnabled reports whether the listener offers StartTLS.
func (l Listener) StartTLSEnabled() bool {
	return !l.IsLDAPS() && l.TLS.Enabled() && (l.StartTLS == nil || *l.StartTLS)
}

// merged is this server's TLS with the defaults filled in; mode none opts
// out of the defaults.
func (t BackendTLS) merged(def BackendTLS) BackendTLS {
	if t.Mode == BackendTLSNone {
		return t
	}
	setDefault(&t.Mode, def.Mode)
	setDefault(&t.CAFile, def.CAFile)
	setDefault(&t.CertFile, def.CertFile)
	setDefault(&t.KeyFile, def.KeyFile)
	setDefault(&t.MinVersion, def.MinVersion)
	t.InsecureSkipVerify = t.InsecureSkipVerify || def.InsecureSkipVerify
	return t
}

func (c *Config) validateSecurity(v *validator) {
	for i := range c.Listen {
		c.Listen[i].validateSecurity(v, fmt.Sprintf("listen[%d]", i), c.Dir)
	}
	c.BackendTLS.validate(v, "backend-tls", c.Dir)
	if c.BackendTLS.ServerName != "" {
		v.add("backend-tls.server-name", "is per server: set it in servers[].tls.server-name")
	}
	for i, s := range c.Servers {
		path := fmt.Sprintf("servers[%d].tls", i)
		s.TLS.validate(v, path, c.Dir)
		s.TLS.merged(c.BackendTLS).validatePair(v, path)
	}
}

func (l *Listener) validateSecurity(v *validator, path, dir string) {
	v.oneOf(path+".mode", "mode", l.Mode, listenerModes)
	t := l.TLS
	if l.Mode == ModeLDAPS && !t.Enabled() {
		v.add(path+".tls", "an ldaps listener needs tls.cert-file and tls.key-file")
	}
	if l.StartTLS != nil && *l.StartTLS && !t.Enabled() {
		v.add(path+".start-tls", "StartTLS needs tls.cert-file and tls.key-file")
	}
	if l.StartTLS != nil && *l.StartTLS && l.Mode == ModeLDAPS {
		v.add(path+".start-tls", "does not apply to an ldaps listener (already encrypted)")
	}
	t.validate(v, path+".tls", dir)
	l.validateProxies(v, path)
}

func (t ListenerTLS) validate(v *validator, path, dir string) {
	v.oneOf(path+".min-version", "TLS version", t.MinVersion, tlsVersionNames())
	v.oneOf(path+".client-auth", "client-auth", t.ClientAuth, clientAuths)
	checkKeyPair(v, path, t.CertFile, t.KeyFile, dir)
	if t.ClientCAFile != "" {
		checkCAFile(v, path+".client-ca-file", t.ClientCAFile, dir)
	}
	if t.ClientAuth == ClientAuthRequest || t.ClientAuth == ClientAuthRequire {
		if t.ClientCAFile == "" {
			v.add(path+".client-auth", "%s needs client-ca-file", t.ClientAuth)
		}
	}
	if (t.ClientCAFile != "" || t.MinVersion != "" || t.ClientAuth != "") && !t.Enabled() {
		v.add(path, "cert-file and key-file are required")
	}
}

func (l *Listener) validateProxies(v *validator, path string) {
	if l.ProxyProtocol && len(l.TrustedProxies) == 0 {
		v.add(path+".trusted-proxies", "required with proxy-protocol: list the load balancers' networks")
	}
	if !l.ProxyProtocol && len(l.TrustedProxies) > 0 {
		v.add(path+".trusted-proxies", "only used with proxy-protocol: true")
	}
	for i, s := range l.TrustedProxies {
		if _, err := ParseNetwork(s); err != nil {
			v.add(fmt.Sprintf("%s.trusted-proxies[%d]", path, i), "%v", err)
		}
	}
}

func (t BackendTLS) validate(v *validator, path, dir string) {
	v.oneOf(path+".mode", "TLS mode", t.Mode, backendTLSModes)
	v.oneOf(path+".min-version", "TLS version", t.MinVersion, tlsVersionNames())
	if t.CAFile != "" {
		checkCAFile(v, path+".ca-file", t.CAFile, dir)
	}
	if t.CertFile != "" && t.KeyFile != "" {
		checkKeyPair(v, path, t.CertFile, t.KeyFile, dir)
	}
}

// validatePair checks a server's merged settings: a client certificate
// needs both halves, and TLS settings need a TLS mode.
func (t BackendTLS) validatePair(v *validator, path string) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.add(path, "set both cert-file and key-file (directly or in backend-tls) or neither")
	}
	if !t.Enabled() && (t.CAFile != "" || t.ServerName != "" || t.CertFile != "" || t.InsecureSkipVerify) {
		v.add(path+".mode", "TLS settings given but mode is %q: use ldaps or starttls", cmpOr(t.Mode, BackendTLSNone))
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func tlsVersionNames() []string {
	names := make([]string, 0, len(tlsVersions))
	for k := range tlsVersions {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// checkKeyPair loads a certificate and its key. Messages name the files,
// never their contents.
func checkKeyPair(v *validator, path, certFile, keyFile, dir string) {
	switch {
	case certFile == "" && keyFile == "":
		return
	case certFile == "":
		v.add(path+".cert-file", "required with key-file")
		return
	case keyFile == "":
		v.add(path+".key-file", "required with cert-file")
		return
	}
	if _, err := LoadKeyPair(ResolvePath(dir, certFile), ResolvePath(dir, keyFile)); err != nil {
		v.add(path+".cert-file", "%v", err)
	}
}

func checkCAFile(v *validator, path, file, dir string) {
	if _, err := LoadCAFile(ResolvePath(dir, file)); err != nil {
		v.add(path, "%v", err)
	}
}

// ResolvePath makes a file name relative to dir absolute (dir "" keeps it
// relative to the working directory).
func ResolvePath(dir, name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}

// LoadKeyPair reads a PEM certificate chain and its private key.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Stat(f); err != nil {
			return tls.Certificate{}, fmt.Errorf("cannot read %s: %w", f, pathError(err))
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// LoadCAFile reads a bundle of PEM CA certificates.
func LoadCAFile(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", file, pathError(err))
	}
	pool := x509.NewCertPool()
	var problems []string
	found := 0
	for rest := data; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		found++
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			problems = append(problems, fmt.Sprintf("certificate %d: %v%s", found, err, certHint(err)))
			continue
		}
		pool.AddCert(cert)
	}
	switch {
	case found == 0:
		return nil, fmt.Errorf("%s holds no PEM certificate (a block starting -----BEGIN CERTIFICATE-----; a DER file can be converted with: openssl x509 -inform der -in FILE -out FILE.pem)", file)
	case len(problems) == found:
		return nil, fmt.Errorf("%s: no usable certificate: %s", file, strings.Join(problems, "; "))
	}
	return pool, nil
}

// certHint says what to do about a certificate Go refuses.
func certHint(err error) string {
	if strings.Contains(err.Error(), "negative serial number") {
		return " (Go refuses certificates with a negative serial number, such as the one Samba generates for its AD DC: give the server a certificate of your own, in Samba with tls certfile, tls keyfile and tls cafile in smb.conf)"
	}
	return ""
}

func pathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// setSecurityDefaults resolves file names against the configuration's
// directory and gives every server its complete TLS settings. Empty modes,
// versions and client-auth keep meaning their defaults (see the accessors).
func (c *Config) setSecurityDefaults() {
	for i := range c.Listen {
		c.Listen[i].TLS.resolve(c.Dir)
	}
	for i := range c.Servers {
		t := c.Servers[i].TLS.merged(c.BackendTLS)
		t.resolve(c.Dir)
		c.Servers[i].TLS = t
	}
	c.BackendTLS.resolve(c.Dir)
}

func (t *ListenerTLS) resolve(dir string) {
	for _, f := range []*string{&t.CertFile, &t.KeyFile, &t.ClientCAFile} {
		*f = ResolvePath(dir, *f)
	}
}

func (t *BackendTLS) resolve(dir string) {
	for _, f := range []*string{&t.CAFile, &t.CertFile, &t.KeyFile} {
		*f = ResolvePath(dir, *f)
	}
}
