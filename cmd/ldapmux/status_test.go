package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/admin"
	"github.com/ldapmux/ldapmux/internal/status"
)

func fakeAdmin(t *testing.T, st *status.Status, reloadErr string) string {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(st) })
	mux.HandleFunc("POST /api/reload", func(w http.ResponseWriter, _ *http.Request) {
		if reloadErr != "" {
			w.WriteHeader(http.StatusUnprocessableEntity)
		}
		json.NewEncoder(w).Encode(admin.ReloadResult{OK: reloadErr == "", Error: reloadErr})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestStatusTable(t *testing.T) {
	now := time.Now()
	st := &status.Status{Time: now, Started: now.Add(-(2*time.Hour + 5*time.Minute)), Ready: true, Listeners: []string{"127.0.0.1:1389"},
		Build:   status.Build{Version: "1.2.3", Revision: "abc", GoVersion: "go1.26.8"},
		Clients: status.Clients{Current: 12, Inflight: 3},
		Servers: []status.Server{
			{Name: "ds1", Address: "127.0.0.1:3891", Location: "paris", State: "available", Score: 10, OpsPerSec: 152, LatencyMs: 1.25,
				Completed: 12345, Pool: status.Pool{OpenOps: 4, OpenAnon: 1, OpenBound: 3, OpenBinds: 2}, Reason: "search of the root DSE: response time 1ms",
				ServerType: "openldap", IdentityMode: "proxied-authorization", Vendor: "OpenLDAP"},
			{Name: "ds2", Address: "127.0.0.1:3892", State: "unavailable", Score: 1, Failed: 3, Reason: "connect: connection refused"},
		},
		Algorithms:  []status.Algorithm{{Name: "reads", Type: "fewest-operations", Servers: []string{"ds1", "ds2"}, Usable: 1, Selections: 9000, Failovers: 3}},
		Transitions: []status.Transition{{Time: now.Add(-12 * time.Second), Server: "ds2", From: "available", To: "unavailable", Check: "operation", Reason: "operation failed"}},
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-admin", fakeAdmin(t, st, "")}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"ldapmux 1.2.3 on 127.0.0.1:1389  READY  up 2h5m  12 clients, 3 operations in flight",
		"LOCATION  SERVER  ADDRESS         TYPE      IDENTITY               STATE",
		"paris     ds1     127.0.0.1:3891  openldap  proxied-authorization  available    10     0            152.0  1.25ms   12345      0       4/1/3/2",
		"-         ds2     127.0.0.1:3892  -         -                      unavailable  1",
		"reads  fewest-operations  ds1,ds2  1/2     9000        3",
		"12s ago  ds2  available -> unavailable  operation  operation failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestStatusWideShowsReasonsWhole: reasons are clipped by default, with a
// note, and whole with -wide.
func TestStatusWideShowsReasonsWhole(t *testing.T) {
	long := "replication backlog: 1234 changes behind ds1 (contextCSN 20260506060809.000000Z#000000#001#000000), for 12 minutes, over the limit of 100"
	now := time.Now()
	st := &status.Status{Time: now, Started: now,
		Servers:     []status.Server{{Name: "ds2", State: "unavailable", Reason: long, Vendor: "389 Project", PasswordPolicy: true}},
		Transitions: []status.Transition{{Time: now, Server: "ds2", From: "available", To: "unavailable", Check: "replication-backlog", Reason: long}},
	}
	admin := fakeAdmin(t, st, "")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-admin", admin}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if out := stdout.String(); strings.Contains(out, long) || !strings.Contains(out, long[:40]) || !strings.Contains(out, "-wide") {
		t.Errorf("default output should clip the reason and name -wide:\n%s", out)
	}
	stdout.Reset()
	if code := run([]string{"status", "-wide", "-admin", admin}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	if strings.Count(out, long) != 2 || !strings.Contains(out, "VENDOR") || !strings.Contains(out, "389 Project") || strings.Contains(out, "clipped") {
		t.Errorf("-wide output should hold the reason whole twice and the vendor:\n%s", out)
	}
	if !strings.Contains(out, "PASSWORD POLICY") || !regexp.MustCompile(`389 Project\s+yes\s`).MatchString(out) {
		t.Errorf("-wide output should say the server has a password policy:\n%s", out)
	}
}

func TestStatusUnreachable(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-admin", "127.0.0.1:1"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "admin.address") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

func TestReloadThroughAdmin(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"reload", "-admin", fakeAdmin(t, &status.Status{}, "")}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "reloaded") {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	code := run([]string{"reload", "-admin", fakeAdmin(t, &status.Status{}, "servers[1].address (line 7): missing port")}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "refused") || !strings.Contains(stderr.String(), "missing port") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if code := run([]string{"reload"}, &stdout, &stderr); code != 2 {
		t.Fatalf("reload without a target: exit %d", code)
	}
}
