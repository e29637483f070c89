package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// TestSASLBinds forwards SASL binds of several mechanisms to real slapd
// (cleartext passwords, authz-regexp mapping uid=NAME to the user entry)
// and checks that the client then acts as the identity the server
// reported, never with the service account's rights.
func TestSASLBinds(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 5})
	_, addr := startProxy(t, cluster, "limits:\n  bind-timeout: 1s\n")
	uri := "ldap://" + addr

	t.Run("an unfinished negotiation is closed after the bind timeout", func(t *testing.T) {
		// First of the subtests: no other connection to slapd closes now.
		// slapd defers the proxy's unbind while a bind is in progress, so
		// its connection count, not its unbind count, shows the close.
		c := rawDial(t, addr)
		c.send(saslBindRequest(1, "DIGEST-MD5", nil))
		if _, _, code := c.result(); code != ldapwire.SaslBindInProgress {
			t.Fatalf("first DIGEST-MD5 round: want 14, got %d", code)
		}
		held := currentConnections(t, cluster.Replicas[0])
		eventually(t, 10*time.Second, "the held connection closed by the proxy", func() bool {
			return currentConnections(t, cluster.Replicas[0]) < held
		})
		// The next round finds no negotiation: it starts a new one on a
		// new connection, and is answered.
		c.send(saslBindRequest(2, "DIGEST-MD5", []byte("username=\"user.1\"")))
		if _, _, code := c.result(); code == ldapwire.Success {
			t.Fatalf("a round after the negotiation expired got %d", code)
		}
	})

	t.Run("DIGEST-MD5 in two rounds, then the client's identity", func(t *testing.T) {
		c := dial(t, addr)
		if _, err := c.DigestMD5Bind(&ldap.DigestMD5BindRequest{Host: "localhost", Username: "user.1", Password: slapdtest.UserPassword(1)}); err != nil {
			t.Fatalf("DIGEST-MD5 bind: %v", err)
		}
		who, err := c.WhoAmI(nil)
		if err != nil || who.AuthzID != "dn:"+slapdtest.UserDN(1) {
			t.Fatalf("who am I after the SASL bind: %+v, %v", who, err)
		}
		_, err = searchDNs(c, slapdtest.SecretDN, "(objectClass=*)")
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			t.Fatalf("the SASL-bound user read the service account's data: %v", err)
		}
	})
	t.Run("OpenLDAP clients: SCRAM-SHA-256, PLAIN, CRAM-MD5", func(t *testing.T) {
		for i, mech := range [][]string{{"-Y", "SCRAM-SHA-256"}, {"-O", "none", "-Y", "PLAIN"}, {"-Y", "CRAM-MD5"}} {
			n := i + 2
			args := append([]string{"-H", uri, "-U", "user." + strconv.Itoa(n), "-w", slapdtest.UserPassword(n)}, mech...)
			out, code := saslTool(t, "ldapwhoami", args...)
			if code != 0 || !strings.Contains(out, "dn:"+slapdtest.UserDN(n)) {
				t.Fatalf("ldapwhoami %v: exit %d\n%s", mech, code, out)
			}
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		out, code := saslTool(t, "ldapwhoami", "-H", uri, "-Y", "SCRAM-SHA-256", "-U", "user.1", "-w", "wrong")
		if code != ldap.LDAPResultInvalidCredentials {
			t.Fatalf("want exit 49, got %d\n%s", code, out)
		}
	})
	t.Run("a security layer is refused, not passed off as success", func(t *testing.T) {
		out, code := saslTool(t, "ldapwhoami", "-H", uri, "-Y", "DIGEST-MD5", "-U", "user.1", "-w", slapdtest.UserPassword(1))
		if code != ldap.LDAPResultOther || !strings.Contains(out, "security layer") {
			t.Fatalf("want result 80 naming the security layer, got exit %d\n%s", code, out)
		}
	})
	t.Run("a simple bind aborts a negotiation", func(t *testing.T) {
		c := rawDial(t, addr)
		c.send(saslBindRequest(1, "DIGEST-MD5", nil))
		if _, _, code := c.result(); code != ldapwire.SaslBindInProgress {
			t.Fatalf("first DIGEST-MD5 round: want 14, got %d", code)
		}
		c.send(ldapwire.AppendSimpleBind(nil, 2, slapdtest.UserDN(4), slapdtest.UserPassword(4)))
		if _, _, code := c.result(); code != ldapwire.Success {
			t.Fatalf("simple bind after an aborted negotiation: %d", code)
		}
		c.send(ldapwire.AppendWhoAmI(nil, 3))
		msg, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if v, _, _ := ldapwire.ParseExtendedValue(msg.Body); string(v) != "dn:"+slapdtest.UserDN(4) {
			t.Fatalf("who am I: %q", v)
		}
	})
}

// currentConnections reads slapd's count of open connections.
func currentConnections(t *testing.T, r *slapdtest.Replica) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := r.CurrentConnections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// saslBindRequest encodes a SASL BindRequest; creds nil leaves them out.
func saslBindRequest(id int32, mech string, creds []byte) []byte {
	sasl := ldapwire.AppendElement(nil, 0x04, []byte(mech))
	if creds != nil {
		sasl = ldapwire.AppendElement(sasl, 0x04, creds)
	}
	op := ldapwire.AppendInteger(nil, 0x02, 3)
	op = ldapwire.AppendElement(op, 0x04, nil)
	op = ldapwire.AppendElement(op, ldapwire.AuthSASL, sasl)
	msg := ldapwire.AppendInteger(nil, 0x02, int64(id))
	msg = ldapwire.AppendElement(msg, ldapwire.OpBindRequest, op)
	return ldapwire.AppendElement(nil, 0x30, msg)
}

// saslTool runs an OpenLDAP client and returns its output and exit code.
func saslTool(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed (package ldap-utils): run `make test`, which installs it", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", name, err)
	}
	return string(out), 0
}
