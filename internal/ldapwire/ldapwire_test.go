package ldapwire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// encodeSearch builds a real search request with go-ldap's encoder.
func encodeSearch(t testing.TB, id int64, base string, controls ...ldap.Control) []byte {
	t.Helper()
	packet := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	packet.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 3, nil, "Search Request")
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, base, "Base DN"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 2, "Scope"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, "Deref"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "Size"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "Time"))
	req.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, "TypesOnly"))
	filter, err := ldap.CompileFilter("(uid=user.1)")
	if err != nil {
		t.Fatal(err)
	}
	req.AppendChild(filter)
	req.AppendChild(ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Attributes"))
	packet.AppendChild(req)
	if len(controls) > 0 {
		packet.AppendChild(controlsPacket(controls))
	}
	return packet.Bytes()
}

func TestParseAndRewriteID(t *testing.T) {
	paging := ldap.NewControlPaging(50)
	for _, id := range []int64{1, 127, 128, 255, 65536, MaxMessageID} {
		raw := encodeSearch(t, id, "ou=people,dc=example,dc=com", paging)
		m, err := Parse(raw)
		if err != nil {
			t.Fatalf("id %d: %v", id, err)
		}
		if int64(m.ID) != id || m.OpTag != OpSearchRequest {
			t.Fatalf("id %d: got id %d tag %x", id, m.ID, m.OpTag)
		}
		if got := string(m.TargetDN()); got != "ou=people,dc=example,dc=com" {
			t.Fatalf("target DN %q", got)
		}
		if !HasControl(m.Controls, ldap.ControlTypePaging) {
			t.Fatal("paging control not found")
		}
		for _, newID := range []int32{1, 300, 1 << 24, MaxMessageID} {
			out := m.WithID(nil, newID)
			want := encodeSearch(t, int64(newID), "ou=people,dc=example,dc=com", paging)
			if !bytes.Equal(out, want) {
				t.Fatalf("rewrite %d->%d:\n got %x\nwant %x", id, newID, out, want)
			}
		}
	}
}

func TestAppendExtraControl(t *testing.T) {
	proxy := ProxiedAuthzControl("dn:uid=user.1,ou=people,dc=example,dc=com")
	for _, existing := range [][]ldap.Control{nil, {ldap.NewControlPaging(10)}} {
		raw := encodeSearch(t, 7, "dc=example,dc=com", existing...)
		m, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		out := AppendMessage(nil, 9, m.Op, m.Controls, proxy)
		// go-asn1-ber writes TRUE as 0x01, we write the DER 0xff: both are valid BER.
		normalized := bytes.Replace(out, []byte{0x01, 0x01, 0xff}, []byte{0x01, 0x01, 0x01}, 1)
		all := append(append([]ldap.Control{}, existing...), ldap.NewControlString(OIDProxiedAuthzV2, true, "dn:uid=user.1,ou=people,dc=example,dc=com"))
		want := encodeSearch(t, 9, "dc=example,dc=com", all...)
		if !bytes.Equal(normalized, want) {
			t.Fatalf("with %d controls:\n got %x\nwant %x", len(existing), out, want)
		}
		var oids []string
		m2, _ := Parse(out)
		if err := EachControl(m2.Controls, func(c Control) bool { oids = append(oids, string(c.OID)); return true }); err != nil {
			t.Fatal(err)
		}
		if oids[len(oids)-1] != OIDProxiedAuthzV2 {
			t.Fatalf("controls %v", oids)
		}
	}
}

