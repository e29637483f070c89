package backend

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// TLSMode is how connections to a server are secured.
type TLSMode int

// TLS modes.
const (
	TLSNone     TLSMode = iota // plain LDAP
	TLSLDAPS                   // TLS from the first byte
	TLSStartTLS                // plain LDAP upgraded with StartTLS before anything else
)

func (m TLSMode) String() string {
	switch m {
	case TLSLDAPS:
		return "ldaps"
	case TLSStartTLS:
		return "starttls"
	}
	return "none"
}

// TLS is a server's transport security. Config carries the CA pool, the
// name to verify (ServerName) and an optional client certificate; it is
// never modified after SetTLS.
type TLS struct {
	Mode   TLSMode
	Config *tls.Config
}

// tlsSettings holds each server's TLS; a field of Server would do, but the
// pointer lives here so that server.go stays about health.
type tlsSettings struct{ p atomic.Pointer[TLS] }

// SetTLS sets how new connections to s are secured (nil: plain). Open
// connections keep theirs until they are recycled.
func (s *Server) SetTLS(t *TLS) { s.tls.p.Store(t) }

// TLS returns how connections to s are secured, or nil for plain LDAP.
func (s *Server) TLS() *TLS {
	t := s.tls.p.Load()
	if t == nil || t.Mode == TLSNone {
		return nil
	}
	return t
}

// secure applies s's TLS mode to a freshly dialed connection, within ctx.
// On error nc is closed.
func (s *Server) secure(ctx context.Context, nc net.Conn) (net.Conn, error) {
	t := s.TLS()
	if t == nil {
		return nc, nil
	}
	if t.Mode == TLSStartTLS {
		if err := startTLS(ctx, nc); err != nil {
			nc.Close()
			return nil, err
		}
	}
	tc := tls.Client(nc, t.Config)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake with %s (%s): %w (check the server's certificate, tls.ca-file and tls.server-name)", s.Address, t.Mode, err)
	}
	return &tlsConn{Conn: tc, raw: nc}, nil
}

// tlsConn closes the TCP connection directly: tls.Conn.Close sends a
// close_notify first, which may block for seconds on a stuck peer.
type tlsConn struct {
	*tls.Conn
	raw net.Conn
}

func (c *tlsConn) Close() error { return c.raw.Close() }

// startTLS runs the StartTLS extended operation (RFC 4511, 4.14) on a new
// connection. The response is read byte-exactly: the TLS handshake follows.
func startTLS(ctx context.Context, nc net.Conn) error {
	if deadline, ok := ctx.Deadline(); ok {
		nc.SetDeadline(deadline)
		defer nc.SetDeadline(time.Time{})
	}
	if _, err := nc.Write(AppendStartTLS(nil, 1)); err != nil {
		return fmt.Errorf("StartTLS: %w", err)
	}
	frame, err := readExact(nc, 64<<10)
	if err != nil {
		return fmt.Errorf("StartTLS: %w", err)
	}
	msg, err := ldapwire.Parse(frame)
	if err != nil || msg.OpTag != ldapwire.OpExtendedResponse || msg.ID != 1 {
		return fmt.Errorf("StartTLS: unexpected response (%v)", err)
	}
	res, err := ldapwire.ParseResult(msg.Body)
	if err != nil {
		return fmt.Errorf("StartTLS: %w", err)
	}
	if res.Code != ldapwire.Success {
		return fmt.Errorf("StartTLS refused: result %d %s (is TLS configured on the server?)", res.Code, res.Diagnostic)
	}
	return nil
}

// AppendStartTLS appends a StartTLS ExtendedRequest.
func AppendStartTLS(dst []byte, id int32) []byte {
	oid := ldapwire.OIDStartTLS
	op := append([]byte{ldapwire.OpExtendedRequest, byte(2 + len(oid)), 0x80, byte(len(oid))}, oid...)
	return ldapwire.AppendMessage(dst, id, op, nil, nil)
}

// readExact reads one LDAPMessage without reading past its end.
func readExact(r io.Reader, max int) ([]byte, error) {
	hdr := make([]byte, 2, 6)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	n := 0
	switch {
	case hdr[1] < 0x80:
		n = int(hdr[1])
	case hdr[1]&0x7f > 4:
		return nil, fmt.Errorf("bad length octets 0x%02x", hdr[1])
	default:
		ext := make([]byte, hdr[1]&0x7f)
		if _, err := io.ReadFull(r, ext); err != nil {
			return nil, err
		}
		for _, b := range ext {
			n = n<<8 | int(b)
		}
		hdr = append(hdr, ext...)
	}
	if n > max {
		return nil, fmt.Errorf("response of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(hdr, body...), nil
}
