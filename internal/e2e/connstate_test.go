package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// These tests send each request both directly to slapd and through
// ldapmux, with the same identity, and compare the answers. They cover
// what lives in slapd's connection state: paged results cookies, sorted
// views, persistent searches, pipelined binds and the root DSE's promises.

// identity is who a client binds as; an empty dn is anonymous.
type identity struct{ name, dn, password string }

var anonymous = identity{name: "anonymous"}

// userIdentity is sample user n.
func userIdentity(n int) identity {
	return identity{slapdtest.UserID(n), slapdtest.UserDN(n), slapdtest.UserPassword(n)}
}

// connectID dials addr as id.
func connectID(t *testing.T, addr string, id identity) *ldap.Conn {
	t.Helper()
	return connectAs(t, addr, id.dn, id.password)
}

// renderEntries renders entries as sorted lines, attributes and values
// sorted; values longer than 64 bytes are shown by length and SHA-256.
func renderEntries(entries []*ldap.Entry) string {
	lines := make([]string, 0, len(entries))
	for _, e := range entries {
		lines = append(lines, e.DN+": "+renderAttrs(e.Attributes))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// renderAttrs renders attributes in name order with sorted values.
func renderAttrs(attrs []*ldap.EntryAttribute) string {
	var out []string
	for _, a := range attrs {
		vals := make([]string, 0, len(a.ByteValues))
		for _, v := range a.ByteValues {
			vals = append(vals, renderValue(v))
		}
		slices.Sort(vals)
		out = append(out, strings.ToLower(a.Name)+"="+strings.Join(vals, "|"))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func renderValue(v []byte) string {
	if len(v) <= 64 {
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("<%d bytes %x>", len(v), sha256.Sum256(v))
}

// firstDiff describes where two renderings first differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		gl, wl := "<none>", "<none>"
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("%d lines, want %d; line %d is\n  %.300s\nwant\n  %.300s", len(g), len(w), i+1, gl, wl)
		}
	}
	return "no difference"
}

// --- Paged results ---

// pagedQuery is one of the searches the paging clients run.
type pagedQuery struct {
	base   string
	scope  int
	filter string
	attrs  []string
}

var pagedQueries = []pagedQuery{
	{slapdtest.PeopleDN, ldap.ScopeSingleLevel, "(objectClass=inetOrgPerson)", []string{"uid", "mail"}},
	{slapdtest.BaseDN, ldap.ScopeWholeSubtree, "(|(uid=user.1*)(uid=user.2*))", []string{"cn", "telephoneNumber", "userPassword"}},
	{slapdtest.BaseDN, ldap.ScopeWholeSubtree, "(objectClass=*)", nil},
	{slapdtest.PeopleDN, ldap.ScopeWholeSubtree, "(sn=*)", []string{"sn", "cn", "objectClass"}},
}

// pagedSearch runs q with SearchWithPaging and renders the entries.
func pagedSearch(conn *ldap.Conn, q pagedQuery, pageSize uint32) (string, int, error) {
	res, err := conn.SearchWithPaging(ldap.NewSearchRequest(q.base, q.scope, ldap.NeverDerefAliases, 0, 0, false, q.filter, q.attrs, nil), pageSize)
	if err != nil {
		return "", 0, err
	}
	return renderEntries(res.Entries), len(res.Entries), nil
}

// pagingIdentity is the identity of paging client i: every fourth is
// anonymous, the others are distinct users.
func pagingIdentity(i int) identity {
	if i%4 == 3 {
		return anonymous
	}
	return userIdentity(i + 1)
}

// failures collects errors from concurrent clients.
type failures struct {
	mu   sync.Mutex
	errs []string
}

func (f *failures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

// report fails t with the number of failures and the first few of them.
func (f *failures) report(t *testing.T, total int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) == 0 {
		return
	}
	t.Errorf("%d of %d operations failed; first ones:", len(f.errs), total)
	for _, e := range f.errs[:min(len(f.errs), 5)] {
		t.Error(e)
	}
}

// TestConcurrentPagedSearches: 16 clients with different identities page
// through four different searches at the same time, 7 entries a page. slapd
// keeps one paged search per connection and ties its cookie to it, so a
// proxy that lets two clients' pages meet on one server connection returns
// errors or wrong entries. Every answer must equal the same identity's
// paged search on slapd.
func TestConcurrentPagedSearches(t *testing.T) {
	const clients, rounds, pageSize = 16, 5, 7
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 60})
	_, addr := startProxy(t, cluster, "")
	direct := cluster.Replicas[0].Addr

	want := make([][]string, clients) // per client, per query
	for i := range clients {
		conn := connectID(t, direct, pagingIdentity(i))
		for _, q := range pagedQueries {
			text, n, err := pagedSearch(conn, q, pageSize)
			if err != nil {
				t.Fatalf("client %d directly: %s: %v", i, q.filter, err)
			}
			if n <= 2*pageSize {
				t.Fatalf("%s returns %d entries: too few pages to prove anything", q.filter, n)
			}
			want[i] = append(want[i], text)
		}
	}

	var fails failures
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		id := pagingIdentity(i)
		conn := connectID(t, addr, id)
		wg.Go(func() {
			<-start
			for r := range rounds {
				q := (i + r) % len(pagedQueries)
				got, _, err := pagedSearch(conn, pagedQueries[q], pageSize)
				switch {
				case err != nil:
					fails.add("client %d (%s), round %d, %s: %v", i, id.name, r, pagedQueries[q].filter, err)
				case got != want[i][q]:
					fails.add("client %d (%s), round %d, %s: answer differs from slapd's: %s", i, id.name, r, pagedQueries[q].filter, firstDiff(got, want[i][q]))
				}
			}
		})
	}
	close(start)
	wg.Wait()
	fails.report(t, clients*rounds)
}

