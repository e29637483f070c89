package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// adminRequest sends one request to the admin listener and returns the
// status code, or the error when the connection was refused.
func adminRequest(client *http.Client, method, url, token string) (int, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func writeToken(t *testing.T, file, token string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAdminListenerTLSAndToken protects the admin listener with HTTPS, a
// client certificate and a token: plain HTTP, a client without a
// certificate and a request without the token get nothing but the probes;
// a reload replaces the token and the certificate without a restart.
func TestAdminListenerTLSAndToken(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1})
	ca := newTestCA(t, "admin")
	serverCert, clientCert := ca.server("admin-server", "127.0.0.1"), ca.client("operator")
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	writeToken(t, tokenFile, "first-token-0123456789")
	yaml := proxyConfig(cluster, fmt.Sprintf(`admin:
  address: 127.0.0.1:0
  token-file: %s
  tls: {cert-file: %s, key-file: %s, client-ca-file: %s}
`, tokenFile, serverCert.CertFile, serverCert.KeyFile, ca.File))
	a, path := startProxyFile(t, yaml, nil)
	base := "https://" + a.AdminAddr()
	client := func(tc *tls.Config) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	operator, stranger := client(ca.clientTLS(&clientCert)), client(ca.clientTLS(nil))

	if code, err := adminRequest(&http.Client{Timeout: 10 * time.Second}, "GET", "http://"+a.AdminAddr()+"/api/status", "first-token-0123456789"); err == nil && code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the admin listener: %d, want 400 (an HTTP request to an HTTPS server)", code)
	}
	if _, err := adminRequest(stranger, "GET", base+"/healthz", ""); err == nil {
		t.Error("a client without a certificate got through the handshake")
	}
	expect := func(c *http.Client, method, path, token string, want int) {
		t.Helper()
		got, err := adminRequest(c, method, base+path, token)
		if err != nil || got != want {
			t.Errorf("%s %s (token %q): %d %v, want %d", method, path, token, got, err, want)
		}
	}
	expect(operator, "GET", "/healthz", "", 200)
	expect(operator, "GET", "/readyz", "", 200)
	for _, p := range []string{"/api/status", "/metrics", "/"} {
		expect(operator, "GET", p, "", 401)
		expect(operator, "GET", p, "first-token-0123456789", 200)
	}
	expect(operator, "POST", "/api/reload", "", 401)
	if got := a.Status().Reload.Count; got != 0 {
		t.Fatalf("%d reloads after an unauthenticated POST", got)
	}
	if got := refusedByToken(t, a); got != 4 {
		t.Errorf("ldapmux_admin_requests_refused_total{reason=\"token\"} = %v, want 4", got)
	}

	// Rotate the token and the server certificate, then reload through the
	// listener itself: the new token works, the old one no longer does.
	rotated := ca.server("admin-server-2", "127.0.0.1")
	writeToken(t, tokenFile, "second-token-0123456789")
	writeConfig(t, path, proxyConfig(cluster, fmt.Sprintf(`admin:
  address: 127.0.0.1:0
  token-file: %s
  tls: {cert-file: %s, key-file: %s, client-ca-file: %s}
`, tokenFile, rotated.CertFile, rotated.KeyFile, ca.File)))
	expect(operator, "POST", "/api/reload", "first-token-0123456789", 200)
	expect(operator, "GET", "/api/status", "first-token-0123456789", 401)
	expect(operator, "GET", "/api/status", "second-token-0123456789", 200)

	fresh := client(ca.clientTLS(&clientCert))
	resp, err := fresh.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(rotated.Serial) != 0 {
		t.Errorf("a new connection after the reload got certificate %v, want the rotated one %v", got, rotated.Serial)
	}
}

// refusedByToken reads the count of admin requests refused for the token
// from the registry (the admin listener itself asks for the token).
func refusedByToken(t *testing.T, a *app.App) float64 {
	t.Helper()
	families, err := a.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "ldapmux_admin_requests_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == "token" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
