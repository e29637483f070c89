package ldapwire

import (
	"bytes"
	"errors"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// encodeControls is a [0] Controls element made by go-ldap's encoders.
func encodeControls(controls ...ldap.Control) []byte {
	return controlsPacket(controls).Bytes()
}

// controlValue is the value of the control with oid in controls.
func controlValue(t *testing.T, controls []byte, oid string) []byte {
	t.Helper()
	c, ok := FindControl(controls, oid)
	if !ok || !c.HasValue {
		t.Fatalf("control %s: found %t, value %t", oid, ok, c.HasValue)
	}
	return c.Value
}

func TestOIDsMatchGoLDAP(t *testing.T) {
	for ours, theirs := range map[string]string{
		OIDPagedResults:      ldap.ControlTypePaging,
		OIDServerSortRequest: ldap.ControlTypeServerSideSorting,
		OIDVLVRequest:        ldap.ControlTypeVLVRequest,
		OIDVLVResponse:       ldap.ControlTypeVLVResponse,
		OIDSyncRequest:       ldap.ControlTypeSyncRequest,
	} {
		if ours != theirs {
			t.Errorf("OID %s, go-ldap has %s", ours, theirs)
		}
	}
}

func TestFindControl(t *testing.T) {
	paging := &ldap.ControlPaging{PagingSize: 10, Cookie: []byte("first")}
	controls := encodeControls(ldap.NewControlManageDsaIT(true), paging,
		ldap.NewControlPaging(20), ldap.NewControlString(OIDTxnSpec, true, "txn-1"))
	c, ok := FindControl(controls, OIDPagedResults)
	if !ok || c.Critical || !c.HasValue {
		t.Fatalf("paging: %+v, %t", c, ok)
	}
	if size, cookie, err := ParsePagedValue(c.Value); err != nil || size != 10 || string(cookie) != "first" {
		t.Fatalf("first paging control: %d %q %v", size, cookie, err)
	}
	if c, ok := FindControl(controls, ldap.ControlTypeManageDsaIT); !ok || !c.Critical || c.HasValue {
		t.Fatalf("manageDsaIT: %+v, %t", c, ok)
	}
	if c, ok := FindControl(controls, OIDTxnSpec); !ok || string(c.Value) != "txn-1" {
		t.Fatalf("transaction: %+v, %t", c, ok)
	}
	for name, in := range map[string][]byte{
		"absent":       controls,
		"nil":          nil,
		"empty":        {tagControls, 0},
		"wrong tag":    append([]byte{tagSequence}, controls[1:]...),
		"bad trailer":  withTrailer(controls, 0x04, 0x00),
		"truncated":    controls[:len(controls)-1],
		"not a string": {tagControls, 5, tagSequence, 3, tagInteger, 1, 0},
	} {
		oid := OIDSyncRequest
		if name != "absent" {
			oid = OIDPagedResults
		}
		if c, ok := FindControl(in, oid); ok {
			t.Errorf("%s: found %+v", name, c)
		}
	}
}

// withTrailer is controls with more bytes inside, after the last control.
func withTrailer(controls []byte, more ...byte) []byte {
	outer, _ := readTLV(controls)
	return AppendElement(nil, tagControls, append(append([]byte{}, outer.content...), more...))
}

func TestFindControlDoesNotAllocate(t *testing.T) {
	controls := encodeControls(ldap.NewControlManageDsaIT(true), ldap.NewControlPaging(20),
		ldap.NewControlSyncRequest(ldap.SyncRequestModeRefreshOnly, []byte("c"), false))
	for _, oid := range []string{OIDSyncRequest, OIDPagedResults, OIDTurn} {
		allocs := testing.AllocsPerRun(100, func() {
			FindControl(controls, oid)
			FindControl(nil, oid)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations", oid, allocs)
		}
	}
}

func TestParsePagedValue(t *testing.T) {
	for _, c := range []struct {
		size   uint32
		cookie []byte
	}{{0, nil}, {50, nil}, {500, []byte("opaque\x00cookie")}, {MaxMessageID, bytes.Repeat([]byte{0xff}, 300)}} {
		paging := &ldap.ControlPaging{PagingSize: c.size, Cookie: c.cookie}
		value := controlValue(t, encodeControls(paging), OIDPagedResults)
		size, cookie, err := ParsePagedValue(value)
		if err != nil || size != int(c.size) || !bytes.Equal(cookie, c.cookie) {
			t.Errorf("%d %q: got %d %q %v", c.size, c.cookie, size, cookie, err)
		}
		if cookie == nil {
			t.Errorf("%d: nil cookie for an empty one", c.size)
		}
	}
}

// vlvRequest encodes a VirtualListViewRequest value; contextID nil leaves it out.
func vlvRequest(target *ber.Packet, contextID []byte) []byte {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "VirtualListViewRequest")
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 2, "beforeCount"))
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 30, "afterCount"))
	seq.AppendChild(target)
	if contextID != nil {
		seq.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(contextID), "contextID"))
	}
	return seq.Bytes()
}

