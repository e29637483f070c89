package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

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

func do(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), string(body)
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "ldapmux_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	src := &fakeSource{ready: true}
	h := Handler(src, reg)
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
	h := Handler(src, prometheus.NewRegistry())
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