// --- Server-side sorting and virtual list views ---

// vlvRequest is a virtual list view request control
// (draft-ietf-ldapext-ldapv3-vlv): a window of entries around a target,
// given by offset or by the first sort key value greater or equal.
type vlvRequest struct {
	before, after  int64
	offset, count  int64  // byOffset target, when greaterOrEqual is ""
	greaterOrEqual string // greaterThanOrEqual target
	contextID      []byte // from the previous response; nil on the first
}

// GetControlType implements ldap.Control.
func (v vlvRequest) GetControlType() string { return slapdtest.VLVControlOID }

// Encode implements ldap.Control.
func (v vlvRequest) Encode() *ber.Packet {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "VirtualListViewRequest")
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, v.before, "beforeCount"))
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, v.after, "afterCount"))
	if v.greaterOrEqual != "" {
		seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, v.greaterOrEqual, "greaterThanOrEqual"))
	} else {
		byOffset := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "byOffset")
		byOffset.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, v.offset, "offset"))
		byOffset.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, v.count, "contentCount"))
		seq.AppendChild(byOffset)
	}
	if v.contextID != nil {
		seq.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(v.contextID), "contextID"))
	}
	return controlPacket(slapdtest.VLVControlOID, true, seq.Bytes())
}

// String implements ldap.Control.
func (v vlvRequest) String() string {
	return fmt.Sprintf("VLV request: before %d after %d offset %d count %d >= %q context %x", v.before, v.after, v.offset, v.count, v.greaterOrEqual, v.contextID)
}

// controlPacket encodes a Control with a raw value.
func controlPacket(oid string, critical bool, value []byte) *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Control")
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, oid, "controlType"))
	p.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, critical, "criticality"))
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(value), "controlValue"))
	return p
}

// vlvAnswer is what a sorted VLV search returned.
type vlvAnswer struct {
	text      string // result, VLV response and entries in order
	busy      bool   // slapd's "sort in progress" busy
	count     int64  // the server's content count
	contextID []byte
}

// sortBusy is slapd's answer to a sorted search on a connection where a
// sort of the same context is still marked running. slapd clears the mark
// just after sending the previous result, so a client that asks again at
// once may get it: clients retry.
const sortBusy = "Other sort requests already in progress"