func byOffset(offset, count int64) *ber.Packet {
	p := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "byOffset")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, offset, "offset"))
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, count, "contentCount"))
	return p
}

func greaterOrEqual(value string) *ber.Packet {
	return ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, value, "greaterThanOrEqual")
}

// vlvResponse encodes a VirtualListViewResponse value.
func vlvResponse(position, count, result int64, contextID []byte) []byte {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "VirtualListViewResponse")
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, position, "targetPosition"))
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, count, "contentCount"))
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, result, "virtualListViewResult"))
	if contextID != nil {
		seq.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(contextID), "contextID"))
	}
	return seq.Bytes()
}

func TestParseVLVContext(t *testing.T) {
	requests := map[string]struct {
		value []byte
		want  []byte
	}{
		"offset":           {vlvRequest(byOffset(1, 0), nil), nil},
		"offset, context":  {vlvRequest(byOffset(40, 1000), []byte("ctx-1")), []byte("ctx-1")},
		"gte":              {vlvRequest(greaterOrEqual("smith"), nil), nil},
		"gte, context":     {vlvRequest(greaterOrEqual(""), []byte("ctx\x00 2")), []byte("ctx\x00 2")},
		"empty context":    {vlvRequest(byOffset(1, 0), []byte{}), []byte{}},
		"in a control msg": {controlValue(t, encodeControls(ldap.NewControlString(OIDVLVRequest, true, string(vlvRequest(byOffset(3, 9), []byte("c"))))), OIDVLVRequest), []byte("c")},
	}
	for name, c := range requests {
		got, err := ParseVLVRequestContext(c.value)
		if err != nil || !bytes.Equal(got, c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("request %s: %q, %v", name, got, err)
		}
	}
	responses := map[string]struct {
		value []byte
		want  []byte
	}{
		"no context": {vlvResponse(1, 0, Success, nil), nil},
		"context":    {vlvResponse(41, 1000, Success, []byte("ctx-1")), []byte("ctx-1")},
		"error":      {vlvResponse(0, 0, 61, []byte("x")), []byte("x")},
	}
	for name, c := range responses {
		got, err := ParseVLVResponseContext(c.value)
		if err != nil || !bytes.Equal(got, c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("response %s: %q, %v", name, got, err)
		}
	}
}

