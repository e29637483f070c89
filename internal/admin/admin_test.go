package admin

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ldapmux/ldapmux/internal/status"
)

type fakeSource struct {
	ready     bool
	reloadErr error
	reloads   int
}

func (f *fakeSource) Status() *status.Status {
	return &status.Status{Ready: f.ready, Servers: []status.Server{{Name: "ds1", State: "available", Score: 10}}}
}

func (f *fakeSource) Ready() (bool, []string) {
	if f.ready {
		return true, nil
	}
	return false, []string{"route reads: no usable server among [ds1]"}
}

func (f *fakeSource) Reload() error { f.reloads++; return f.reloadErr }

func do(t *testing.T, h http.Handler, method, path string, headers ...string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), string(body)
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "ldapmux_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	src := &fakeSource{ready: true}
	h := Handler(src, Options{Metrics: reg})
	cases := []struct {
		method, path string
		code         int
		want         string
	}{
		{"GET", "/healthz", 200, "ok\n"},
		{"GET", "/readyz", 200, "ready\n"},
		{"GET", "/metrics", 200, "ldapmux_test_total 3"},
		{"GET", "/api/status", 200, `"name": "ds1"`},
		{"GET", "/", 200, `<script src="app.js"`},
		{"GET", "/app.js", 200, "fetch(\"api/status\""},
		{"GET", "/style.css", 200, "--available"},
		{"POST", "/api/reload", 200, `"ok": true`},
		{"GET", "/api/reload", 405, ""},
		{"POST", "/metrics", 405, ""},
	}
	for _, c := range cases {
		resp, body := do(t, h, c.method, c.path)
		if resp.StatusCode != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %.80q, want %d with %q", c.method, c.path, resp.StatusCode, body, c.code, c.want)
		}
	}
	if resp, _ := do(t, h, "GET", "/"); !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("the page has no content security policy: %v", resp.Header)
	}
	if src.reloads != 1 {
		t.Errorf("%d reloads, want 1", src.reloads)
	}
}

func TestNotReadyAndRefusedReload(t *testing.T) {
	src := &fakeSource{reloadErr: errors.New("servers[1].address (line 7): missing port")}
	h := Handler(src, Options{Metrics: prometheus.NewRegistry()})
	if resp, body := do(t, h, "GET", "/readyz"); resp.StatusCode != 503 || !strings.Contains(body, "route reads: no usable server") {
		t.Errorf("/readyz: %d %q", resp.StatusCode, body)
	}
	resp, body := do(t, h, "POST", "/api/reload")
	var res ReloadResult
	if err := json.Unmarshal([]byte(body), &res); err != nil || resp.StatusCode != 422 || res.OK || !strings.Contains(res.Error, "missing port") {
		t.Errorf("refused reload: %d %s", resp.StatusCode, body)
	}
	src.reloadErr = ErrNoConfigFile
	if resp, _ := do(t, h, "POST", "/api/reload"); resp.StatusCode != 501 {
		t.Errorf("reload without a file: %d", resp.StatusCode)
	}
}

// TestToken: with a token configured, every endpoint but the probes needs
// it, as a bearer token or a basic-authentication password; a new token
// applies at once (a reload changes it).
func TestToken(t *testing.T) {
	src := &fakeSource{ready: true}
	token := "0123456789abcdef-first"
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refused"}, []string{"reason"})
	h := Handler(src, Options{Metrics: prometheus.NewRegistry(), Token: func() string { return token }, Refused: refused})
	basic := func(user, pw string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
	}
	cases := []struct {
		method, path, auth string
		code               int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 200},
		{"GET", "/metrics", "", 401},
		{"GET", "/api/status", "", 401},
		{"GET", "/", "", 401},
		{"GET", "/app.js", "", 401},
		{"POST", "/api/reload", "", 401},
		{"GET", "/api/status", "Bearer wrong-token-of-some-length", 401},
		{"GET", "/api/status", "Bearer " + token[:len(token)-1], 401},
		{"GET", "/api/status", basic("admin", "wrong"), 401},
		{"GET", "/api/status", "Token " + token, 401},
		{"GET", "/api/status", "Bearer " + token, 200},
		{"GET", "/metrics", "Bearer " + token, 200},
		{"GET", "/", basic("anyone", token), 200},
		{"POST", "/api/reload", "Bearer " + token, 200},
	}
	for _, c := range cases {
		resp, body := do(t, h, c.method, c.path, "Authorization", c.auth)
		if resp.StatusCode != c.code {
			t.Errorf("%s %s with %q: %d %.80q, want %d", c.method, c.path, c.auth, resp.StatusCode, body, c.code)
		}
		if c.code == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic realm=") {
			t.Errorf("%s %s: a 401 without a basic-authentication challenge", c.method, c.path)
		}
	}
	if src.reloads != 1 {
		t.Errorf("%d reloads, want 1 (only the authenticated one)", src.reloads)
	}
	if got := counted(t, refused, "token"); got != 9 {
		t.Errorf("%v refusals counted, want 9 (the 401s above)", got)
	}
	old := token
	token = "fedcba9876543210-second"
	if resp, _ := do(t, h, "GET", "/api/status", "Authorization", "Bearer "+old); resp.StatusCode != 401 {
		t.Errorf("the replaced token still works: %d", resp.StatusCode)
	}
	if resp, _ := do(t, h, "GET", "/api/status", "Authorization", "Bearer "+token); resp.StatusCode != 200 {
		t.Errorf("the new token is refused: %d", resp.StatusCode)
	}
}

// TestCrossSiteReloadRefused: a page of another site cannot make a browser
// (which may hold the credentials) reload the configuration; the status
// page itself, the command line and scripts can.
func TestCrossSiteReloadRefused(t *testing.T) {
	src := &fakeSource{ready: true}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refused"}, []string{"reason"})
	h := Handler(src, Options{Metrics: prometheus.NewRegistry(), Refused: refused})
	if resp, _ := do(t, h, "POST", "/api/reload", "Sec-Fetch-Site", "cross-site"); resp.StatusCode != 403 {
		t.Errorf("cross-site reload (Sec-Fetch-Site): %d, want 403", resp.StatusCode)
	}
	if resp, _ := do(t, h, "POST", "/api/reload", "Origin", "https://attacker.example"); resp.StatusCode != 403 {
		t.Errorf("cross-site reload (Origin): %d, want 403", resp.StatusCode)
	}
	if src.reloads != 0 {
		t.Fatalf("a cross-site request reloaded the configuration")
	}
	if got := counted(t, refused, "cross-origin"); got != 2 {
		t.Errorf("%v cross-origin refusals counted, want 2", got)
	}
	if resp, _ := do(t, h, "POST", "/api/reload", "Sec-Fetch-Site", "same-origin"); resp.StatusCode != 200 {
		t.Errorf("same-origin reload: %d", resp.StatusCode)
	}
	if resp, _ := do(t, h, "POST", "/api/reload"); resp.StatusCode != 200 {
		t.Errorf("reload from a non-browser client: %d", resp.StatusCode)
	}
	if resp, _ := do(t, h, "GET", "/api/status", "Sec-Fetch-Site", "cross-site"); resp.StatusCode != 200 {
		t.Errorf("a cross-site read (safe method): %d", resp.StatusCode)
	}
}

// counted reads one counter of cv.
func counted(t *testing.T, cv *prometheus.CounterVec, label string) float64 {
	t.Helper()
	var m dto.Metric
	if err := cv.WithLabelValues(label).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
