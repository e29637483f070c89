package e2e

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// bigEntry is an entry of about size bytes below the scratch container:
// one random jpegPhoto value, or as many 1 KiB description values.
type bigEntry struct {
	cn       string
	size     int
	describe bool // description values instead of a photo
}

func (b bigEntry) dn() string { return "cn=" + b.cn + "," + slapdtest.ScratchDN }

// addRequest builds the entry; its content depends only on b.
func (b bigEntry) addRequest() *ldap.AddRequest {
	add := ldap.NewAddRequest(b.dn(), nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("cn", []string{b.cn})
	add.Attribute("sn", []string{b.cn})
	rng := rand.New(rand.NewChaCha8(sha256.Sum256([]byte(b.cn))))
	if b.describe {
		vals := make([]string, 0, b.size>>10)
		for i := range b.size >> 10 {
			vals = append(vals, fmt.Sprintf("%06d %s", i, strings.Repeat(string(rune('a'+rng.IntN(26))), 1016)))
		}
		add.Attribute("description", vals)
		return add
	}
	photo := make([]byte, b.size)
	for i := range photo {
		photo[i] = byte(rng.Uint32())
	}
	add.Attribute("jpegPhoto", []string{string(photo)})
	return add
}

// readEntry reads every user attribute of dn and renders it.
func readEntry(conn *ldap.Conn, dn string) (string, error) {
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"*"}, nil))
	if err != nil {
		return "", err
	}
	if len(res.Entries) != 1 {
		return "", fmt.Errorf("%s: %d entries", dn, len(res.Entries))
	}
	return renderEntries(res.Entries), nil
}

// TestLargeEntries: entries of 1 to 8 MiB, added directly and (2 MiB)
// through ldapmux, read through ldapmux by 8 clients while 8 others run
// small searches over the same single server connection. Every answer must
// equal slapd's to the byte, the connection that added a big entry must go
// on working, no server may change state and nothing may be logged as
// malformed.
func TestLargeEntries(t *testing.T) {
	const mib = 1 << 20
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 20})
	replica := cluster.Replicas[0]
	a, _, logs := startLoggedProxy(t, proxyConfig(cluster, "pool:\n  connections-per-server: 1\n"))
	addr := a.Addrs()[0]

	big := []bigEntry{{"big-1m", mib, true}, {"big-2m", 2 * mib, false}, {"big-4m", 4 * mib, true}, {"big-8m", 8 * mib, false}}
	admin := bindAs(t, replica.Addr, slapdtest.AdminDN, slapdtest.AdminPassword)
	for _, b := range big {
		if err := admin.Add(b.addRequest()); err != nil {
			t.Fatalf("add %s directly: %v", b.cn, err)
		}
	}

	proxied := bigEntry{"big-proxied-2m", 2 * mib, false}
	writer := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	if err := writer.Add(proxied.addRequest()); err != nil {
		t.Fatalf("add %s through ldapmux: %v", proxied.cn, err)
	}
	if err := expectUser(writer, 1); err != nil {
		t.Fatalf("the request after a 2 MiB add on the same connection: %v", err)
	}
	big = append(big, proxied)

	direct := dial(t, replica.Addr)
	want := map[string]string{}
	for _, b := range big {
		text, err := readEntry(direct, b.dn())
		if err != nil {
			t.Fatalf("read %s directly: %v", b.cn, err)
		}
		want[b.dn()] = text
	}
	if got, err := readEntry(writer, proxied.dn()); err != nil || got != want[proxied.dn()] {
		t.Fatalf("%s read back through ldapmux by its writer: %v %s", proxied.cn, err, firstDiff(got, want[proxied.dn()]))
	}

	readBigAndSmall(t, addr, big, want)
	assertStayedAvailable(t, a)
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(strings.ToLower(line), "malformed") {
			t.Errorf("ldapmux logged: %s", line)
		}
	}
}

// readBigAndSmall has 8 clients read the big entries through ldapmux (2
// rounds each) while 8 others search for sample users until they are done.
func readBigAndSmall(t *testing.T, addr string, big []bigEntry, want map[string]string) {
	t.Helper()
	const readers, rounds, searchers = 8, 2, 8
	var fails failures
	var bigReads, smallReads atomic.Int64
	stop := make(chan struct{})
	var small sync.WaitGroup
	for i := 1; i <= searchers; i++ {
		conn := bindAs(t, addr, slapdtest.UserDN(i), slapdtest.UserPassword(i))
		small.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := expectUser(conn, (i+n)%20+1); err != nil {
					fails.add("small search by user %d: %v", i, err)
				}
				smallReads.Add(1)
			}
		})
	}
	var readersDone sync.WaitGroup
	for i := range readers {
		conn := dial(t, addr)
		readersDone.Go(func() {
			for r := range rounds {
				b := big[(i+r)%len(big)]
				got, err := readEntry(conn, b.dn())
				if err == nil && got != want[b.dn()] {
					err = fmt.Errorf("differs from slapd's: %s", firstDiff(got, want[b.dn()]))
				}
				if err != nil {
					fails.add("reader %d, %s: %v", i, b.cn, err)
				}
				bigReads.Add(1)
			}
		})
	}
	readersDone.Wait()
	close(stop)
	small.Wait()
	t.Logf("%d big reads, %d small searches meanwhile", bigReads.Load(), smallReads.Load())
	fails.report(t, int(bigReads.Load()+smallReads.Load()))
	if smallReads.Load() < searchers {
		t.Errorf("only %d small searches ran while the big entries were read", smallReads.Load())
	}
}

// TestLargeResponsesBackToBack reads, one after the other on one
// connection, an entry larger than a server connection's read buffer (the
// schema, 84 KB), whose result follows it at once, several hundred times
// through ldapmux, as an LDAP browser or a schema-reading library does:
// every read ends, with the bytes slapd sends straight. The connection's
// reads move from its event loop to a goroutine for the large entry and
// back; a result that came during that handover was once never read.
func TestLargeResponsesBackToBack(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	_, addr := startProxy(t, cluster, "")
	direct := rawDial(t, cluster.Replicas[0].Addr)
	want, err := direct.tryExchange(message(2, searchOp("cn=Subschema", ldap.ScopeBaseObject, "(objectClass=*)", "*", "+")).Bytes(), 2)
	if err != nil || len(want) != 2 || len(want[0]) < 64<<10 {
		t.Fatalf("straight to slapd: %d responses, %v; want the schema (over 64 KiB) and its result", len(want), err)
	}
	const clients, reads = 10, 25
	for n := range clients {
		c := rawDial(t, addr)
		for i := range reads {
			got, err := c.tryExchange(message(2, searchOp("cn=Subschema", ldap.ScopeBaseObject, "(objectClass=*)", "*", "+")).Bytes(), 2)
			if err != nil {
				t.Fatalf("client %d, read %d: %v", n, i, err)
			}
			if !sameFrames(got, want) {
				t.Fatalf("client %d, read %d: %s; straight to slapd: %s", n, i, describeFrames(got), describeFrames(want))
			}
		}
		c.nc.Close()
	}
}
