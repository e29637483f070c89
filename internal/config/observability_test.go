package config

import (
	"errors"
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
