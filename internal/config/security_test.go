package config

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/testcert"
)

// securityLimitDefaults is l with the defaults of the security limits.
func securityLimitDefaults(l Limits) Limits {
	l.setMoreDefaults(Duration(30 * time.Second))
	return l
}

// writeCert writes a self-signed certificate and key into dir and returns
// their file names.
func writeCert(t *testing.T, dir, name string) (string, string) {
	return testcert.SelfSigned(t, dir, name)
}

const securityBase = `servers:
  - name: ds1
    address: ds1.example.com:636
service-account:
  bind-dn: cn=ldapmux,dc=example,dc=com
  password: s3cr3t-value
`

func TestSecurityKeys(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "server")
	writeCert(t, dir, "client")
	cfg, err := Load(writeFile(t, dir, `listen:
  - address: 127.0.0.1:636
    mode: ldaps
    tls:
      cert-file: server.pem
      key-file: server.key
      min-version: "1.3"
      client-ca-file: client.pem
  - address: 127.0.0.1:389
    tls: {cert-file: server.pem, key-file: server.key}
    proxy-protocol: true
    trusted-proxies: [10.0.0.0/8, 192.0.2.1]
servers:
  - name: ds1
    address: ds1.example.com:636
    tls:
      server-name: directory.example.com
      min-version: "1.3"
  - name: ds2
    address: ds2.example.com:389
    tls: {mode: none}
service-account:
  bind-dn: cn=ldapmux,dc=example,dc=com
  password: s3cr3t-value
require-secure-bind: true
allow-unauthenticated-binds: true
backend-tls:
  mode: ldaps
  ca-file: server.pem
  cert-file: client.pem
  key-file: client.key
limits:
  max-connections-per-client-ip: 50
  max-operations-per-connection: 10
  max-operations-per-server: 100
  max-client-buffer: 1MiB
  idle-timeout: 5m
  request-timeout: 3s
  write-timeout: 20s
  bind-timeout: 1m
`))
	if err != nil {
		t.Fatal(err)
	}
	ldaps, plain := cfg.Listen[0], cfg.Listen[1]
	if !ldaps.IsLDAPS() || ldaps.StartTLSEnabled() || ldaps.TLS.ClientAuthType() != tls.RequireAndVerifyClientCert ||
		TLSVersion(ldaps.TLS.MinVersion) != tls.VersionTLS13 || ldaps.TLS.CertFile != filepath.Join(dir, "server.pem") {
		t.Errorf("ldaps listener = %+v", ldaps)
	}
	if plain.IsLDAPS() || !plain.StartTLSEnabled() || plain.TLS.ClientAuthType() != tls.NoClientCert || !plain.ProxyProtocol {
		t.Errorf("plain listener = %+v", plain)
	}
	ds1, ds2 := cfg.Servers[0].TLS, cfg.Servers[1].TLS
	if ds1.Mode != BackendTLSLDAPS || ds1.ServerName != "directory.example.com" || ds1.MinVersion != "1.3" ||
		ds1.CAFile != filepath.Join(dir, "server.pem") || ds1.KeyFile != filepath.Join(dir, "client.key") {
		t.Errorf("ds1 tls = %+v", ds1)
	}
	if ds2.Mode != BackendTLSNone || ds2.Enabled() {
		t.Errorf("ds2 tls = %+v", ds2)
	}
	want := Limits{MaxPDUSize: defaultMaxPDUSize, MaxClientConnections: defaultMaxClientConnections,
		MaxConnectionsPerClientIP: 50, MaxOperationsPerConnection: 10, MaxOperationsPerServer: 100, MaxOperationsPerServerConnection: 500,
		MaxClientBuffer: MiB, IdleTimeout: Duration(5 * time.Minute), RequestTimeout: Duration(3 * time.Second),
		WriteTimeout: Duration(20 * time.Second), BindTimeout: Duration(30 * time.Second)}
	if cfg.Limits != want {
		t.Errorf("limits = %+v\nwant %+v (bind-timeout capped by the operation timeout)", cfg.Limits, want)
	}
	if !cfg.RequireSecureBind || !cfg.AllowUnauthenticatedBinds {
		t.Errorf("security = %+v", cfg.Security)
	}
}

func TestStartTLSCanBeTurnedOff(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "server")
	cfg, err := Load(writeFile(t, dir, "listen:\n  - address: :389\n    start-tls: false\n    tls: {cert-file: server.pem, key-file: server.key}\n"+securityBase))
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Listen[0]; l.StartTLSEnabled() || !l.TLS.Enabled() || l.IsLDAPS() {
		t.Fatalf("listener %+v", l)
	}
}