func TestParseSyncRequestMode(t *testing.T) {
	modes := map[ldap.ControlSyncRequestMode]int{
		ldap.SyncRequestModeRefreshOnly:       SyncRefreshOnly,
		ldap.SyncRequestModeRefreshAndPersist: SyncRefreshAndPersist,
	}
	for mode, want := range modes {
		for _, cookie := range [][]byte{nil, []byte("rid=001,csn=20260101000000.000000Z#000000#000#000000")} {
			for _, reload := range []bool{false, true} {
				ctrl := ldap.NewControlSyncRequest(mode, cookie, reload)
				value := controlValue(t, encodeControls(ctrl), OIDSyncRequest)
				if got, err := ParseSyncRequestMode(value); err != nil || got != want {
					t.Errorf("mode %d, cookie %q, reload %t: got %d, %v", mode, cookie, reload, got, err)
				}
			}
		}
	}
	// reloadHint is DEFAULT FALSE: a value may leave it out.
	bare := []byte{tagSequence, 3, tagEnumerated, 1, SyncRefreshOnly}
	if got, err := ParseSyncRequestMode(bare); err != nil || got != SyncRefreshOnly {
		t.Errorf("mode alone: %d, %v", got, err)
	}
}

// goodControlValues are well-formed values for every control parser.
func goodControlValues(t testing.TB) map[string][]byte {
	ctrls := encodeControls(&ldap.ControlPaging{PagingSize: 7, Cookie: []byte("cookie")},
		ldap.NewControlSyncRequest(ldap.SyncRequestModeRefreshAndPersist, []byte("c"), true))
	paged, _ := FindControl(ctrls, OIDPagedResults)
	sync, _ := FindControl(ctrls, OIDSyncRequest)
	return map[string][]byte{
		"paged":        paged.Value,
		"vlv offset":   vlvRequest(byOffset(1, 10), []byte("ctx")),
		"vlv gte":      vlvRequest(greaterOrEqual("m"), []byte("ctx")),
		"vlv response": vlvResponse(1, 10, 0, []byte("ctx")),
		"sync":         sync.Value,
	}
}

// parseControlValue runs the parser a goodControlValues entry is for.
func parseControlValue(name string, value []byte) error {
	var err error
	switch name {
	case "paged":
		_, _, err = ParsePagedValue(value)
	case "vlv offset", "vlv gte":
		_, err = ParseVLVRequestContext(value)
	case "vlv response":
		_, err = ParseVLVResponseContext(value)
	case "sync":
		_, err = ParseSyncRequestMode(value)
	}
	return err
}

