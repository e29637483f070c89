package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/frontend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// lbDial connects to addr like a load balancer relaying a client from src:
// a PROXY protocol v2 header (with the SSL TLV when ssl), then LDAP.
func lbDial(t *testing.T, addr, src string, ssl bool) *ldap.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	hdr := frontend.AppendProxyHeader(nil, netip.MustParseAddrPort(src), netip.MustParseAddrPort(addr), ssl)
	if _, err := nc.Write(hdr); err != nil {
		t.Fatal(err)
	}
	conn := ldap.NewConn(nc, false)
	conn.Start()
	conn.SetTimeout(10 * time.Second)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestProxyProtocol puts ldapmux behind a "load balancer" on 127.0.0.1:
// routing, per-address limits, require-secure-bind and logs see the client
// address from the PROXY header; a header from an untrusted peer is not
// believed, and a trusted peer must send one.
func TestProxyProtocol(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	yaml := fmt.Sprintf(`listen:
  - address: 127.0.0.1:0
    proxy-protocol: true
    trusted-proxies: [127.0.0.1]
  - address: 127.0.0.1:0
    proxy-protocol: true
    trusted-proxies: [10.0.0.0/8]
servers:
  - name: ds1
    address: %s
  - name: void
    address: %s
service-account:
  bind-dn: %s
  password: %s
algorithms:
  lb-clients: {type: failover, servers: [ds1]}
  others: {type: failover, servers: [void]}
routes:
  - match: {client-networks: [192.0.2.0/24]}
    algorithm: lb-clients
  - algorithm: others
require-secure-bind: true
limits:
  max-connections-per-client-ip: 1
`, cluster.Replicas[0].Addr, closedAddr(t), slapdtest.ServiceDN, slapdtest.ServicePassword)
	a, _, logs := startLoggedProxy(t, yaml)
	trusted, untrusted := a.Addrs()[0], a.Addrs()[1]

	client := lbDial(t, trusted, "192.0.2.10:40000", false)
	if err := expectUID(client, 1); err != nil {
		t.Fatalf("client 192.0.2.10 must be routed to ds1: %v", err)
	}
	if err := expectUID(lbDial(t, trusted, "198.51.100.7:40000", false), 1); resultCode(err) != ldapwire.Unavailable {
		t.Fatalf("client 198.51.100.7 must be routed to void: %v", err)
	}
	if err := client.Bind(slapdtest.UserDN(1), slapdtest.UserPassword(1)); resultCode(err) != ldapwire.ConfidentialityRequired {
		t.Fatalf("password from a client that reached the balancer in clear: want 13, got %v", err)
	}
	tlsClient := lbDial(t, trusted, "192.0.2.20:40000", true)
	if err := tlsClient.Bind(slapdtest.UserDN(2), slapdtest.UserPassword(2)); err != nil {
		t.Fatalf("password from a client whose TLS the balancer ended: %v", err)
	}

	second := rawDial(t, trusted) // the same client address again: over its limit of 1
	second.send(frontend.AppendProxyHeader(nil, netip.MustParseAddrPort("192.0.2.10:40001"), netip.MustParseAddrPort(trusted), false))
	second.expectNoticeAndClose(ldapwire.Busy)
	eventually(t, 5*time.Second, "the refusal logged with the real address", func() bool {
		return strings.Contains(logs.String(), "client=192.0.2.10")
	})
	if err := expectUID(lbDial(t, trusted, "192.0.2.11:40000", false), 2); err != nil {
		t.Fatalf("another client address through the same balancer: %v", err)
	}

	local := rawDial(t, trusted) // LOCAL: the balancer's own check, routed by its address
	local.send(append(append([]byte{}, "\r\n\r\n\x00\r\nQUIT\n"...), 0x20, 0x00, 0, 0))
	local.send(baseSearch(1, slapdtest.BaseDN))
	if _, _, code := nextDone(local); code != ldapwire.Unavailable {
		t.Fatalf("LOCAL connection routed as %d, want the balancer's own address (void: 52)", code)
	}

	noHeader := rawDial(t, trusted) // a trusted peer must send a header
	noHeader.send(baseSearch(1, slapdtest.BaseDN))
	if msg, err := noHeader.next(); err == nil {
		t.Fatalf("LDAP without a header from a trusted peer was answered: %+v", msg)
	}

	local.nc.Close() // the limit of 1 per address applies to 127.0.0.1 too
	eventually(t, 5*time.Second, "127.0.0.1's connection released", func() bool {
		return a.FrontendServer().ConnectionsFrom(netip.MustParseAddr("127.0.0.1")) == 0
	})
	spoof := rawDial(t, untrusted) // a header from an untrusted peer is not believed
	spoof.send(frontend.AppendProxyHeader(nil, netip.MustParseAddrPort("192.0.2.10:40000"), netip.MustParseAddrPort(untrusted), true))
	spoof.expectNoticeAndClose(ldapwire.ProtocolError)
	spoof.nc.Close()
	eventually(t, 5*time.Second, "127.0.0.1's connection released", func() bool {
		return a.FrontendServer().ConnectionsFrom(netip.MustParseAddr("127.0.0.1")) == 0
	})
	if err := expectUID(dial(t, untrusted), 1); resultCode(err) != ldapwire.Unavailable {
		t.Fatalf("a direct client of the untrusted-peer listener must be routed by its own address: %v", err)
	}
}