// vlvSearch runs one sorted VLV search of the people, retrying while slapd
// answers sortBusy.
func vlvSearch(conn *ldap.Conn, key *ldap.SortKey, req vlvRequest) (vlvAnswer, error) {
	deadline := time.Now().Add(time.Second)
	for {
		ans, err := vlvSearchOnce(conn, key, req)
		if err != nil || !ans.busy || time.Now().After(deadline) {
			return ans, err
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// vlvSearchOnce runs one sorted VLV search. The text says whether the
// response kept the request's contextID, which slapd does only on the
// connection where the sorted view was built.
func vlvSearchOnce(conn *ldap.Conn, key *ldap.SortKey, req vlvRequest) (vlvAnswer, error) {
	sort := ldap.NewControlServerSideSortingWithSortKeys([]*ldap.SortKey{key})
	res, err := conn.Search(ldap.NewSearchRequest(slapdtest.PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=inetOrgPerson)", []string{"cn", "mail"}, []ldap.Control{sort, req}))
	code := resultCode(err)
	if err != nil && code < 0 {
		return vlvAnswer{}, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "result %d %q\n", max(code, 0), diagnostic(err))
	ans := vlvAnswer{busy: code == ldap.LDAPResultBusy && diagnostic(err) == sortBusy}
	if res != nil {
		if c, ok := ldap.FindControl(res.Controls, ldap.ControlTypeServerSideSortingResult).(*ldap.ControlServerSideSortingResult); ok {
			fmt.Fprintf(&b, "sort result %d\n", c.Result)
		}
		target, vres, err := vlvResponse(res.Controls, &ans)
		if err != nil {
			return vlvAnswer{}, err
		}
		fmt.Fprintf(&b, "VLV target %d count %d result %d context %s\n", target, ans.count, vres, contextFate(req.contextID, ans.contextID))
		for _, e := range res.Entries {
			fmt.Fprintf(&b, "%s: %s\n", e.DN, renderAttrs(e.Attributes))
		}
	}
	ans.text = b.String()
	return ans, nil
}

// contextFate compares the contextID sent with the one returned.
func contextFate(sent, got []byte) string {
	switch {
	case sent == nil:
		return "new"
	case bytes.Equal(sent, got):
		return "kept"
	}
	return "replaced"
}

// diagnostic is the diagnostic message of an LDAP error, or "".
func diagnostic(err error) string {
	var lerr *ldap.Error
	if errors.As(err, &lerr) && lerr.Err != nil {
		return lerr.Err.Error()
	}
	return ""
}

// vlvResponse decodes the VLV response control into ans and returns its
// target position and result (-1, -1 without one).
func vlvResponse(controls []ldap.Control, ans *vlvAnswer) (target, result int64, _ error) {
	c, ok := ldap.FindControl(controls, ldap.ControlTypeVLVResponse).(*ldap.ControlString)
	if !ok {
		return -1, -1, nil
	}
	p, err := ber.DecodePacketErr([]byte(c.ControlValue))
	if err != nil || len(p.Children) < 3 {
		return 0, 0, fmt.Errorf("bad VLV response %x: %v", c.ControlValue, err)
	}
	target, _ = p.Children[0].Value.(int64)
	ans.count, _ = p.Children[1].Value.(int64)
	result, _ = p.Children[2].Value.(int64)
	if len(p.Children) > 3 {
		ans.contextID = p.Children[3].Data.Bytes()
	}
	return target, result, nil
}

// vlvWindows is a walk through the sorted people: first page, middle,
// by value, a window reaching past the end, and back to the start.
var vlvWindows = []vlvRequest{
	{before: 0, after: 4, offset: 1},
	{before: 2, after: 2, offset: 10},
	{before: 0, after: 5, offset: 30},
	{before: 1, after: 3, greaterOrEqual: "User 4"},
	{before: 3, after: 3, offset: -1}, // -1: the last entry
	{before: 0, after: 2, offset: 2},
}

// vlvWalk runs vlvWindows on conn in order, each request carrying the
// contextID and content count of the previous response.
func vlvWalk(conn *ldap.Conn, key *ldap.SortKey) ([]string, error) {
	var out []string
	var prev vlvAnswer
	for i, w := range vlvWindows {
		w.contextID, w.count = prev.contextID, prev.count
		if w.offset < 0 {
			w.offset = prev.count
		}
		ans, err := vlvSearch(conn, key, w)
		if err != nil {
			return out, fmt.Errorf("window %d: %w", i, err)
		}
		out = append(out, ans.text)
		if ans.busy {
			return out, nil // still busy: the comparison fails here
		}
		prev = ans
	}
	return out, nil
}

// compareWalks fails with the first window that differs.
func compareWalks(got, want []string) error {
	for i := range want {
		if i >= len(got) {
			return fmt.Errorf("window %d missing", i)
		}
		if got[i] != want[i] {
			return fmt.Errorf("window %d differs from slapd's: %s", i, firstDiff(got[i], want[i]))
		}
	}
	return nil
}

// TestVLVThroughProxy walks a sorted virtual list view window by window,
// each request carrying the contextID of the previous response, which
// slapd ties to its connection: alone, then two clients at once with
// different identities and orders. Every window must equal slapd's.
func TestVLVThroughProxy(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 40})
	_, addr := startProxy(t, cluster, "")
	direct := cluster.Replicas[0].Addr
	ascending := &ldap.SortKey{AttributeType: "cn", MatchingRule: "caseIgnoreOrderingMatch"}
	descending := &ldap.SortKey{AttributeType: "sn", MatchingRule: "caseIgnoreOrderingMatch", Reverse: true}

	walkers := []struct {
		id  identity
		key *ldap.SortKey
	}{{userIdentity(1), ascending}, {anonymous, descending}}
	want := make([][]string, len(walkers))
	for i, w := range walkers {
		walk, err := vlvWalk(connectID(t, direct, w.id), w.key)
		if err != nil {
			t.Fatalf("%s directly: %v", w.id.name, err)
		}
		if !strings.Contains(walk[1], "VLV target 10 count 40 result 0 context kept") {
			t.Fatalf("%s directly: slapd does not do VLV: %s", w.id.name, walk[1])
		}
		want[i] = walk
	}

	t.Run("one client", func(t *testing.T) {
		conn := connectID(t, addr, walkers[0].id)
		for round := range 3 {
			got, err := vlvWalk(conn, walkers[0].key)
			if err == nil {
				err = compareWalks(got, want[0])
			}
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	})
	t.Run("two clients at once", func(t *testing.T) {
		var fails failures
		var wg sync.WaitGroup
		for i, w := range walkers {
			conn := connectID(t, addr, w.id)
			wg.Go(func() {
				for round := range 5 {
					got, err := vlvWalk(conn, w.key)
					if err == nil {
						err = compareWalks(got, want[i])
					}
					if err != nil {
						fails.add("%s, round %d: %v", w.id.name, round, err)
					}
				}
			})
		}
		wg.Wait()
		fails.report(t, 2*5)
	})
}

// --- A raw LDAP client on go-asn1-ber ---

// berClient sends hand-built LDAP messages and decodes the replies.
type berClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func berDial(t *testing.T, addr string) *berClient {
	t.Helper()
	nc := dialTCP(t, addr)
	return &berClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// send writes messages in a single write.
func (c *berClient) send(msgs ...*ber.Packet) {
	c.t.Helper()
	var b []byte
	for _, m := range msgs {
		b = append(b, m.Bytes()...)
	}
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read decodes the next message, waiting at most timeout (0: forever).
func (c *berClient) read(timeout time.Duration) (reply, error) {
	var dl time.Time
	if timeout > 0 {
		dl = time.Now().Add(timeout)
	}
	c.nc.SetReadDeadline(dl)
	p, err := ber.ReadPacket(c.br)
	if err != nil {
		return reply{}, err
	}
	return decodeReply(p)
}

// readUntilDone reads replies until each of ids has had its final one.
func (c *berClient) readUntilDone(ids ...int64) map[int64][]reply {
	c.t.Helper()
	got := map[int64][]reply{}
	open := len(ids)
	for open > 0 {
		r, err := c.read(10 * time.Second)
		if err != nil {
			c.t.Fatalf("reading replies to %v (got %v): %v", ids, got, err)
		}
		got[r.id] = append(got[r.id], r)
		if r.final() && slices.Contains(ids, r.id) {
			open--
		}
	}
	return got
}

// LDAP protocol operation tags (application class).
const (
	tagBindRequest     = 0
	tagBindResponse    = 1
	tagSearchRequest   = 3
	tagSearchEntry     = 4
	tagSearchDone      = 5
	tagSearchReference = 19
	tagAbandonRequest  = 16
	tagExtendedRequest = 23
	tagExtendedResp    = 24
	tagIntermediate    = 25
)

// message wraps a protocolOp into an LDAPMessage.
func message(id int64, op *ber.Packet, controls ...ldap.Control) *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAPMessage")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "messageID"))
	p.AppendChild(op)
	if len(controls) > 0 {
		cs := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "Controls")
		for _, c := range controls {
			cs.AppendChild(c.Encode())
		}
		p.AppendChild(cs)
	}
	return p
}

// bindOp is a simple BindRequest.
func bindOp(dn, password string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tagBindRequest, nil, "BindRequest")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 3, "version"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, "name"))
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, password, "simple"))
	return op
}

