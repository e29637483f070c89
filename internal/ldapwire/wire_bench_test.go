package ldapwire

import (
	"io"
	"testing"
)

// Benchmarks of the per-message work of the forwarding path. Run with
// go test -run='^$' -bench=. -benchmem ./internal/ldapwire/

// benchEntry is a SearchResultEntry like slapd returns for a sample user
// (about 250 bytes).
func benchEntry(id int32) []byte {
	attr := func(dst []byte, name string, vals ...string) []byte {
		var inner []byte
		inner = appendString(inner, tagOctetString, name)
		var set []byte
		for _, v := range vals {
			set = appendString(set, tagOctetString, v)
		}
		inner = append(appendHeader(inner, 0x31, len(set)), set...)
		return append(appendHeader(dst, tagSequence, len(inner)), inner...)
	}
	var attrs []byte
	attrs = attr(attrs, "objectClass", "top", "person", "organizationalPerson", "inetOrgPerson")
	attrs = attr(attrs, "uid", "user.1")
	attrs = attr(attrs, "cn", "User 1")
	attrs = attr(attrs, "sn", "1")
	attrs = attr(attrs, "mail", "user.1@example.com")
	attrs = attr(attrs, "telephoneNumber", "+1 555 0000001")
	body := appendString(nil, tagOctetString, "uid=user.1,ou=people,dc=example,dc=com")
	body = append(appendHeader(body, tagSequence, len(attrs)), attrs...)
	op := append(appendHeader(nil, OpSearchResultEntry, len(body)), body...)
	return AppendMessage(nil, id, op, nil, nil)
}

// cycleReader returns the same bytes forever.
type cycleReader struct {
	data []byte
	off  int
}

func (c *cycleReader) Read(p []byte) (int, error) {
	n := copy(p, c.data[c.off:])
	c.off = (c.off + n) % len(c.data)
	return n, nil
}

func benchReader(b *testing.B, msg []byte) {
	stream := make([]byte, 0, 64<<10)
	for len(stream)+len(msg) <= cap(stream) {
		stream = append(stream, msg...)
	}
	r := NewReader(&cycleReader{data: stream}, 0)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Next(); err != nil && err != io.EOF {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderNext frames one message from a stream (what every session
// and backend reader does per message).
func BenchmarkReaderNext(b *testing.B) {
	b.Run("search-request", func(b *testing.B) { benchReader(b, encodeSearch(b, 7, "uid=user.1,ou=people,dc=example,dc=com")) })
	b.Run("entry", func(b *testing.B) { benchReader(b, benchEntry(7)) })
}

// BenchmarkParse splits a framed message into its parts.
func BenchmarkParse(b *testing.B) {
	raw := encodeSearch(b, 7, "uid=user.1,ou=people,dc=example,dc=com")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRequestInspect is what the frontend reads of a search before
// forwarding it: target DN, extended OID, client proxied-authz controls.
func BenchmarkRequestInspect(b *testing.B) {
	m, _ := Parse(encodeSearch(b, 7, "uid=user.1,ou=people,dc=example,dc=com"))
	b.ReportAllocs()
	for b.Loop() {
		_ = m.TargetDN()
		_ = m.ExtendedOID()
		if HasControl(m.Controls, OIDProxiedAuthzV2) || HasControl(m.Controls, OIDProxiedAuthzV1) {
			b.Fatal("control found")
		}
	}
}

// BenchmarkAppendMessageProxyAuthz re-encodes a request for a backend
// connection: new message ID plus the client's Proxied Authorization
// control, into a reused buffer (backend.Conn.write).
func BenchmarkAppendMessageProxyAuthz(b *testing.B) {
	m, _ := Parse(encodeSearch(b, 7, "uid=user.1,ou=people,dc=example,dc=com"))
	ctrl := ProxiedAuthzControl("dn:uid=app,ou=apps,dc=example,dc=com")
	var buf []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = AppendMessage(buf[:0], int32(i&0xffff+1), m.Op, m.Controls, ctrl)
	}
}

// BenchmarkWithID restores the client's message ID on a response entry.
func BenchmarkWithID(b *testing.B) {
	m, _ := Parse(benchEntry(12345))
	b.Run("reused-buffer", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = m.WithID(buf[:0], 3)
		}
	})
	b.Run("fresh-buffer", func(b *testing.B) { // what proxy.call.Response does today
		b.ReportAllocs()
		for b.Loop() {
			_ = m.WithID(make([]byte, 0, len(m.Op)+16), 3)
		}
	})
}

// BenchmarkParseResult reads the result code of a final response.
func BenchmarkParseResult(b *testing.B) {
	m, _ := Parse(AppendResult(nil, 3, OpSearchResultDone, Success, ""))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseResult(m.Body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateRequest checks a search request's structure, as the
// frontend does for every request.
func BenchmarkValidateRequest(b *testing.B) {
	m, _ := Parse(encodeSearch(b, 7, "uid=user.1,ou=people,dc=example,dc=com"))
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidateRequest(m); err != nil {
			b.Fatal(err)
		}
	}
}
