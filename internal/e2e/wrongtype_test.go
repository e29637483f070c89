package e2e

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// unavailableDiag is the diagnostic of the fake server's wrong-type answer.
const unavailableDiag = "critical extension is unavailable"

// wrongTypeServer answers like a Samba AD DC that does not know a critical
// control: an ExtendedResponse (unavailableCriticalExtension) instead of a
// SearchResultDone. Binds succeed and the root DSE reads normally, so that
// ldapmux's service account and health checks are content.
type wrongTypeServer struct {
	addr  string
	wrong atomic.Int64 // searches answered with the wrong type
	mu    sync.Mutex   // mu guards conns
	conns []net.Conn
}

func startWrongTypeServer(t *testing.T) *wrongTypeServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &wrongTypeServer{addr: l.Addr().String()}
	t.Cleanup(func() { l.Close(); s.closeAll() })
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, nc)
			s.mu.Unlock()
			go s.serve(nc)
		}
	}()
	return s
}

func (s *wrongTypeServer) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, nc := range s.conns {
		nc.Close()
	}
}

func (s *wrongTypeServer) serve(nc net.Conn) {
	defer nc.Close()
	br := bufio.NewReader(nc)
	for {
		p, err := ber.ReadPacket(br)
		if err != nil || len(p.Children) < 2 {
			return
		}
		id, _ := p.Children[0].Value.(int64)
		out := s.answer(id, p.Children[1])
		for _, m := range out {
			if _, err := nc.Write(m.Bytes()); err != nil {
				return
			}
		}
	}
}

// answer returns the messages that answer request op.
func (s *wrongTypeServer) answer(id int64, op *ber.Packet) []*ber.Packet {
	switch op.Tag {
	case tagBindRequest:
		return []*ber.Packet{message(id, resultOp(tagBindResponse, 0, ""))}
	case tagSearchRequest:
		if len(op.Children) > 0 && op.Children[0].Data.Len() == 0 {
			return []*ber.Packet{message(id, rootDSEEntry()), message(id, resultOp(tagSearchDone, 0, ""))}
		}
		s.wrong.Add(1)
		return []*ber.Packet{message(id, resultOp(tagExtendedResp, ldap.LDAPResultUnavailableCriticalExtension, unavailableDiag))}
	case tagExtendedRequest:
		return []*ber.Packet{message(id, resultOp(tagExtendedResp, 0, ""))}
	case tagAbandonRequest, 2: // abandon, unbind: no answer
		return nil
	}
	return []*ber.Packet{message(id, resultOp(op.Tag+1, ldap.LDAPResultUnwillingToPerform, "not in this fake"))}
}

// resultOp is an LDAPResult protocolOp with the given tag.
func resultOp(tag ber.Tag, code uint16, diag string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "result")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), "resultCode"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, "diagnosticMessage"))
	return op
}

// rootDSEEntry is a minimal root DSE.
func rootDSEEntry() *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tagSearchEntry, nil, "SearchResultEntry")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "objectName"))
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes")
	attr := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attribute")
	attr.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "namingContexts", "type"))
	vals := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "vals")
	vals.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, slapdtest.BaseDN, "value"))
	attr.AppendChild(vals)
	attrs.AppendChild(attr)
	op.AppendChild(attrs)
	return op
}

// TestWrongTypeAnswer: a server that answers a search with an
// ExtendedResponse instead of a SearchResultDone. The client must get the
// search's result, unavailableCriticalExtension with the server's
// diagnostic, at once (go-ldap would wait forever for a SearchResultDone),
// and ldapmux must go on serving.
func TestWrongTypeAnswer(t *testing.T) {
	fake := startWrongTypeServer(t)
	_, addr := startProxyYAML(t, "listen:\n  - address: 127.0.0.1:0\nservers:\n  - name: samba\n    address: "+fake.addr+
		"\nservice-account:\n  bind-dn: "+slapdtest.ServiceDN+"\n  password: "+slapdtest.ServicePassword+"\n")
	conn := dial(t, addr)
	conn.SetTimeout(10 * time.Second)
	for i := range 3 {
		began := time.Now()
		_, err := conn.Search(ldap.NewSearchRequest(slapdtest.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=user)", []string{"cn"}, []ldap.Control{ldap.NewControlMicrosoftShowDeleted()}))
		took := time.Since(began)
		var lerr *ldap.Error
		if !errors.As(err, &lerr) || lerr.ResultCode != ldap.LDAPResultUnavailableCriticalExtension || lerr.Err == nil || lerr.Err.Error() != unavailableDiag {
			t.Fatalf("search %d: got %v after %s, want result 12 %q", i, err, took.Round(time.Millisecond), unavailableDiag)
		}
		if took > 3*time.Second {
			t.Fatalf("search %d took %s", i, took)
		}
		if _, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"namingContexts"}, nil)); err != nil {
			t.Fatalf("root DSE after search %d: %v", i, err)
		}
	}
	if n := fake.wrong.Load(); n < 3 {
		t.Fatalf("the server answered %d searches with the wrong type, want 3", n)
	}
	if err := bindAs(t, addr, slapdtest.UserDN(1), slapdtest.UserPassword(1)).Bind(slapdtest.UserDN(2), slapdtest.UserPassword(2)); err != nil {
		t.Fatalf("bind after the wrong-type answers: %v", err)
	}
}
