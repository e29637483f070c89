//go:build linux

package e2e

import (
	"fmt"
	"strings"
	"testing"

	ntlmssp "github.com/Azure/go-ntlmssp"
	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/dirtest"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// TestADSASLBinds has clients bind to the AD DC with SASL NTLM (two
// rounds: the client's negotiate message, the DC's challenge, the client's
// answer) straight and through ldapmux, four at once as different users,
// with a wrong password, then the right one, then a simple bind as someone
// else, each followed by reads that show who the connection is. In
// client-bind mode a SASL bind goes on the client's own connection: every
// answer but the challenge (random) must be the same byte for byte.
func TestADSASLBinds(t *testing.T) {
	ad, _, addr := startADProxy(t, "")
	users := ad.Users()
	for client := range 4 {
		user, other := users[client%len(users)], users[(client+1)%len(users)]
		t.Run(fmt.Sprintf("client %d as %s", client, user), func(t *testing.T) {
			t.Parallel()
			pair := clientPairs(t, ad.Addr, addr, [][2]string{{"", ""}})[0]
			id := int64(1)
			steps := []func(c *rawClient) [][]byte{
				func(c *rawClient) [][]byte { return ntlmBind(t, c, &id, user, "wrong") },
				func(c *rawClient) [][]byte { return adReads(t, c, &id, ad) },
				func(c *rawClient) [][]byte { return ntlmBind(t, c, &id, user, ad.UserPassword(user)) },
				func(c *rawClient) [][]byte { return adReads(t, c, &id, ad) },
				func(c *rawClient) [][]byte { return ntlmBind(t, c, &id, other, "wrong") },
				func(c *rawClient) [][]byte { return adReads(t, c, &id, ad) },
				func(c *rawClient) [][]byte {
					id++
					return c.exchange(t, message(id, bindOp(ad.UserDN(other), ad.UserPassword(other))).Bytes(), id)
				},
				func(c *rawClient) [][]byte { return adReads(t, c, &id, ad) },
			}
			for i, step := range steps {
				start := id
				want := step(pair.direct)
				id = start
				got := step(pair.proxied)
				if !sameFrames(want, got) {
					t.Fatalf("step %d: through ldapmux %s, straight %s", i, describeFrames(got), describeFrames(want))
				}
				if res, err := ldapwire.ParseResult(mustParse(t, want[len(want)-1]).Body); i == 2 && (err != nil || res.Code != ldapwire.Success) {
					t.Fatalf("NTLM bind as %s with the right password: %v %d %q", user, err, res.Code, res.Diagnostic)
				}
			}
		})
	}
}

// TestADSASLWithLdapsearch runs OpenLDAP's ldapsearch with SASL NTLM (Cyrus
// SASL's client: two rounds, no security layer) against the AD DC straight
// and through ldapmux, four at once as different users with their passwords
// and wrong ones, and compares what each prints.
func TestADSASLWithLdapsearch(t *testing.T) {
	ad, _, addr := startADProxy(t, "")
	type run struct{ user, password string }
	runs := []run{{"alice", ad.UserPassword("alice")}, {"bob", ad.UserPassword("bob")}, {"alice", "wrong"}, {"Administrator", ad.AdminPassword}}
	for i, r := range runs {
		t.Run(fmt.Sprintf("%d %s", i, r.user), func(t *testing.T) {
			t.Parallel()
			var outs []string
			for _, target := range []string{ad.Addr, addr} {
				out, err := runTool(t, nil, "ldapsearch", "-H", "ldap://"+target, "-Y", "NTLM", "-U", r.user, "-w", r.password,
					"-b", "CN=Users,"+ad.BaseDN, "-s", "one", "(objectClass=user)", "sAMAccountName", "mail", "memberOf")
				outs = append(outs, fmt.Sprintf("%v\n%s", err, out))
			}
			if outs[0] != outs[1] {
				t.Fatalf("ldapsearch -Y NTLM as %s:\nthrough ldapmux:\n%s\nstraight:\n%s", r.user, outs[1], outs[0])
			}
			if r.password != "wrong" && !strings.Contains(outs[0], "numEntries: ") {
				t.Fatalf("ldapsearch -Y NTLM as %s found nothing straight:\n%s", r.user, outs[0])
			}
		})
	}
}

// ntlmBind binds c with SASL NTLM as user with password (message IDs
// after *id) and returns the final answer; the challenge must come first.
func ntlmBind(t *testing.T, c *rawClient, id *int64, user, password string) [][]byte {
	t.Helper()
	negotiate, err := ntlmssp.NewNegotiateMessage(dirtest.ADDomain, "")
	if err != nil {
		t.Fatal(err)
	}
	*id++
	frames := c.exchange(t, saslBindRequest(int32(*id), "NTLM", negotiate), *id)
	res, err := ldapwire.ParseResult(mustParse(t, frames[0]).Body)
	if err != nil || res.Code != ldapwire.SaslBindInProgress {
		t.Fatalf("NTLM negotiate as %s: %v %d %q, want saslBindInProgress", user, err, res.Code, res.Diagnostic)
	}
	answer, err := ntlmssp.NewAuthenticateMessage(serverSASLCreds(t, frames[0]), user, password, nil)
	if err != nil {
		t.Fatal(err)
	}
	*id++
	return c.exchange(t, saslBindRequest(int32(*id), "NTLM", answer), *id)
}

// adReads reads what shows who c is bound as: a user's groups, what only
// the Administrator may read, the users.
func adReads(t *testing.T, c *rawClient, id *int64, ad *dirtest.AD) [][]byte {
	t.Helper()
	var frames [][]byte
	for _, op := range []*ber.Packet{
		searchOp(ad.UserDN("bob"), ldap.ScopeBaseObject, "(objectClass=*)", "mail", "memberOf"),
		searchOp(ad.UserDN("alice"), ldap.ScopeBaseObject, "(objectClass=*)", "allowedAttributesEffective"),
		searchOp("CN=Users,"+ad.BaseDN, ldap.ScopeSingleLevel, "(objectClass=user)", "sAMAccountName"),
	} {
		*id++
		frames = append(frames, c.exchange(t, message(*id, op).Bytes(), *id)...)
	}
	return frames
}

// serverSASLCreds is the serverSaslCreds of a bind response.
func serverSASLCreds(t *testing.T, frame []byte) []byte {
	t.Helper()
	p, err := ber.DecodePacketErr(frame)
	if err != nil || len(p.Children) < 2 {
		t.Fatalf("malformed bind response %x: %v", frame, err)
	}
	for _, c := range p.Children[1].Children {
		if c.ClassType == ber.ClassContext && c.Tag == 7 {
			return c.Data.Bytes()
		}
	}
	t.Fatalf("bind response without serverSaslCreds: %x", frame)
	return nil
}
