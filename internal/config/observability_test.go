package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestObservabilityKeys(t *testing.T) {
	cfg := mustParse(t, minimal+`admin:
  address: 127.0.0.1:8389
monitor:
  admin-dns: ["cn=admin,dc=example,dc=com", "uid=ops,ou=people,dc=example,dc=com"]
log:
  access-log: true
  access-log-file: /var/log/ldapmux/access.log
`)
	if cfg.Admin.Address != "127.0.0.1:8389" {
		t.Errorf("admin = %+v", cfg.Admin)
	}
	if want := []string{"cn=admin,dc=example,dc=com", "uid=ops,ou=people,dc=example,dc=com"}; !reflect.DeepEqual(cfg.Monitor.AdminDNs, want) {
		t.Errorf("monitor.admin-dns = %q", cfg.Monitor.AdminDNs)
	}
	if !cfg.Log.AccessLog || cfg.Log.AccessLogFile != "/var/log/ldapmux/access.log" {
		t.Errorf("log = %+v", cfg.Log)
	}
}

func TestObservabilityDefaultsOff(t *testing.T) {
	cfg := mustParse(t, minimal)
	if cfg.Admin.Address != "" || len(cfg.Monitor.AdminDNs) != 0 || cfg.Log.AccessLog || cfg.Log.AccessLogFile != "" {
		t.Errorf("observability is on by default: %+v %+v", cfg.Observability, cfg.Log)
	}
}

func TestObservabilityProblems(t *testing.T) {
	_, err := Parse([]byte(minimal + `admin:
  address: localhost
  adress: x
monitor:
  admin-dns: ["not a dn"]
`))
	var problems Problems
	if !errors.As(err, &problems) {
		t.Fatalf("want problems, got %v", err)
	}
	text := problems.Error()
	for _, want := range []string{"admin.address (line 10): missing port", "admin.adress", "did you mean address", "monitor.admin-dns[0]", `invalid DN "not a dn"`} {
		if !strings.Contains(text, want) {
			t.Errorf("problems lack %q:\n%s", want, text)
		}
	}
}

func TestAccessLogFileRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ldapmux.yaml")
	if err := os.WriteFile(path, []byte(minimal+"log:\n  access-log: true\n  access-log-file: logs/access.log\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "logs", "access.log"); cfg.Log.AccessLogFile != want {
		t.Errorf("access-log-file = %q, want %q", cfg.Log.AccessLogFile, want)
	}
}

// TestAdminProtection: files relative to the configuration, the token read
// and trimmed, the listener counted as protected.
func TestAdminProtection(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "admin")
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("  0123456789abcdefXYZ \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, dir, minimal+`admin:
  address: 127.0.0.1:8389
  token-file: admin.token
  tls: {cert-file: admin.pem, key-file: admin.key}
`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Admin
	if a.TokenFile != filepath.Join(dir, "admin.token") || a.TLS.CertFile != filepath.Join(dir, "admin.pem") || a.TLS.KeyFile != filepath.Join(dir, "admin.key") {
		t.Errorf("files not resolved against the configuration's directory: %+v", a)
	}
	if a.Token.Reveal() != "0123456789abcdefXYZ" || !a.Protected() {
		t.Errorf("token %q, protected %v", a.Token.Reveal(), a.Protected())
	}
	if strings.Contains(fmt.Sprintf("%v %+v", a, a), "0123456789") {
		t.Error("the token shows when the settings are printed")
	}
	if open := mustParse(t, minimal+"admin: {address: 127.0.0.1:8389}\n").Admin; open.Protected() {
		t.Errorf("an admin listener without token or client certificates counts as protected: %+v", open)
	}
}

func TestAdminProtectionProblems(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "short.token"), []byte("too-short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"admin: {token-file: short.token}\n":                                     "admin (line 9): tls and token-file need an address",
		"admin: {address: 127.0.0.1:8389, token-file: short.token}\n":            "the token is shorter than 16 characters",
		"admin: {address: 127.0.0.1:8389, token-file: missing.token}\n":          "admin.token-file (line 9): cannot read " + filepath.Join(dir, "missing.token"),
		"admin: {address: 127.0.0.1:8389, tls: {cert-file: missing.pem}}\n":      "admin.tls",
		"admin: {address: 127.0.0.1:8389, tls: {client-ca-file: missing.pem}}\n": "admin.tls",
	}
	for extra, want := range cases {
		_, err := Load(writeFile(t, dir, minimal+extra))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want a problem with %q", extra, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "too-short") {
			t.Errorf("a problem shows the token: %v", err)
		}
	}
}