func writeFile(t *testing.T, dir, content string) string {
	t.Helper()
	f := filepath.Join(dir, "ldapmux.yaml")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSecurityProblems(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "server")
	if err := os.WriteFile(filepath.Join(dir, "garbage.pem"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, yaml, path, msg string }{
		{"ldaps without tls", "listen:\n  - address: :636\n    mode: ldaps\n", "listen[0].tls", "needs tls.cert-file"},
		{"bad mode", "listen:\n  - address: :636\n    mode: ldapz\n", "listen[0].mode", "unknown mode"},
		{"start-tls without tls", "listen:\n  - address: :389\n    start-tls: true\n", "listen[0].start-tls", "needs tls.cert-file"},
		{"key without cert", "listen:\n  - address: :389\n    tls: {key-file: server.key}\n", "listen[0].tls.cert-file", "required with key-file"},
		{"missing cert file", "listen:\n  - address: :389\n    tls: {cert-file: nope.pem, key-file: server.key}\n", "listen[0].tls.cert-file", "nope.pem"},
		{"garbage cert", "listen:\n  - address: :389\n    tls: {cert-file: garbage.pem, key-file: server.key}\n", "listen[0].tls.cert-file", "garbage.pem"},
		{"bad version", "listen:\n  - address: :389\n    tls: {cert-file: server.pem, key-file: server.key, min-version: \"1.1\"}\n", "listen[0].tls.min-version", "1.1"},
		{"client-auth without ca", "listen:\n  - address: :389\n    tls: {cert-file: server.pem, key-file: server.key, client-auth: require}\n", "listen[0].tls.client-auth", "needs client-ca-file"},
		{"garbage ca", "listen:\n  - address: :389\n    tls: {cert-file: server.pem, key-file: server.key, client-ca-file: garbage.pem}\n", "listen[0].tls.client-ca-file", "no PEM certificate"},
		{"proxy without trust", "listen:\n  - address: :389\n    proxy-protocol: true\n", "listen[0].trusted-proxies", "required with proxy-protocol"},
		{"bad trusted network", "listen:\n  - address: :389\n    proxy-protocol: true\n    trusted-proxies: [10.0.0.0/33]\n", "listen[0].trusted-proxies[0]", "invalid network"},
		{"trust without proxy", "listen:\n  - address: :389\n    trusted-proxies: [10.0.0.0/8]\n", "listen[0].trusted-proxies", "only used with proxy-protocol"},
		{"backend mode", "listen:\n  - address: :389\nbackend-tls: {mode: tls}\n", "backend-tls.mode", "unknown TLS mode"},
		{"backend server-name", "listen:\n  - address: :389\nbackend-tls: {mode: ldaps, server-name: x}\n", "backend-tls.server-name", "per server"},
		{"settings without mode", "listen:\n  - address: :389\nbackend-tls: {ca-file: server.pem}\n", "servers[0].tls.mode", "use ldaps or starttls"},
		{"half client cert", "listen:\n  - address: :389\nbackend-tls: {mode: ldaps, cert-file: server.pem}\n", "servers[0].tls", "both cert-file and key-file"},
		{"negative per-ip", "listen:\n  - address: :389\nlimits: {max-connections-per-client-ip: -1}\n", "limits.max-connections-per-client-ip", "negative"},
		{"tiny buffer", "listen:\n  - address: :389\nlimits: {max-client-buffer: 1KiB}\n", "limits.max-client-buffer", "at least 64KiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writeFile(t, dir, c.yaml+securityBase))
			probs, ok := err.(Problems)
			if !ok {
				t.Fatalf("want problems, got %v", err)
			}
			for _, p := range probs {
				if p.Path == c.path && strings.Contains(p.Message, c.msg) {
					return
				}
			}
			t.Fatalf("want %s: ...%s..., got:\n%v", c.path, c.msg, probs)
		})
	}
}

// TestSecurityProblemsHideSecrets checks that no problem message quotes a
// key file or a password.
func TestSecurityProblemsHideSecrets(t *testing.T) {
	dir := t.TempDir()
	_, keyFile := writeCert(t, dir, "server")
	key, _ := os.ReadFile(keyFile)
	// The key given as certificate and the certificate as key: both are
	// read and rejected.
	_, err := Load(writeFile(t, dir, "listen:\n  - address: :389\n    tls: {cert-file: server.key, key-file: server.pem}\n"+
		strings.Replace(securityBase, "password: s3cr3t-value", "password: s3cr3t-value\n  password-env: X", 1)))
	if err == nil {
		t.Fatal("want problems")
	}
	msg := err.Error()
	body := strings.Split(string(key), "\n")[1]
	if strings.Contains(msg, "s3cr3t-value") || strings.Contains(msg, body[:20]) {
		t.Fatalf("problems reveal a secret:\n%s", msg)
	}
}

// TestLoadCAFileSaysWhy: a CA file Go cannot use gets the real reason, and
// what to do, instead of "holds no PEM certificate".
func TestLoadCAFileSaysWhy(t *testing.T) {
	// testdata/negative-serial.pem: openssl req -x509 -set_serial -42, as
	// Samba's AD DC generates them.
	_, err := LoadCAFile("testdata/negative-serial.pem")
	if err == nil || !strings.Contains(err.Error(), "negative serial number") || !strings.Contains(err.Error(), "smb.conf") {
		t.Errorf("negative serial: %v", err)
	}
	der := filepath.Join(t.TempDir(), "ca.der")
	if err := os.WriteFile(der, []byte{0x30, 0x03, 0x02, 0x01, 0x01}, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCAFile(der); err == nil || !strings.Contains(err.Error(), "openssl x509 -inform der") {
		t.Errorf("DER file: %v", err)
	}
}
