//go:build linux

package e2e

import (
	"bytes"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// TestADChangeNotification keeps Active Directory's change notification
// search (LDAP_SERVER_NOTIFICATION_OID, a search that never ends, on which
// the DC sends an entry whenever one changes) open straight to the DC and
// through ldapmux for longer than pool.operation-timeout without a
// change: it stays open, the DC stays available, and each change then
// reaches both clients byte for byte.
func TestADChangeNotification(t *testing.T) {
	ad, a, addr := startADProxy(t, "pool:\n  operation-timeout: 1s\n")
	const notification = "1.2.840.113556.1.4.528"
	users := "CN=Users," + ad.BaseDN
	watch := func(target string) *rawClient {
		c := rawDial(t, target)
		c.bind(t, ad.AdminDN, ad.AdminPassword)
		c.send(message(2, searchOp(users, ldap.ScopeSingleLevel, "(objectClass=*)", "description"),
			&ldap.ControlString{ControlType: notification, Criticality: true}).Bytes())
		return c
	}
	straight, proxied := watch(ad.Addr), watch(addr)

	quiet := time.Now().Add(3 * time.Second) // three operation timeouts without a change
	eventually(t, 10*time.Second, "three operation timeouts passed", func() bool { return time.Now().After(quiet) })
	if s := a.Registry().Snapshot().Servers[0]; s.Health.State != backend.Available {
		t.Fatalf("the DC is %s (%s) after a notification search stayed quiet", s.Health.State, s.Health.Reason)
	}

	admin := dial(t, ad.Addr)
	if err := admin.Bind(ad.AdminDN, ad.AdminPassword); err != nil {
		t.Fatal(err)
	}
	for i, text := range []string{"first change", "second change"} {
		mod := ldap.NewModifyRequest(ad.UserDN("bob"), nil)
		mod.Replace("description", []string{text})
		if err := admin.Modify(mod); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		want, err := straight.nextWithin(time.Minute) // Samba looks for changes every few seconds
		if err != nil {
			t.Fatalf("change %d straight: %v", i, err)
		}
		got, err := proxied.nextWithin(time.Minute)
		if err != nil {
			t.Fatalf("change %d through ldapmux: %v", i, err)
		}
		if got.OpTag != ldapwire.OpSearchResultEntry || got.ID != want.ID || !bytes.Equal(want.Op, got.Op) || !bytes.Equal(want.Controls, got.Controls) {
			t.Fatalf("change %d: through ldapmux tag %x %q, straight tag %x %q", i, got.OpTag, got.Op, want.OpTag, want.Op)
		}
	}
}