// searchOp is a SearchRequest; filter must compile.
func searchOp(base string, scope int, filter string, attrs ...string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tagSearchRequest, nil, "SearchRequest")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, base, "baseObject"))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(scope), "scope"))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(ldap.NeverDerefAliases), "derefAliases"))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "sizeLimit"))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "timeLimit"))
	op.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, "typesOnly"))
	f, err := ldap.CompileFilter(filter)
	if err != nil {
		panic(err)
	}
	op.AppendChild(f)
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes")
	for _, a := range attrs {
		list.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, "attribute"))
	}
	op.AppendChild(list)
	return op
}

// extendedOp is an ExtendedRequest without a value.
func extendedOp(oid string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tagExtendedRequest, nil, "ExtendedRequest")
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, oid, "requestName"))
	return op
}

// abandonOp abandons message id.
func abandonOp(id int64) *ber.Packet {
	return ber.NewInteger(ber.ClassApplication, ber.TypePrimitive, tagAbandonRequest, id, "AbandonRequest")
}

// reply is one decoded LDAPMessage from a server.
type reply struct {
	id       int64
	tag      ber.Tag
	code     int64  // result code of a final response
	diag     string // its diagnostic message
	entry    string // a search entry: DN and attributes, rendered
	value    []byte // an extended response's value
	controls []ldap.Control
}

