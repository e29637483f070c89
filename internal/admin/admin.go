// Package admin serves the admin HTTP endpoints: Prometheus metrics,
// liveness and readiness probes, the status report as JSON, configuration
// reloads and the status page.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ldapmux/ldapmux/internal/status"
)

// Source is the running proxy as the admin endpoints see it.
type Source interface {
	// Status reports the proxy's state.
	Status() *status.Status
	// Ready reports whether every route has a usable server (and the proxy
	// is not shutting down), with the reasons when not.
	Ready() (bool, []string)
	// Reload rereads the configuration file and applies it.
	Reload() error
}

// ErrNoConfigFile is returned by Source.Reload when the configuration did
// not come from a file.
var ErrNoConfigFile = errors.New("admin: no configuration file to reload (the proxy was not started with -config)")

//go:embed page
var page embed.FS

// Options are the admin endpoints' settings.
type Options struct {
	// Metrics is what /metrics exposes.
	Metrics prometheus.Gatherer
	// Token returns the admin token, "" when none is asked for; it is
	// called for every request, so that a reload can change it.
	Token func() string
	// Refused, when set, counts refused requests by reason: "token" (401)
	// or "cross-origin" (403).
	Refused *prometheus.CounterVec
}

// Handler routes the admin endpoints. Requests that change something
// (POST) from another site's page are refused, so a browser holding the
// credentials cannot be made to send them.
func Handler(src Source, opt Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(opt.Metrics, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { text(w, http.StatusOK, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { readyz(w, src) })
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, src.Status()) })
	mux.HandleFunc("POST /api/reload", func(w http.ResponseWriter, _ *http.Request) { reload(w, src) })
	mux.HandleFunc("GET /api/reload", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		text(w, http.StatusMethodNotAllowed, "reload with POST\n")
	})
	files, _ := fs.Sub(page, "page")
	mux.Handle("GET /", secured(http.FileServerFS(files)))
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		opt.refused("cross-origin")
		text(w, http.StatusForbidden, "cross-origin request refused\n")
	}))
	return cop.Handler(requireToken(mux, opt))
}

func (o Options) refused(reason string) {
	if o.Refused != nil {
		o.Refused.WithLabelValues(reason).Inc()
	}
}

// probes answer without the token: orchestrators and load balancers check
// them without credentials, and they reveal only readiness.
var probes = map[string]bool{"/healthz": true, "/readyz": true}

// requireToken lets a request through when no token is configured, when it
// is a probe, or when it carries the token as a bearer token or as the
// password of basic authentication (any user name, for browsers).
func requireToken(next http.Handler, opt Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := ""
		if opt.Token != nil {
			want = opt.Token()
		}
		if want == "" || probes[r.URL.Path] || tokenMatches(r, want) {
			next.ServeHTTP(w, r)
			return
		}
		opt.refused("token")
		w.Header().Set("WWW-Authenticate", `Basic realm="ldapmux admin", charset="UTF-8"`)
		text(w, http.StatusUnauthorized, "admin token required: send \"Authorization: Bearer TOKEN\", or basic authentication with the token as password\n")
	})
}

// tokenMatches compares digests in constant time, so that neither the
// token's contents nor its length show in response times.
func tokenMatches(r *http.Request, want string) bool {
	got, ok := "", false
	if _, pw, basic := r.BasicAuth(); basic {
		got, ok = pw, true
	} else if bearer, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found {
		got, ok = strings.TrimSpace(bearer), true
	}
	if !ok {
		return false
	}
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

func readyz(w http.ResponseWriter, src Source) {
	ok, why := src.Ready()
	if ok {
		text(w, http.StatusOK, "ready\n")
		return
	}
	text(w, http.StatusServiceUnavailable, "not ready: "+strings.Join(why, "; ")+"\n")
}

// ReloadResult is the answer of POST /api/reload.
type ReloadResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func reload(w http.ResponseWriter, src Source) {
	err := src.Reload()
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, ReloadResult{OK: true})
	case errors.Is(err, ErrNoConfigFile):
		writeJSON(w, http.StatusNotImplemented, ReloadResult{Error: err.Error()})
	default:
		writeJSON(w, http.StatusUnprocessableEntity, ReloadResult{Error: err.Error()})
	}
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write([]byte(body))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// secured adds headers that keep the page to its own scripts and styles.
func secured(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