func TestControlValuesRejectMalformed(t *testing.T) {
	for name, good := range goodControlValues(t) {
		if err := parseControlValue(name, good); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for n := range len(good) {
			if err := parseControlValue(name, good[:n]); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s truncated to %d bytes: %v", name, n, err)
			}
		}
		if err := parseControlValue(name, append(append([]byte{}, good...), 0x04, 0x00)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s with a trailing element: %v", name, err)
		}
		extra := append(append([]byte{tagSequence, good[1] + 3}, good[2:]...), tagInteger, 1, 0)
		if err := parseControlValue(name, extra); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s with an extra field: %v", name, err)
		}
		// Every single-byte change must give an error or a result, never a panic.
		for i := range good {
			for _, b := range []byte{0x00, 0x01, 0x02, 0x04, 0x0a, 0x30, 0x7f, 0x80, 0x81, 0x84, 0xa0, 0xff} {
				mutated := append([]byte{}, good...)
				mutated[i] = b
				_ = parseControlValue(name, mutated)
			}
		}
	}
	bad := map[string]struct {
		parse func([]byte) error
		value []byte
	}{
		"negative page size": {pagedErr, []byte{tagSequence, 5, tagInteger, 1, 0xff, tagOctetString, 0}},
		"page size too big":  {pagedErr, []byte{tagSequence, 9, tagInteger, 5, 0, 0xff, 0xff, 0xff, 0xff, tagOctetString, 0}},
		"no cookie":          {pagedErr, []byte{tagSequence, 3, tagInteger, 1, 5}},
		"cookie not string":  {pagedErr, []byte{tagSequence, 6, tagInteger, 1, 5, tagInteger, 1, 0}},
		"not a sequence":     {pagedErr, []byte{0x31, 5, tagInteger, 1, 5, tagOctetString, 0}},
		"empty":              {pagedErr, nil},
		"vlv unknown target": {vlvErr, []byte{tagSequence, 8, tagInteger, 1, 0, tagInteger, 1, 0, 0x82, 0}},
		"vlv no target":      {vlvErr, []byte{tagSequence, 6, tagInteger, 1, 0, tagInteger, 1, 0}},
		"vlv short offset":   {vlvErr, []byte{tagSequence, 11, tagInteger, 1, 0, tagInteger, 1, 0, 0xa0, 3, tagInteger, 1, 1}},
		"vlv response enum":  {vlvRespErr, []byte{tagSequence, 9, tagInteger, 1, 0, tagInteger, 1, 0, tagInteger, 1, 0}},
		"sync mode 2":        {syncErr, []byte{tagSequence, 3, tagEnumerated, 1, 2}},
		"sync mode integer":  {syncErr, []byte{tagSequence, 3, tagInteger, 1, 1}},
		"sync bad boolean":   {syncErr, []byte{tagSequence, 7, tagEnumerated, 1, 1, tagBoolean, 2, 0, 0}},
		"sync hint first":    {syncErr, []byte{tagSequence, 8, tagEnumerated, 1, 1, tagBoolean, 1, 0, tagOctetString, 0}},
	}
	for name, c := range bad {
		if err := c.parse(c.value); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func pagedErr(v []byte) error   { _, _, err := ParsePagedValue(v); return err }
func vlvErr(v []byte) error     { _, err := ParseVLVRequestContext(v); return err }
func vlvRespErr(v []byte) error { _, err := ParseVLVResponseContext(v); return err }
func syncErr(v []byte) error    { _, err := ParseSyncRequestMode(v); return err }

// FuzzControlValues runs every control value parser on arbitrary bytes:
// they must not panic, and what they return must lie in their input.
func FuzzControlValues(f *testing.F) {
	for _, v := range goodControlValues(f) {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		if _, cookie, err := ParsePagedValue(value); err == nil {
			within(t, value, cookie)
		}
		if ctx, err := ParseVLVRequestContext(value); err == nil {
			within(t, value, ctx)
		}
		if ctx, err := ParseVLVResponseContext(value); err == nil {
			within(t, value, ctx)
		}
		if mode, err := ParseSyncRequestMode(value); err == nil && mode != SyncRefreshOnly && mode != SyncRefreshAndPersist {
			t.Fatalf("sync mode %d", mode)
		}
		if c, ok := FindControl(value, OIDPagedResults); ok {
			within(t, value, c.OID, c.Value)
		}
	})
}

func TestParsePasswordModify(t *testing.T) {
	body := func(fields ...[]byte) []byte {
		b := AppendElement(nil, 0x80, []byte(OIDPasswordModify))
		if fields == nil {
			return b
		}
		var seq []byte
		for _, f := range fields {
			seq = append(seq, f...)
		}
		return AppendElement(b, 0x81, AppendElement(nil, tagSequence, seq))
	}
	pm, err := ParsePasswordModify(body(AppendElement(nil, 0x80, []byte("uid=a,dc=x")), AppendElement(nil, 0x81, []byte("old")), AppendElement(nil, 0x82, []byte("new"))))
	if err != nil || string(pm.UserIdentity) != "uid=a,dc=x" || string(pm.OldPassword) != "old" || string(pm.NewPassword) != "new" {
		t.Errorf("full: %+v %v", pm, err)
	}
	pm, err = ParsePasswordModify(body(AppendElement(nil, 0x81, []byte("old"))))
	if err != nil || pm.UserIdentity != nil || string(pm.OldPassword) != "old" || pm.NewPassword != nil {
		t.Errorf("old only: %+v %v", pm, err)
	}
	if pm, err = ParsePasswordModify(body()); err != nil || pm.OldPassword != nil {
		t.Errorf("no value: %+v %v", pm, err)
	}
	if _, err := ParsePasswordModify(body(AppendElement(nil, 0x83, []byte("x")))); err == nil {
		t.Error("unknown field accepted")
	}
}