// final reports whether r ends its operation.
func (r reply) final() bool {
	return r.tag != tagSearchEntry && r.tag != tagSearchReference && r.tag != tagIntermediate
}

// decodeReply picks apart what the tests look at.
func decodeReply(p *ber.Packet) (reply, error) {
	if len(p.Children) < 2 {
		return reply{}, fmt.Errorf("short LDAPMessage: %d elements", len(p.Children))
	}
	id, _ := p.Children[0].Value.(int64)
	op := p.Children[1]
	r := reply{id: id, tag: op.Tag}
	if len(p.Children) > 2 {
		for _, c := range p.Children[2].Children {
			ctrl, err := ldap.DecodeControl(c)
			if err != nil {
				return r, err
			}
			r.controls = append(r.controls, ctrl)
		}
	}
	switch {
	case op.Tag == tagSearchEntry && len(op.Children) == 2:
		r.entry = renderEntryPacket(op)
	case op.Tag == tagSearchReference || op.Tag == tagIntermediate:
	case len(op.Children) >= 3:
		r.code, _ = op.Children[0].Value.(int64)
		r.diag = string(op.Children[2].Data.Bytes())
		for _, c := range op.Children[3:] {
			if c.ClassType == ber.ClassContext && c.Tag == 11 {
				r.value = c.Data.Bytes()
			}
		}
	default:
		return r, fmt.Errorf("unexpected protocolOp %d with %d elements", op.Tag, len(op.Children))
	}
	return r, nil
}

// renderEntryPacket renders a SearchResultEntry like renderEntries.
func renderEntryPacket(op *ber.Packet) string {
	var attrs []*ldap.EntryAttribute
	for _, a := range op.Children[1].Children {
		if len(a.Children) != 2 {
			continue
		}
		ea := &ldap.EntryAttribute{Name: string(a.Children[0].Data.Bytes())}
		for _, v := range a.Children[1].Children {
			ea.ByteValues = append(ea.ByteValues, v.Data.Bytes())
		}
		attrs = append(attrs, ea)
	}
	return string(op.Children[0].Data.Bytes()) + ": " + renderAttrs(attrs)
}

// --- Persistent searches ---

// syncStream collects what a refreshAndPersist search receives.
type syncStream struct {
	mu      sync.Mutex
	entries []string // "state DN: attributes" in order of arrival
	others  []reply  // replies to other messages
	ended   string   // how the search ended, if it did
	finals  []int64  // message IDs of the final replies, in order of arrival
	done    chan struct{}
}