func TestBuiltMessagesDecodeWithGoLDAP(t *testing.T) {
	cases := map[string][]byte{
		"result":   AppendResult(nil, 42, OpSearchResultDone, Busy, "too busy"),
		"notice":   AppendNotice(nil, Unavailable, "shutting down"),
		"abandon":  AppendAbandon(nil, 5, 300),
		"bind":     AppendSimpleBind(nil, 1, "cn=x", "pw"),
		"probe":    AppendRootDSEProbe(nil, 2),
		"unbind":   AppendUnbind(nil, 3),
		"extended": AppendExtendedResult(nil, 4, Success, "dn:cn=x"),
	}
	for name, raw := range cases {
		p, err := ber.DecodePacketErr(raw)
		if err != nil {
			t.Fatalf("%s: go-asn1-ber cannot decode: %v", name, err)
		}
		if len(p.Bytes()) != len(raw) {
			t.Fatalf("%s: length mismatch", name)
		}
		if _, err := Parse(raw); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	m, _ := Parse(cases["result"])
	r, err := ParseResult(m.Body)
	if err != nil || r.Code != Busy || string(r.Diagnostic) != "too busy" || m.ID != 42 {
		t.Fatalf("result %+v %v", r, err)
	}
	m, _ = Parse(cases["bind"])
	br, err := ParseBind(m.Body)
	if err != nil || br.Version != 3 || string(br.Name) != "cn=x" || string(br.Password) != "pw" || br.Auth != AuthSimple {
		t.Fatalf("bind %+v %v", br, err)
	}
	m, _ = Parse(cases["abandon"])
	if target, err := m.AbandonTarget(); err != nil || target != 300 {
		t.Fatalf("abandon target %d %v", target, err)
	}
}

func TestReaderFramesAndLimits(t *testing.T) {
	a := encodeSearch(t, 1, "dc=a")
	b := encodeSearch(t, 2, strings.Repeat("x", 300))
	fr := NewReader(bytes.NewReader(append(append([]byte{}, a...), b...)), 0)
	for _, want := range [][]byte{a, b} {
		got, err := fr.Next()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("frame: %v", err)
		}
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
	bad := map[string]struct {
		in   []byte
		want error
	}{
		"truncated":   {a[:len(a)-3], io.ErrUnexpectedEOF},
		"wrong tag":   {append([]byte{0x31}, a[1:]...), ErrMalformed},
		"huge length": {[]byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff}, ErrTooLarge},
		"five octets": {[]byte{0x30, 0x85, 1, 1, 1, 1, 1}, ErrMalformed},
		"indefinite":  {[]byte{0x30, 0x80, 0, 0}, ErrMalformed},
	}
	for name, c := range bad {
		_, err := NewReader(bytes.NewReader(c.in), 1024).Next()
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	good := encodeSearch(t, 1, "dc=a", ldap.NewControlPaging(5))
	cases := map[string][]byte{
		"no id":          {0x30, 0x03, 0x04, 0x01, 0x41},
		"negative id":    {0x30, 0x05, 0x02, 0x01, 0xff, 0x42, 0x00},
		"trailing":       append(append([]byte{}, good...), 0),
		"inner too long": {0x30, 0x05, 0x02, 0x01, 0x01, 0x42, 0x05},
		"bad controls":   {0x30, 0x07, 0x02, 0x01, 0x01, 0x42, 0x00, 0x04, 0x00},
		"empty":          {},
	}
	for name, raw := range cases {
		if _, err := Parse(raw); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// controlsPacket mirrors go-ldap's (unexported) [0] Controls encoding.
func controlsPacket(controls []ldap.Control) *ber.Packet {
	packet := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "Controls")
	for _, c := range controls {
		packet.AppendChild(c.Encode())
	}
	return packet
}

// TestReaderInPlaceAndPieces frames the same stream whole and delivered in
// every chunk size: messages whole in the read buffer are returned in place,
// split ones are assembled, and both give the same frames; Ready says
// whether Next can answer without reading.
func TestReaderInPlaceAndPieces(t *testing.T) {
	var stream []byte
	var want [][]byte
	for i := range 40 {
		m := encodeSearch(t, int64(i+1), "uid=user."+strings.Repeat("z", i*7)+",dc=example")
		want = append(want, m)
		stream = append(stream, m...)
	}
	for _, chunk := range []int{1, 2, 3, 17, 64, 100, 1000, len(stream)} {
		fr := NewReaderSize(&chunkReader{data: stream, chunk: chunk}, 0, 256)
		for i, w := range want {
			got, err := fr.Next()
			if err != nil || !bytes.Equal(got, w) {
				t.Fatalf("chunk %d, message %d: %v", chunk, i, err)
			}
			if fr.Ready() {
				next, _ := fr.r.Peek(fr.r.Buffered())
				if i+1 >= len(want) || !bytes.HasPrefix(next[fr.lent:], want[i+1]) {
					t.Fatalf("chunk %d, message %d: Ready without the whole next message buffered", chunk, i)
				}
			}
		}
		if _, err := fr.Next(); err != io.EOF {
			t.Fatalf("chunk %d: want EOF, got %v", chunk, err)
		}
	}
}

// chunkReader hands out data at most chunk bytes per Read.
type chunkReader struct {
	data  []byte
	chunk int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.chunk)], c.data)
	c.data = c.data[n:]
	return n, nil
}