// TestControlEncoders: what AppendControl, AppendControls and
// AppendPagedValue build reads back through the package's parsers.
func TestControlEncoders(t *testing.T) {
	ctrls := AppendControls(AppendControl(nil, OIDPagedResults, true, AppendPagedValue(nil, 7, "c1")),
		AppendControl(nil, "1.2.3", false, nil))
	c, ok := FindControl(ctrls, OIDPagedResults)
	if !ok || !c.Critical {
		t.Fatalf("paged control: %+v %v", c, ok)
	}
	if size, cookie, err := ParsePagedValue(c.Value); err != nil || size != 7 || string(cookie) != "c1" {
		t.Errorf("paged value: %d %q %v", size, cookie, err)
	}
	if c, ok := FindControl(ctrls, "1.2.3"); !ok || c.Critical || c.HasValue {
		t.Errorf("bare control: %+v %v", c, ok)
	}
	if AppendControls() != nil {
		t.Error("no controls gave an element")
	}
	msg, err := Parse(AppendResultControls(nil, 4, OpSearchResultDone, Busy, "later", ctrls))
	if err != nil {
		t.Fatal(err)
	}
	res, err := ParseResult(msg.Body)
	if err != nil || msg.ID != 4 || res.Code != Busy || string(res.Diagnostic) != "later" {
		t.Errorf("result: %+v %+v %v", msg, res, err)
	}
	if _, ok := FindControl(msg.Controls, OIDPagedResults); !ok {
		t.Error("result lost its controls")
	}
}

func TestBindAnswerSaysSomething(t *testing.T) {
	policy := func(value []byte) []byte {
		return AppendControls(AppendControl(nil, OIDPasswordPolicy, false, value))
	}
	changeAfterReset := AppendElement(nil, tagSequence, []byte{0x81, 1, 2})
	grace := AppendElement(nil, tagSequence, AppendElement(nil, 0xa0, []byte{0x81, 1, 3}))
	other := AppendControls(AppendControl(nil, "2.16.840.1.113730.3.4.4", false, []byte("0")))
	for _, tc := range []struct {
		name     string
		controls []byte
		want     bool
	}{
		{"none", nil, false},
		{"empty policy response", policy(AppendElement(nil, tagSequence, nil)), false},
		{"policy response without a value", policy(nil), false},
		{"changeAfterReset", policy(changeAfterReset), true},
		{"grace logins", policy(grace), true},
		{"malformed policy response", policy([]byte{0x30, 5, 1}), true},
		{"another control", other, true},
		{"empty policy response and another control", AppendControls(AppendControl(nil, OIDPasswordPolicy, false, AppendElement(nil, tagSequence, nil)),
			AppendControl(nil, "2.16.840.1.113730.3.4.4", false, []byte("0"))), true},
	} {
		if got, _ := BindAnswer(tc.controls); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestBindAnswerRestricts(t *testing.T) {
	policy := func(content []byte) []byte {
		return AppendControls(AppendControl(nil, OIDPasswordPolicy, false, AppendElement(nil, tagSequence, content)))
	}
	for _, tc := range []struct {
		name     string
		controls []byte
		want     bool
	}{
		{"none", nil, false},
		{"empty policy response", policy(nil), false},
		{"changeAfterReset", policy([]byte{0x81, 1, 2}), true},
		{"grace logins left", policy(AppendElement(nil, 0xa0, []byte{0x81, 1, 3})), true},
		{"expires in an hour", policy(AppendElement(nil, 0xa0, []byte{0x80, 2, 0x0e, 0x10})), false},
		{"malformed", AppendControls(AppendControl(nil, OIDPasswordPolicy, false, []byte{0x30, 5, 1})), true},
		{"389 password expired", AppendControls(AppendControl(nil, OIDPasswordExpired, false, []byte("0"))), true},
		{"389 password expiring", AppendControls(AppendControl(nil, "2.16.840.1.113730.3.4.5", false, []byte("3600"))), false},
	} {
		if _, got := BindAnswer(tc.controls); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