// syncStates names the RFC 4533 entry states.
var syncStates = map[ldap.ControlSyncStateState]string{
	ldap.SyncStatePresent: "present", ldap.SyncStateAdd: "add", ldap.SyncStateModify: "modify", ldap.SyncStateDelete: "delete",
}

const syncID = 2 // message ID of the sync search

// startSync binds c as id and starts a refreshAndPersist search of the
// scratch subtree, read in the background until c is closed.
func startSync(t *testing.T, c *berClient, id identity) *syncStream {
	t.Helper()
	c.send(message(1, bindOp(id.dn, id.password)))
	if r := c.readUntilDone(1)[1]; r[len(r)-1].code != 0 {
		t.Fatalf("bind as %s: %+v", id.name, r)
	}
	s := &syncStream{done: make(chan struct{})}
	ctrl := ldap.NewControlSyncRequest(ldap.SyncRequestModeRefreshAndPersist, nil, false)
	c.send(message(syncID, searchOp(slapdtest.ScratchDN, ldap.ScopeWholeSubtree, "(objectClass=*)", "description"), ctrl))
	go s.read(c)
	t.Cleanup(func() { c.nc.Close(); <-s.done })
	return s
}

// read records replies until the connection fails.
func (s *syncStream) read(c *berClient) {
	defer close(s.done)
	for {
		r, err := c.read(0)
		s.mu.Lock()
		switch {
		case err != nil:
			if s.ended == "" {
				s.ended = "connection: " + err.Error()
			}
		case r.id == syncID && r.tag == tagSearchEntry:
			state := "?"
			if st, ok := ldap.FindControl(r.controls, ldap.ControlTypeSyncState).(*ldap.ControlSyncState); ok {
				state = syncStates[st.State]
			}
			s.entries = append(s.entries, state+" "+r.entry)
		case (r.id == syncID || r.id == 0) && r.final():
			s.ended = fmt.Sprintf("message %d, operation %d, result %d %q", r.id, r.tag, r.code, r.diag)
		case r.id != syncID:
			s.others = append(s.others, r)
		}
		if err == nil && r.final() {
			s.finals = append(s.finals, r.id)
		}
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// state returns the entries received so far and how the search ended.
func (s *syncStream) state() ([]string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.entries), s.ended
}

// reply returns the final reply to message id, if it came.
func (s *syncStream) reply(id int64) (reply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.others {
		if r.id == id && r.final() {
			return r, true
		}
	}
	return reply{}, false
}

// TestSyncReplSearchSurvivesTimeout keeps an RFC 4533 refreshAndPersist
// search open through ldapmux (operation-timeout 1s) for 10 seconds while
// entries are added and modified every second: it must not be ended (no
// timeLimitExceeded, no result at all), it must receive exactly the changes
// the same search directly on slapd receives, and no server may change
// state. Abandoned at the end, the connection keeps serving.
func TestSyncReplSearchSurvivesTimeout(t *testing.T) {
	const writes = 10
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	replica := cluster.Replicas[0]
	a, addr := startProxy(t, cluster, "pool:\n  operation-timeout: 1s\n")
	who := userIdentity(1)
	proxied, onSlapd := berDial(t, addr), berDial(t, replica.Addr)
	viaProxy, direct := startSync(t, proxied, who), startSync(t, onSlapd, who)
	eventually(t, 10*time.Second, "the refresh of both searches", func() bool {
		p, _ := viaProxy.state()
		d, _ := direct.state()
		return len(p) > 0 && len(d) > 0
	})

	writer := bindAs(t, replica.Addr, slapdtest.WriterDN, slapdtest.WriterPassword)
	tick := time.NewTicker(time.Second) // the write rate
	defer tick.Stop()
	for i := range writes {
		<-tick.C
		writeSyncChange(t, writer, i)
		if _, ended := viaProxy.state(); ended != "" {
			t.Fatalf("the persistent search through ldapmux ended after %d s: %s", i+1, ended)
		}
	}
	changes := 2*writes - 1 // adds and modifies
	var got, want []string
	eventually(t, 10*time.Second, "every change received", func() bool {
		var pEnded, dEnded string
		got, pEnded = viaProxy.state()
		want, dEnded = direct.state()
		if pEnded != "" || dEnded != "" {
			t.Fatalf("a persistent search ended: through ldapmux %q, directly %q", pEnded, dEnded)
		}
		return len(want) >= changes+1 && len(got) >= len(want)
	})
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Fatalf("through ldapmux the search received something else than directly: %s", firstDiff(g, w))
	}
	assertStayedAvailable(t, a)

	proxied.send(message(syncID+1, abandonOp(syncID)), message(syncID+2, searchOp(slapdtest.UserDN(2), ldap.ScopeBaseObject, "(objectClass=*)", "uid")))
	eventually(t, 10*time.Second, "the search after the abandon answered", func() bool {
		_, ok := viaProxy.reply(syncID + 2)
		return ok
	})
	if r, _ := viaProxy.reply(syncID + 2); r.code != 0 {
		t.Fatalf("search after abandoning the persistent search: result %d %q", r.code, r.diag)
	}
	eventually(t, 10*time.Second, "the persistent search released upstream", func() bool { return a.Servers()[0].Outstanding() == 0 })
	if err := expectUser(bindAs(t, addr, slapdtest.UserDN(3), slapdtest.UserPassword(3)), 3); err != nil {
		t.Fatalf("after the persistent search: %v", err)
	}
}

