package e2e

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// baseSearch encodes a base-object search for dn with message ID id.
func baseSearch(id int32, dn string) []byte {
	op := []byte{ldapwire.OpSearchRequest}
	body := []byte{0x04, byte(len(dn))}
	body = append(body, dn...)
	body = append(body, 0x0a, 1, 0, 0x0a, 1, 0, 0x02, 1, 0, 0x02, 1, 0, 0x01, 1, 0)
	body = append(body, 0x87, 11)
	body = append(body, "objectClass"...)
	body = append(body, 0x30, 0)
	op = append(op, byte(len(body)))
	op = append(op, body...)
	return ldapwire.AppendMessage(nil, id, op, nil, nil)
}

// TestMalformedPDUs sends broken messages: each closes only its own client,
// with a protocolError notice, while a well-behaved client keeps working.
func TestMalformedPDUs(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	_, addr := startProxy(t, cluster, "limits:\n  max-pdu-size: 64KiB\n")
	good := bindAs(t, addr, slapdtest.UserDN(3), slapdtest.UserPassword(3))
	valid := baseSearch(1, slapdtest.BaseDN)
	cases := map[string][]byte{
		"wrong outer tag":    append([]byte{0x31}, valid[1:]...),
		"huge length":        {0x30, 0x84, 0x7f, 0xff, 0xff, 0xff},
		"over the PDU limit": {0x30, 0x83, 0x01, 0x00, 0x01},
		"indefinite length":  {0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00},
		"bad message ID":     {0x30, 0x05, 0x04, 0x01, 0x01, 0x42, 0x00},
		"inner overflow":     {0x30, 0x05, 0x02, 0x01, 0x01, 0x63, 0x7f},
		"message ID 0":       baseSearch(0, slapdtest.BaseDN),
		"unknown operation":  {0x30, 0x05, 0x02, 0x01, 0x01, 0x7e, 0x00},
	}
	for name, pdu := range cases {
		t.Run(name, func(t *testing.T) {
			c := rawDial(t, addr)
			c.send(pdu)
			c.expectNoticeAndClose(ldapwire.ProtocolError)
			if err := expectUser(good, 1); err != nil {
				t.Fatalf("well-behaved client after %s: %v", name, err)
			}
		})
	}
	t.Run("truncated then gone", func(t *testing.T) {
		c := rawDial(t, addr)
		c.send(valid[:len(valid)-4])
		c.nc.Close()
		if err := expectUser(good, 2); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("abandon of unknown ID and duplicate IDs", func(t *testing.T) {
		c := rawDial(t, addr)
		c.send(ldapwire.AppendAbandon(nil, 7, 12345))
		c.send(baseSearch(8, slapdtest.BaseDN))
		if id, tag, code := nextDone(c); id != 8 || tag != ldapwire.OpSearchResultDone || code != 0 {
			t.Fatalf("search after abandon of unknown ID: id %d tag %x code %d", id, tag, code)
		}
	})
}

// nextDone skips entries and returns the first final response.
func nextDone(c *rawClient) (int32, byte, int) {
	for {
		id, tag, code := c.result()
		if ldapwire.IsFinal(tag) {
			return id, tag, code
		}
	}
}

// TestAbandonIsTranslated abandons a search held up by a hung server: the
// abandon reaches slapd under the backend's message ID, and the client gets
// nothing more for the abandoned operation while its next one works. The
// same for an anonymous client (unbound connections) and a bound one (the
// connection its bind left bound).
func TestAbandonIsTranslated(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	a, addr := startProxy(t, cluster, "")
	replica, server := cluster.Replicas[0], a.Servers()[0]
	for _, bound := range []bool{false, true} {
		c := rawDial(t, addr)
		if bound {
			c.send(ldapwire.AppendSimpleBind(nil, 1, slapdtest.UserDN(2), slapdtest.UserPassword(2)))
			if id, _, code := nextDone(c); id != 1 || code != 0 {
				t.Fatalf("bind: id %d code %d", id, code)
			}
			eventually(t, 10*time.Second, "the bind's connection kept bound", func() bool { return server.Pool().Stats().OpenBound == 1 })
		}
		c.send(baseSearch(2, slapdtest.BaseDN)) // warm the pool
		nextDone(c)
		before := opCount(t, replica, "abandon")

		if err := replica.Pause(); err != nil {
			t.Fatal(err)
		}
		c.send(baseSearch(5, slapdtest.BaseDN))
		eventually(t, 10*time.Second, "search 5 forwarded", func() bool { return server.Outstanding() == 1 })
		c.send(ldapwire.AppendAbandon(nil, 6, 5))
		eventually(t, 10*time.Second, "search 5 abandoned", func() bool { return server.Outstanding() == 0 })
		c.send(baseSearch(7, slapdtest.UserDN(1)))
		if err := replica.Resume(); err != nil {
			t.Fatal(err)
		}
		id, tag, code := nextDone(c)
		if id != 7 || tag != ldapwire.OpSearchResultDone || code != 0 {
			t.Fatalf("bound %v: want the done of search 7, got id %d tag %x code %d", bound, id, tag, code)
		}
		eventually(t, 10*time.Second, "slapd counting the abandon", func() bool {
			return opCount(t, replica, "abandon") > before
		})
	}
}

// TestGarbageFromBackend puts a server that answers searches with garbage
// first in line: its connection is dropped and reads fail over to slapd.
func TestGarbageFromBackend(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	fake := startGarbageServer(t)
	cfg := "listen:\n  - address: 127.0.0.1:0\nservers:\n  - name: broken\n    address: " + fake.addr +
		"\n  - name: ds1\n    address: " + cluster.Replicas[0].Addr +
		"\nservice-account:\n  bind-dn: " + slapdtest.ServiceDN + "\n  password: " + slapdtest.ServicePassword + "\n"
	_, addr := startProxyYAML(t, cfg)
	conn := dial(t, addr)
	for i := 1; i <= 3; i++ {
		if err := expectUser(bindAs(t, addr, slapdtest.UserDN(i), slapdtest.UserPassword(i)), i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Search(ldap.NewSearchRequest(slapdtest.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", nil, nil)); err != nil {
		t.Fatal(err)
	}
	if fake.garbage.Load() == 0 {
		t.Fatal("the broken server was never asked: the test proves nothing")
	}
}

// garbageServer answers binds and root DSE reads correctly (so that it looks
// healthy) and everything else with bytes that are not LDAP.
type garbageServer struct {
	addr    string
	garbage atomic.Int64
}

func startGarbageServer(t *testing.T) *garbageServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	g := &garbageServer{addr: l.Addr().String()}
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go g.serve(nc)
		}
	}()
	return g
}

func (g *garbageServer) serve(nc net.Conn) {
	defer nc.Close()
	r := ldapwire.NewReader(nc, 0)
	for {
		frame, err := r.Next()
		if err != nil {
			return
		}
		msg, err := ldapwire.Parse(frame)
		if err != nil {
			return
		}
		var out []byte
		switch {
		case msg.OpTag == ldapwire.OpBindRequest:
			out = ldapwire.AppendResult(nil, msg.ID, ldapwire.OpBindResponse, 0, "")
		case msg.OpTag == ldapwire.OpSearchRequest && len(msg.TargetDN()) == 0: // the root DSE: it claims proxied authorization
			out = ldapwire.AppendSearchEntry(nil, msg.ID, "", []ldapwire.Attribute{{Type: "supportedControl", Values: []string{ldapwire.OIDProxiedAuthzV2}}}, false)
			out = ldapwire.AppendResult(out, msg.ID, ldapwire.OpSearchResultDone, 0, "")
		case msg.OpTag == ldapwire.OpAbandonRequest || msg.OpTag == ldapwire.OpUnbindRequest:
			continue
		default:
			g.garbage.Add(1)
			out = []byte{0x31, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00}
		}
		if _, err := nc.Write(out); err != nil {
			return
		}
	}
}
