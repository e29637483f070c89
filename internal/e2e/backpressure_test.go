package e2e

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestSlowSyncRefreshWaitsForTheClient has a client refresh a replica of 12
// MB (sync refreshOnly, as a replica polls) while it stops reading, through
// ldapmux with `max-client-buffer` at 1 MiB. Straight to slapd, the server
// would wait for it; through ldapmux, its connection leased to that client
// stops reading from slapd until the client has read what it was sent,
// instead of queueing it all and dropping the client. Once the hold shows
// (ldapmux_server_reads_held_total), the client reads on and must get every
// entry and the final result, the same as straight from slapd. Over plain
// TCP an event loop reads the server; over LDAPS a goroutine does.
func TestSlowSyncRefreshWaitsForTheClient(t *testing.T) {
	ca := newTestCA(t, "directory")
	cluster := tlsCluster(t, ca, slapdtest.Options{Replicas: 1, Users: 5, ExtraLDIF: bulkLDIF(1200, 10000)})
	want := refreshDNs(t, cluster.Replica(1).Addr, nil)
	const limits = "limits:\n  max-client-buffer: 1MiB\n"
	for _, c := range []struct{ name, servers string }{
		{"plain, read by an event loop", tlsServers(cluster, false, "")},
		{"LDAPS, read by a goroutine", tlsServers(cluster, true, "{mode: ldaps, ca-file: "+ca.File+"}")},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, _, _ := startLoggedProxy(t, "listen:\n  - address: 127.0.0.1:0\n"+adminExtra+limits+c.servers)
			conn := rawDial(t, a.Addrs()[0])
			if err := conn.nc.(*net.TCPConn).SetReadBuffer(256 << 10); err != nil { // little room to hide in
				t.Fatal(err)
			}
			held := func() float64 { return metric(t, a, `ldapmux_server_reads_held_total{server="ds1"}`) }
			got := refreshDNs(t, "", func() {
				eventually(t, 30*time.Second, "ldapmux holding the server for the client", func() bool { return held() > 0 })
			}, conn)
			if !slices.Equal(got, want) {
				t.Fatalf("through ldapmux the refresh sent %d entries, straight %d, or they differ", len(got), len(want))
			}
			t.Logf("refresh of %d entries read by a client that paused: ldapmux held the server %v times, dropped nothing", len(got), held())
		})
	}
}

// refreshDNs binds as the rootdn and sends a sync refreshOnly search of the bulk subtree on a new
// raw connection to addr (or on conn when given), calls paused (when not
// nil) before reading anything, then reads to the final result, which must
// be success, and returns the entries (with their sync state controls) in
// order.
func refreshDNs(t *testing.T, addr string, paused func(), conn ...*rawClient) []string {
	t.Helper()
	c := func() *rawClient {
		if len(conn) > 0 {
			return conn[0]
		}
		return rawDial(t, addr)
	}()
	c.send(ldapwire.AppendSimpleBind(nil, 1, slapdtest.AdminDN, slapdtest.AdminPassword)) // no size limit
	if _, _, code := c.result(); code != ldapwire.Success {
		t.Fatalf("bind as the rootdn: %d", code)
	}
	refreshOnly := []byte{0x30, 0x03, 0x0a, 0x01, 0x01}
	controls := ldapwire.AppendControls(ldapwire.AppendControl(nil, ldapwire.OIDSyncRequest, true, refreshOnly))
	req := bulkSearch(2)
	msg, err := ldapwire.Parse(req)
	if err != nil {
		t.Fatal(err)
	}
	c.send(ldapwire.AppendMessage(nil, 2, msg.Op, controls, nil))
	if paused != nil {
		paused()
	}
	var dns []string
	for {
		m, err := c.next()
		if err != nil {
			t.Fatalf("after %d entries: %v", len(dns), err)
		}
		switch m.OpTag {
		case ldapwire.OpSearchResultEntry:
			dns = append(dns, string(m.Body)+string(m.Controls))
		case ldapwire.OpSearchResultDone:
			if res, _ := ldapwire.ParseResult(m.Body); res.Code != ldapwire.Success {
				t.Fatalf("refresh ended with %d: %s", res.Code, res.Diagnostic)
			}
			return dns
		}
	}
}