// writeSyncChange adds entry i below the scratch container and modifies
// entry i-1.
func writeSyncChange(t *testing.T, writer *ldap.Conn, i int) {
	t.Helper()
	add := ldap.NewAddRequest(fmt.Sprintf("cn=sync-%d,%s", i, slapdtest.ScratchDN), nil)
	add.Attribute("objectClass", []string{"organizationalRole"})
	add.Attribute("cn", []string{fmt.Sprintf("sync-%d", i)})
	add.Attribute("description", []string{"added"})
	if err := writer.Add(add); err != nil {
		t.Fatalf("add %d: %v", i, err)
	}
	if i == 0 {
		return
	}
	mod := ldap.NewModifyRequest(fmt.Sprintf("cn=sync-%d,%s", i-1, slapdtest.ScratchDN), nil)
	mod.Replace("description", []string{fmt.Sprintf("modified after %d", i)})
	if err := writer.Modify(mod); err != nil {
		t.Fatalf("modify %d: %v", i-1, err)
	}
}

// --- Pipelined binds ---

// whoAmIOID is the Who am I? extended operation (RFC 4532).
const whoAmIOID = "1.3.6.1.4.1.4203.1.11.3"

// pipelinedAnswer sends a bind to next and, in the same write, a search of
// two users (mail is for authenticated users, userPassword for self only)
// and a WhoAmI, then renders the three answers.
func pipelinedAnswer(c *berClient, firstID int64, next identity) string {
	c.send(
		message(firstID, bindOp(next.dn, next.password)),
		message(firstID+1, searchOp(slapdtest.PeopleDN, ldap.ScopeSingleLevel, "(|(uid=user.1)(uid=user.2))", "uid", "mail", "userPassword")),
		message(firstID+2, extendedOp(whoAmIOID)),
	)
	got := c.readUntilDone(firstID, firstID+1, firstID+2)
	var b strings.Builder
	for id := firstID; id <= firstID+2; id++ {
		var entries []string
		for _, r := range got[id] {
			switch {
			case r.tag == tagSearchEntry:
				entries = append(entries, r.entry)
			case r.final():
				fmt.Fprintf(&b, "+%d: operation %d result %d value %q\n", id-firstID, r.tag, r.code, r.value)
			}
		}
		slices.Sort(entries)
		for _, e := range entries {
			fmt.Fprintf(&b, "+%d: %s\n", id-firstID, e)
		}
	}
	return b.String()
}

