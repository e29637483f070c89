package ldapwire

import (
	"bytes"
	"testing"
)

// The request decoders get whole PDUs (the seed corpus in testdata/fuzz holds
// real ones, see corpus_test.go): each target runs its decoder both on the
// raw bytes and on the part of the parsed message it is meant for, so that
// the fuzzer explores well-formed envelopes with broken contents as well as
// arbitrary bytes. Beyond never panicking, every decoder must only return
// slices of its input and keep its documented ranges.

// seedPDUs are a few encodings every decoder target starts from, besides
// the checked-in corpus.
func seedPDUs() [][]byte {
	return [][]byte{
		AppendSimpleBind(nil, 1, "uid=user.1,ou=people,dc=example,dc=com", "password.1"),
		AppendAbandon(nil, 4, 3),
		AppendRootDSEProbe(nil, 5),
		AppendResult(nil, 6, OpBindResponse, InvalidCredentials, "invalid credentials"),
		AppendNotice(nil, Unavailable, "shutting down"),
		AppendExtendedResult(nil, 7, Success, "dn:cn=x"),
		AppendMessage(nil, 8, []byte{OpDelRequest, 4, 'c', 'n', '=', 'x'}, nil, ProxiedAuthzControl("dn:cn=x")),
	}
}

// parsed returns the message in data, or a message whose parts are all of
// data when it does not parse.
func parsed(data []byte) (Message, bool) {
	m, err := Parse(data)
	return m, err == nil
}

func addSeeds(f *testing.F) {
	for _, s := range seedPDUs() {
		f.Add(s)
	}
}

// fuzzPart runs check on the input taken as the part itself, and on that
// part of the input when it parses as a message.
func fuzzPart(f *testing.F, check func(*testing.T, []byte), part func(Message) []byte) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, data)
		if m, ok := parsed(data); ok {
			check(t, part(m))
		}
	})
}

func FuzzParseBind(f *testing.F) { fuzzPart(f, checkBind, func(m Message) []byte { return m.Body }) }

// checkBind decodes a bind body; a simple bind must survive re-encoding.
func checkBind(t *testing.T, body []byte) {
	br, err := ParseBind(body)
	if err != nil {
		return
	}
	within(t, body, br.Name, br.Password, br.Mechanism)
	if br.Auth != AuthSimple || br.Version != 3 {
		return
	}
	m, err := Parse(AppendSimpleBind(nil, 1, string(br.Name), string(br.Password)))
	if err != nil {
		t.Fatalf("re-encoded bind does not parse: %v", err)
	}
	again, err := ParseBind(m.Body)
	if err != nil || !bytes.Equal(again.Name, br.Name) || !bytes.Equal(again.Password, br.Password) {
		t.Fatalf("bind changed by re-encoding: %+v -> %+v (%v)", br, again, err)
	}
}

func FuzzTargetDN(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ok := parsed(data)
		if !ok {
			m = Message{OpTag: opTagOf(data), Body: data}
		}
		within(t, m.Body, m.TargetDN())
	})
}

func FuzzExtendedOID(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ok := parsed(data)
		if !ok {
			m = Message{OpTag: OpExtendedRequest, Body: data}
		}
		within(t, m.Body, m.ExtendedOID())
	})
}

func FuzzAbandonTarget(f *testing.F) {
	fuzzTarget(f, OpAbandonRequest, Message.AbandonTarget, func(id int32) []byte { return AppendAbandon(nil, 1, id) })
}

func FuzzCancelTarget(f *testing.F) {
	f.Add(cancelRequest(7, appendCancelValue(nil, 5)))
	fuzzTarget(f, OpExtendedRequest, Message.CancelTarget, func(id int32) []byte { return cancelRequest(1, appendCancelValue(nil, id)) })
}

// fuzzTarget checks a decoder of the message ID a request names (taken
// from the input as a message, or as the body of an opTag request): in
// range, and the same once re-encoded by encode.
func fuzzTarget(f *testing.F, opTag byte, target func(Message) (int32, error), encode func(int32) []byte) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ok := parsed(data)
		if !ok {
			m = Message{OpTag: opTag, Body: data}
		}
		id, err := target(m)
		if err != nil {
			return
		}
		if id < 0 || id > MaxMessageID {
			t.Fatalf("target %d out of range", id)
		}
		again, _ := Parse(encode(id))
		if got, err := target(again); err != nil || got != id {
			t.Fatalf("target %d re-encoded as %d (%v)", id, got, err)
		}
	})
}

func FuzzEachControl(f *testing.F) {
	fuzzPart(f, checkControls, func(m Message) []byte { return m.Controls })
}

// checkControls walks a controls element; the walk is bounded by its size.
func checkControls(t *testing.T, controls []byte) {
	n := 0
	_ = EachControl(controls, func(c Control) bool {
		n++
		within(t, controls, c.OID, c.Value)
		if c.HasValue != (c.Value != nil) {
			t.Fatalf("HasValue %v with value %q", c.HasValue, c.Value)
		}
		return true
	})
	if n > len(controls)/2 {
		t.Fatalf("%d controls in %d bytes", n, len(controls))
	}
	_ = HasControl(controls, OIDProxiedAuthzV2)
}

func FuzzParseResult(f *testing.F) {
	fuzzPart(f, checkResult, func(m Message) []byte { return m.Body })
}

// checkResult decodes an LDAPResult; code and diagnostic survive re-encoding.
func checkResult(t *testing.T, body []byte) {
	r, err := ParseResult(body)
	if err != nil {
		return
	}
	within(t, body, r.MatchedDN, r.Diagnostic)
	m, err := Parse(AppendResult(nil, 1, OpSearchResultDone, r.Code, string(r.Diagnostic)))
	if err != nil {
		t.Fatalf("re-encoded result does not parse: %v", err)
	}
	again, err := ParseResult(m.Body)
	if err != nil || again.Code != r.Code || !bytes.Equal(again.Diagnostic, r.Diagnostic) {
		t.Fatalf("result changed by re-encoding: %+v -> %+v (%v)", r, again, err)
	}
}

// opTagOf picks an operation tag from the first byte so that unparsed
// inputs reach every branch of TargetDN.
func opTagOf(data []byte) byte {
	tags := []byte{OpBindRequest, OpSearchRequest, OpModifyRequest, OpAddRequest, OpDelRequest,
		OpModifyDNRequest, OpCompareRequest, OpExtendedRequest}
	if len(data) == 0 {
		return OpDelRequest
	}
	return tags[int(data[0])%len(tags)]
}

// within fails unless every non-nil part lies inside buf.
func within(t *testing.T, buf []byte, parts ...[]byte) {
	t.Helper()
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		if !inside(buf, p) {
			t.Fatalf("decoded slice %q is not part of the input", p)
		}
	}
}

// inside reports whether p aliases a range of buf.
func inside(buf, p []byte) bool {
	if len(buf) == 0 || len(p) > len(buf) {
		return false
	}
	for off := 0; off+len(p) <= len(buf); off++ {
		if &buf[off] == &p[0] {
			return true
		}
	}
	return false
}
