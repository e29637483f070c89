package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestSlapdConsumerThroughProxy feeds a read-only slapd replica, as a remote
// site keeps one, through ldapmux: its syncrepl refreshAndPersist search,
// bound as the rootdn, goes through the proxy. The replica must hold what
// the providers hold, with the same entryUUIDs and entryCSNs; it must take
// the writes made through ldapmux while its search stays open; and once the
// primary provider is killed, its search ends, it searches again with its
// cookie, ldapmux sends it to the other provider, and it gets the changes
// made meanwhile, a delete among them.
func TestSlapdConsumerThroughProxy(t *testing.T) {
	providers := slapdtest.ForTest(t, slapdtest.Options{Replicas: 2, Users: 20})
	primary, secondary := providers.Replica(1), providers.Replica(2)
	_, addr := startProxy(t, providers, failoverPool)
	consumer := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 20, Provider: "ldap://" + addr}).Replica(1)

	replicaTree := func(r *slapdtest.Replica) string { return replicatedTree(t, r) }
	if want, got := replicaTree(primary), replicaTree(consumer); want != got {
		t.Fatalf("after its refresh the consumer holds\n%s\nthe provider\n%s", firstDifference(got, want), firstDifference(want, got))
	}
	t.Logf("refresh through ldapmux: %d entries, entryUUIDs and entryCSNs as on the provider", strings.Count(replicaTree(consumer), "\n")+1)

	writer := bindAs(t, addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	defer writer.Close()
	for n := 1; n <= 3; n++ {
		addRole(t, writer, n)
	}
	modifyRole(t, writer, 1, "while the search is open")
	if err := writer.Del(ldap.NewDelRequest(roleDN(3), nil)); err != nil {
		t.Fatalf("delete: %v", err)
	}
	sameTreeEventually(t, "the writes made through ldapmux", primary, consumer)
	if err := providers.WaitReplicated(t.Context()); err != nil { // the secondary has them too
		t.Fatal(err)
	}

	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	// Writes made through ldapmux now reach the secondary, once the proxy
	// has found the primary gone (the first may get unavailable, 52).
	eventually(t, 20*time.Second, "a write through ldapmux after the primary's death", func() bool {
		return writer.Add(roleRequest(4)) == nil
	})
	modifyRole(t, writer, 1, "after the failover")
	if err := writer.Del(ldap.NewDelRequest(roleDN(2), nil)); err != nil {
		t.Fatalf("delete after the failover: %v", err)
	}
	sameTreeEventually(t, "the writes made on the secondary after the primary's death", secondary, consumer)
}

// roleDN names the n-th entry the test writes below the scratch subtree.
func roleDN(n int) string { return fmt.Sprintf("cn=consumer-%d,%s", n, slapdtest.ScratchDN) }

// roleRequest adds the entry roleDN(n) names.
func roleRequest(n int) *ldap.AddRequest { return scratchEntry(fmt.Sprintf("consumer-%d", n)) }

func addRole(t *testing.T, conn *ldap.Conn, n int) {
	t.Helper()
	if err := conn.Add(roleRequest(n)); err != nil {
		t.Fatalf("add %s: %v", roleDN(n), err)
	}
}

func modifyRole(t *testing.T, conn *ldap.Conn, n int, description string) {
	t.Helper()
	mod := ldap.NewModifyRequest(roleDN(n), nil)
	mod.Replace("description", []string{description})
	if err := conn.Modify(mod); err != nil {
		t.Fatalf("modify %s: %v", roleDN(n), err)
	}
}

// sameTreeEventually waits until the consumer holds what the provider holds.
func sameTreeEventually(t *testing.T, what string, provider, consumer *slapdtest.Replica) {
	t.Helper()
	var want, got string
	deadline := time.Now().Add(30 * time.Second)
	for {
		want, got = replicatedTree(t, provider), replicatedTree(t, consumer)
		if want == got {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach the consumer in 30s; it holds\n%s\nthe provider\n%s", what,
				firstDifference(got, want), firstDifference(want, got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replicatedTree renders every entry of the suffix as the rootdn reads it
// straight from r, with the attributes replication keeps: all user
// attributes, entryUUID and entryCSN.
func replicatedTree(t *testing.T, r *slapdtest.Replica) string {
	t.Helper()
	conn := bindAs(t, r.Addr, slapdtest.AdminDN, slapdtest.AdminPassword)
	defer conn.Close()
	tree, err := readTree(conn, "*", "entryUUID", "entryCSN")
	if err != nil {
		t.Fatalf("read replica %d: %v", r.ID, err)
	}
	return tree
}

// firstDifference returns the lines of a that b lacks, at most five.
func firstDifference(a, b string) string {
	have := make(map[string]bool)
	for _, l := range strings.Split(b, "\n") {
		have[l] = true
	}
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !have[l] && len(out) < 5 {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return "(nothing the other lacks)"
	}
	return strings.Join(out, "\n")
}
