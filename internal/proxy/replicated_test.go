package proxy

import (
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/balancer"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/replpos"
	"github.com/ldapmux/ldapmux/internal/route"
)

// fakeCSN is the entryCSN the fake server's Post-Read answers carry.
const fakeCSN = "20261204213000.123456Z#000000#002#000000"

// postReadAnswer answers a modify of postReadBase with success and, when
// the request asked for it, a Post-Read control holding entryCSN.
func postReadAnswer(msg ldapwire.Message) []byte {
	if _, asked := ldapwire.FindControl(msg.Controls, OIDPostRead); !asked {
		return ldapwire.AppendResult(nil, msg.ID, ldapwire.OpModifyResponse, ldapwire.Success, "")
	}
	entry := ldapwire.AppendSearchEntry(nil, 0, postReadBase, []ldapwire.Attribute{{Type: "entryCSN", Values: []string{fakeCSN}}}, false)
	m, _ := ldapwire.Parse(entry)
	ctrl := ldapwire.AppendControl(nil, OIDPostRead, false, ldapwire.AppendElement(nil, ldapwire.OpSearchResultEntry, m.Body))
	return ldapwire.AppendResultControls(nil, msg.ID, ldapwire.OpModifyResponse, ldapwire.Success, "", ldapwire.AppendControls(ctrl))
}

func modifyRequest(id int32, dn string) []byte {
	var body []byte
	body = ldapwire.AppendElement(body, 0x04, []byte(dn))
	body = ldapwire.AppendElement(body, 0x30, nil)
	return ldapwire.AppendMessage(nil, id, ldapwire.AppendElement(nil, ldapwire.OpModifyRequest, body), nil, nil)
}

// lagging is a route.Positions of servers freshly known to lack every
// change; it remembers what was asked of them.
type lagging struct{ asked []replpos.Vector }

func (l *lagging) Covers(_ int, need replpos.Vector) (bool, time.Time) {
	l.asked = append(l.asked, append(replpos.Vector(nil), need...))
	return false, time.Now().Add(time.Hour)
}
func (*lagging) Position(_ int, dst replpos.Vector) (replpos.Vector, time.Time) {
	return dst, time.Now().Add(time.Hour)
}
func (*lagging) Refresh(int, time.Time) <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// TestWritesRecordedWithTheirCSN: a successful write carries the proxy's
// Post-Read control, is recorded with the entryCSN of the answer, and the
// client's answer comes without the control; a failed write records
// nothing.
func TestWritesRecordedWithTheirCSN(t *testing.T) {
	e := newEnvN(t, 2, 0, Config{}, backend.PoolConfig{})
	table := route.NewAffinityTable(0)
	pos := &lagging{}
	table.Positions = pos
	alg, _ := balancer.New("failover", balancer.Flat([]int{1, 0}), nil) // ds2 first: writes go there
	e.p.SetRouter(&route.Router{Default: alg, Affinity: &route.Affinity{Kind: route.ByConnection,
		UntilReplicated: true, MaxWait: time.Second, Table: table}})
	s := e.session(t)

	msgs := s.start(func(id int32) []byte { return modifyRequest(id, "cn=refused") }).wait(waitLong)
	if res, _, _ := done(t, msgs, ldapwire.OpModifyResponse); res.Code != ldapwire.UnwillingToPerform {
		t.Fatalf("refused modify: %d", res.Code)
	}
	if table.Len() != 0 {
		t.Error("a failed write was recorded")
	}

	msgs = s.start(func(id int32) []byte { return modifyRequest(id, postReadBase) }).wait(waitLong)
	if res, _, _ := done(t, msgs, ldapwire.OpModifyResponse); res.Code != ldapwire.Success {
		t.Fatalf("modify: %d", res.Code)
	}
	if msgs[0].Controls != nil {
		t.Errorf("the proxy's Post-Read control reached the client: %x", msgs[0].Controls)
	}
	if table.Len() != 1 {
		t.Fatal("a successful write was not recorded")
	}
	// A read: ds1 is known to lack the write (its CSN, as the answer gave
	// it), so it goes to ds2, which took it.
	read := &route.Operation{Tag: ldapwire.OpSearchRequest} // the session's operations carry ConnID 0
	cands, name := e.p.router.Load().Candidates(e.reg.Snapshot(), read, nil)
	if len(cands) != 1 || cands[0] != 1 || read.Await.Servers != 0 || name != "failover/affinity" {
		t.Errorf("read after the write: %v via %s, wait %+v", cands, name, read.Await)
	}
	csn, _ := replpos.ParseCSN([]byte(fakeCSN))
	if len(pos.asked) == 0 || len(pos.asked[0]) != 1 || pos.asked[0][0] != csn {
		t.Errorf("the write was recorded as %v, want %v", pos.asked, csn)
	}
}

// TestPostReadOnlyWhereItAnswers: the proxy's Post-Read is not sent to
// servers known to answer it without an entryCSN (389 Directory Server) or
// not at all (Active Directory); their writes are resolved by position.
func TestPostReadOnlyWhereItAnswers(t *testing.T) {
	for _, tc := range []struct {
		caps *backend.Capabilities
		want bool
	}{
		{nil, true},
		{&backend.Capabilities{Type: backend.TypeOpenLDAP}, true},
		{&backend.Capabilities{Type: backend.TypeGeneric}, true},
		{&backend.Capabilities{Type: backend.Type389DS}, false},
		{&backend.Capabilities{Type: backend.TypeAD}, false},
	} {
		if got := answersCSN(tc.caps); got != tc.want {
			t.Errorf("answersCSN(%+v) = %v, want %v", tc.caps, got, tc.want)
		}
	}
}
