package e2e

import (
	"slices"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// cancelOp cancels message target (RFC 3909); a negative target sends a
// request value that is not a cancelID.
func cancelOp(target int64) *ber.Packet {
	op := extendedOp(ldapwire.OIDCancel)
	value := ber.NewSequence("cancelRequestValue")
	if target >= 0 {
		value.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, target, "cancelID"))
	} else {
		value.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "x", "not a cancelID"))
	}
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, string(value.Bytes()), "requestValue"))
	return op
}

// TestCancelAsOnSlapd cancels (RFC 3909) a refreshAndPersist search through
// ldapmux and directly on slapd, and sends a Cancel of an unknown message
// ID: every answer, and the order of the answers, must be the same through
// ldapmux as directly; the search is released on the server and the
// connection goes on serving. A malformed Cancel gets protocolError (slapd
// reads a cancelID out of anything).
func TestCancelAsOnSlapd(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	a, addr := startProxy(t, cluster, "")
	who := userIdentity(1)
	proxied, onSlapd := berDial(t, addr), berDial(t, cluster.Replicas[0].Addr)
	viaProxy, direct := startSync(t, proxied, who), startSync(t, onSlapd, who)
	eventually(t, 10*time.Second, "the refresh of both searches", func() bool {
		p, _ := viaProxy.state()
		d, _ := direct.state()
		return len(p) > 0 && len(d) > 0
	})

	const unknown, malformed, cancel, after = syncID + 1, syncID + 2, syncID + 3, syncID + 4
	for _, c := range []*berClient{proxied, onSlapd} {
		c.send(message(unknown, cancelOp(99)), message(malformed, cancelOp(-1)))
	}
	answered := func(s *syncStream, ids ...int64) bool {
		for _, id := range ids {
			if _, ok := s.reply(id); !ok {
				return false
			}
		}
		return true
	}
	eventually(t, 10*time.Second, "the answers to the unknown and malformed cancels", func() bool {
		return answered(viaProxy, unknown, malformed) && answered(direct, unknown, malformed)
	})
	if _, ended := viaProxy.state(); ended != "" {
		t.Fatalf("a cancel naming another message ended the search: %s", ended)
	}
	for _, c := range []*berClient{proxied, onSlapd} {
		c.send(message(cancel, cancelOp(syncID)))
	}
	eventually(t, 10*time.Second, "the search ended and the cancel answered", func() bool {
		_, pEnded := viaProxy.state()
		_, dEnded := direct.state()
		return pEnded != "" && dEnded != "" && answered(viaProxy, cancel) && answered(direct, cancel)
	})

	_, pEnded := viaProxy.state()
	_, dEnded := direct.state()
	if pEnded != dEnded {
		t.Errorf("the canceled search ended through ldapmux with %s, directly with %s", pEnded, dEnded)
	}
	if r, _ := viaProxy.reply(malformed); r.tag != tagExtendedResp || r.code != ldapwire.ProtocolError {
		t.Errorf("malformed cancel answered with operation %d result %d %q, want protocolError", r.tag, r.code, r.diag)
	}
	for _, id := range []int64{unknown, cancel} {
		p, _ := viaProxy.reply(id)
		d, _ := direct.reply(id)
		if p.tag != d.tag || p.code != d.code {
			t.Errorf("message %d answered through ldapmux with operation %d result %d %q, directly with operation %d result %d %q",
				id, p.tag, p.code, p.diag, d.tag, d.code, d.diag)
		}
	}
	// The canceled search ends before the Cancel is answered (RFC 3909).
	// The two cancels sent together are answered in any order, directly too.
	sentAlone := func(s *syncStream) []int64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return slices.DeleteFunc(slices.Clone(s.finals), func(id int64) bool { return id == unknown || id == malformed })
	}
	if pOrder, dOrder := sentAlone(viaProxy), sentAlone(direct); !slices.Equal(pOrder, dOrder) {
		t.Errorf("final answers through ldapmux came in the order %v, directly %v", pOrder, dOrder)
	}

	proxied.send(message(after, searchOp(slapdtest.UserDN(2), ldap.ScopeBaseObject, "(objectClass=*)", "uid")))
	eventually(t, 10*time.Second, "the search after the cancel answered", func() bool { return answered(viaProxy, after) })
	if r, _ := viaProxy.reply(after); r.code != 0 {
		t.Fatalf("search after the cancel: result %d %q", r.code, r.diag)
	}
	eventually(t, 10*time.Second, "the canceled search released upstream", func() bool { return a.Servers()[0].Outstanding() == 0 })
}