// TestPipelinedBindThenSearch sends a bind and, without waiting for its
// answer, a search and a WhoAmI in the same write, for every kind of
// identity change: slapd runs the search and the WhoAmI as the new
// identity (anonymous after a failed bind), so must ldapmux.
func TestPipelinedBindThenSearch(t *testing.T) {
	const repeats = 10
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 3})
	_, addr := startProxy(t, cluster, "")
	direct := cluster.Replicas[0].Addr
	admin := identity{"admin", slapdtest.AdminDN, slapdtest.AdminPassword}
	wrongPassword := identity{"user.2 with a wrong password", slapdtest.UserDN(2), "wrong"}
	for _, tc := range []struct {
		from, to identity
		whoAmI   string // the identity slapd reports after the change
	}{
		{anonymous, userIdentity(1), "dn:" + slapdtest.UserDN(1)},
		{admin, userIdentity(1), "dn:" + slapdtest.UserDN(1)},
		{userIdentity(1), userIdentity(2), "dn:" + slapdtest.UserDN(2)},
		{userIdentity(2), anonymous, ""},
		{userIdentity(1), wrongPassword, ""},
	} {
		t.Run(tc.from.name+" to "+tc.to.name, func(t *testing.T) {
			proxied, onSlapd := berDial(t, addr), berDial(t, direct)
			id := int64(1)
			for i := range repeats {
				for _, c := range []*berClient{proxied, onSlapd} {
					c.send(message(id, bindOp(tc.from.dn, tc.from.password)))
					if r := c.readUntilDone(id)[id]; r[0].code != 0 {
						t.Fatalf("bind as %s: result %d %q", tc.from.name, r[0].code, r[0].diag)
					}
				}
				want := pipelinedAnswer(onSlapd, id+1, tc.to)
				if !strings.Contains(want, fmt.Sprintf("+2: operation %d result 0 value %q", tagExtendedResp, tc.whoAmI)) {
					t.Fatalf("slapd's answer is not as expected:\n%s", want)
				}
				if got := pipelinedAnswer(proxied, id+1, tc.to); got != want {
					t.Fatalf("repeat %d: through ldapmux:\n%s\ndirectly:\n%s", i, got, want)
				}
				id += 4
			}
		})
	}
}

// --- Root DSE ---

// notThroughProxy are what ldapmux refuses because it shares server
// connections: transactions and Turn act on the connection, and proxied
// authorization is how ldapmux itself sets each operation's identity.
// (Cancel passes: ldapmux answers it itself.)
var notThroughProxy = map[string][]string{
	"supportedextension": {"1.3.6.1.1.21.1", "1.3.6.1.1.21.3", "1.3.6.1.1.19"},
	"supportedcontrol":   {"1.3.6.1.1.21.2", "2.16.840.1.113730.3.4.18", "2.16.840.1.113730.3.4.12"},
}

// rootDSE reads every user and operational attribute of the root DSE.
func rootDSE(t *testing.T, conn *ldap.Conn) map[string][]string {
	t.Helper()
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"*", "+"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("root DSE: %v", err)
	}
	attrs := map[string][]string{}
	for _, a := range res.Entries[0].Attributes {
		vals := slices.Clone(a.Values)
		slices.Sort(vals)
		attrs[strings.ToLower(a.Name)] = vals
	}
	return attrs
}

// TestRootDSEAdvertisesOnlyWhatPasses: the root DSE read through ldapmux
// must not announce the extended operations and controls ldapmux refuses,
// and must otherwise say exactly what slapd says.
func TestRootDSEAdvertisesOnlyWhatPasses(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 1})
	_, addr := startProxy(t, cluster, "")
	want := rootDSE(t, dial(t, cluster.Replicas[0].Addr))
	if !slices.Contains(want["supportedcontrol"], slapdtest.ProxiedAuthzOID) || !slices.Contains(want["supportedextension"], "1.3.6.1.1.21.1") {
		t.Fatalf("slapd does not announce proxied authorization and transactions: the test proves little: %v", want)
	}
	for attr, refused := range notThroughProxy {
		want[attr] = slices.DeleteFunc(want[attr], func(v string) bool { return slices.Contains(refused, v) })
	}
	for _, who := range []identity{anonymous, userIdentity(1)} {
		got := rootDSE(t, connectID(t, addr, who))
		for _, attr := range unionKeys(want, got) {
			if !slices.Equal(got[attr], want[attr]) {
				t.Errorf("%s: %s through ldapmux is %q, want %q", who.name, attr, got[attr], want[attr])
			}
		}
	}
}

// unionKeys returns the keys of both maps, sorted.
func unionKeys(a, b map[string][]string) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, dup := a[k]; !dup {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
