package e2e

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestServerClosesIdleConnections puts ldapmux in front of slapd servers
// that close connections idle for a second (`idletimeout 1`: directories,
// and firewalls between them and ldapmux, are often set so), with ldapmux's
// idle probes far apart, so that the primary closes every pooled
// connection between the rounds. The clients keep their connections to
// ldapmux throughout, and in every round their operations (a bound client's
// write, search and compare, an anonymous search, binds right and wrong)
// succeed or fail exactly as the same requests do straight to the server on
// a fresh connection. The server stays available: closing idle connections
// is no failure.
func TestServerClosesIdleConnections(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 5, IdleTimeout: time.Second})
	primary := cluster.Replica(1)
	a, addr := startProxy(t, cluster, adminExtra+"pool:\n  idle-check-interval: 1m\n")
	writer := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	user := bindAs(t, addr, slapdtest.UserDN(1), slapdtest.UserPassword(1))
	anonymous := dial(t, addr)
	binder := dial(t, addr)
	for _, c := range []*ldap.Conn{writer, user, anonymous, binder} {
		defer c.Close()
	}

	const rounds = 3
	for round := 1; round <= rounds; round++ {
		if round > 1 {
			eventually(t, 30*time.Second, "the primary closing ldapmux's idle connections", func() bool {
				return openPoolConnections(t, a, "ds1") == 0
			})
		}
		if err := writer.Add(scratchEntry(fmt.Sprintf("idle-%d", round))); err != nil {
			t.Fatalf("round %d: write after the server closed ldapmux's connections: %v", round, err)
		}
		fresh := func(dn, password string) *ldap.Conn { return connectAs(t, primary.Addr, dn, password) }
		sameAsDirect(t, round, "the writer's tree", writer, fresh(slapdtest.WriterDN, slapdtest.WriterPassword))
		sameAsDirect(t, round, "a user's tree", user, fresh(slapdtest.UserDN(1), slapdtest.UserPassword(1)))
		sameAsDirect(t, round, "the anonymous tree", anonymous, fresh("", ""))
		if ok, err := user.Compare(slapdtest.UserDN(2), "uid", slapdtest.UserID(2)); err != nil || !ok {
			t.Fatalf("round %d: compare: %t, %v", round, ok, err)
		}
		if err := binder.Bind(slapdtest.UserDN(3), slapdtest.UserPassword(3)); err != nil {
			t.Fatalf("round %d: bind: %v", round, err)
		}
		err := binder.Bind(slapdtest.UserDN(3), "wrong")
		direct := fresh("", "")
		want := direct.Bind(slapdtest.UserDN(3), "wrong")
		direct.Close()
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) || !ldap.IsErrorWithCode(want, ldap.LDAPResultInvalidCredentials) {
			t.Fatalf("round %d: wrong password: %v through ldapmux, %v straight", round, err, want)
		}
	}
	assertStayedAvailable(t, a) // a connection the server closed while idle is no failure of the server
}

// sameAsDirect compares the tree conn reads through ldapmux with what
// direct, a fresh connection to the server, reads, and closes direct.
func sameAsDirect(t *testing.T, round int, what string, conn, direct *ldap.Conn) {
	t.Helper()
	defer direct.Close()
	got, err := treeOf(conn)
	if err != nil {
		t.Fatalf("round %d: %s through ldapmux: %v", round, what, err)
	}
	if want := dumpTree(t, direct); got != want {
		t.Fatalf("round %d: %s through ldapmux differs from straight:\n%s\nstraight:\n%s", round, what,
			firstDifference(got, want), firstDifference(want, got))
	}
}

// openPoolConnections sums ldapmux_pool_open_connections of one server over
// every kind.
func openPoolConnections(t *testing.T, a *app.App, server string) float64 {
	t.Helper()
	_, body := httpGet(t, "http://"+a.AdminAddr()+"/metrics")
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "ldapmux_pool_open_connections{") || !strings.Contains(line, `server="`+server+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}
