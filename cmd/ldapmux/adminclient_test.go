package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ldapmux/ldapmux/internal/admin"
	"github.com/ldapmux/ldapmux/internal/status"
	"github.com/ldapmux/ldapmux/internal/testcert"
)

// adminSource is a running proxy as the admin endpoints see it.
type adminSource struct{ reloads atomic.Int32 }

func (s *adminSource) Status() *status.Status {
	return &status.Status{Time: time.Now(), Started: time.Now(), Ready: true,
		Servers: []status.Server{{Name: "ds1", Address: "127.0.0.1:3891", State: "available", Score: 10}}}
}
func (s *adminSource) Ready() (bool, []string) { return true, nil }
func (s *adminSource) Reload() error           { s.reloads.Add(1); return nil }

// TestStatusAndReloadWithTokenOverHTTPS drives the commands against an
// admin listener that serves HTTPS and asks for a token.
func TestStatusAndReloadWithTokenOverHTTPS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testcert.SelfSigned(t, dir, "admin", "127.0.0.1")
	const token = "0123456789-operator-token"
	tokenFile, wrongFile := filepath.Join(dir, "admin.token"), filepath.Join(dir, "wrong.token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	os.WriteFile(wrongFile, []byte("not-the-operator-token\n"), 0o600)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	src := &adminSource{}
	srv := httptest.NewUnstartedServer(admin.Handler(src, admin.Options{Metrics: prometheus.NewRegistry(), Token: func() string { return token }}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	url := srv.URL // https://127.0.0.1:port

	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"status", "-admin", url, "-ca-file", certFile}, 1, "asks for a token; give -token-file"},
		{[]string{"status", "-admin", url, "-ca-file", certFile, "-token-file", wrongFile}, 1, "refused the token"},
		{[]string{"status", "-admin", url, "-token-file", tokenFile}, 1, "certificate"},
		{[]string{"status", "-admin", url, "-ca-file", certFile, "-token-file", filepath.Join(dir, "absent")}, 2, "admin token"},
		{[]string{"status", "-admin", url, "-ca-file", certFile, "-cert-file", certFile}, 2, "-cert-file and -key-file go together"},
		{[]string{"status", "-admin", url, "-ca-file", certFile, "-token-file", tokenFile}, 0, "ds1"},
		{[]string{"reload", "-admin", url, "-ca-file", certFile}, 1, "asks for a token"},
		{[]string{"reload", "-admin", url, "-ca-file", certFile, "-token-file", tokenFile}, 0, "configuration reloaded"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		if out := stdout.String() + stderr.String(); code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, output %q; want exit %d with %q", strings.Join(c.args, " "), code, out, c.code, c.want)
		}
	}
	if got := src.reloads.Load(); got != 1 {
		t.Fatalf("%d reloads, want 1", got)
	}

	// reload -config takes the address, HTTPS, the served certificate as
	// trust and the token file from the configuration's admin section.
	path := writeFile(t, fmt.Sprintf(`listen: [{address: '127.0.0.1:0'}]
servers: [{name: ds1, address: '127.0.0.1:3891'}]
service-account: {bind-dn: 'cn=svc', password: x}
admin: {address: '%s', token-file: '%s', tls: {cert-file: '%s', key-file: '%s'}}
`, strings.TrimPrefix(url, "https://"), tokenFile, certFile, keyFile))
	var stdout, stderr bytes.Buffer
	if code := run([]string{"reload", "-config", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("reload -config: exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	if got := src.reloads.Load(); got != 2 {
		t.Fatalf("%d reloads, want 2", got)
	}
}
