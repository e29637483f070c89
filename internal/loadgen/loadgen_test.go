package loadgen

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/fakeldap"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

func startFake(t *testing.T, entries int) string {
	t.Helper()
	srv, err := fakeldap.Start(entries)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return "ldap://" + srv.Addr()
}

func TestRunMixedAgainstFakeServer(t *testing.T) {
	url := startFake(t, 2)
	var progress bytes.Buffer
	res, err := Run(t.Context(), Config{URL: url, Conns: 3, Warmup: 100 * time.Millisecond,
		Duration: 1100 * time.Millisecond, Mix: Mix{Search: 8, Modify: 1, Bind: 1},
		Base: "uid=user.[1-100],ou=people,dc=example,dc=com", Filter: "(uid=user.[1-100])",
		BindDNs: "uid=user.[1-100],ou=people,dc=example,dc=com", BindPasswords: "pw.[1-100]",
		BindDN: "cn=admin", Password: "x", Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if res.Operations == 0 || res.Errors != 0 {
		t.Fatalf("operations %d, errors %d (%s)", res.Operations, res.Errors, res.FirstError)
	}
	if len(res.ByKind) != 3 || res.ByKind["search"].Operations == 0 || res.ByKind["bind"].Operations == 0 {
		t.Errorf("by kind: %+v", res.ByKind)
	}
	if res.Entries != 2*res.ByKind["search"].Operations {
		t.Errorf("%d entries for %d searches of 2 entries", res.Entries, res.ByKind["search"].Operations)
	}
	if res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 || res.Latency.Max < res.Latency.P999 {
		t.Errorf("implausible latency %+v", res.Latency)
	}
	if !strings.Contains(progress.String(), "ops/s") {
		t.Errorf("no progress line in %q", progress.String())
	}
}

func TestRunPacedToRate(t *testing.T) {
	url := startFake(t, 0)
	res, err := Run(t.Context(), Config{URL: url, Conns: 2, Duration: time.Second, Rate: 200, Base: "dc=x"})
	if err != nil {
		t.Fatal(err)
	}
	if res.OpsPerSec < 150 || res.OpsPerSec > 250 {
		t.Errorf("%.0f ops/s at a target of 200", res.OpsPerSec)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	url := startFake(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	res, err := Run(ctx, Config{URL: url, Duration: time.Hour, Base: "dc=x", Filter: "(&(a=b)(c=[1-9]))"})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(begin) > 5*time.Second || res.Operations == 0 {
		t.Errorf("stopped after %v with %d operations", time.Since(begin), res.Operations)
	}
}

func TestRunFailsFastWithoutServer(t *testing.T) {
	_, err := Run(t.Context(), Config{URL: "ldap://127.0.0.1:1", Timeout: time.Second, Base: "dc=x"})
	if err == nil {
		t.Fatal("no error without a server")
	}
	if _, err := Run(t.Context(), Config{URL: "ldaps://x"}); err == nil {
		t.Fatal("ldaps accepted")
	}
}

func TestSucceededCodes(t *testing.T) {
	if !succeeded(Search, 4) || succeeded(Bind, ldapwire.InvalidCredentials) || !succeeded(Modify, 0) {
		t.Error("wrong success classification")
	}
}

func TestRequestsParse(t *testing.T) {
	p, err := newPlan(&Config{Base: "uid=u.[1-9],dc=x", Filter: "(|(a=1)(b=[1-2]))", ModifyAttr: "description",
		ModifyValue: "v[1-3]", BindDNs: "uid=u.[1-9]", BindPasswords: "p.[1-9]", Attrs: []string{"cn", "mail"}})
	if err != nil {
		t.Fatal(err)
	}
	g := generator{p: p, mix: Mix{1, 1, 1}, draw: NewDraw(3)}
	for k := range nKinds {
		raw := g.encoder(k)(nil, 42)
		msg, err := ldapwire.Parse(raw)
		if err != nil || msg.ID != 42 {
			t.Fatalf("%s: %v (id %d)", k, err, msg.ID)
		}
		if dn := string(msg.TargetDN()); !strings.HasPrefix(dn, "uid=u.") {
			t.Errorf("%s: target %q", k, dn)
		}
	}
}
