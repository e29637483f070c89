package e2e

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// rawClient speaks LDAP byte by byte, for what well-behaved clients never send.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	r  *ldapwire.Reader
}

func rawDial(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc := dialTCP(t, addr)
	return &rawClient{t: t, nc: nc, r: ldapwire.NewReader(nc, 0)}
}

// dialTCP connects to addr, closing the connection when t ends.
func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

func (c *rawClient) send(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next reads one message, failing the test after a deadline.
func (c *rawClient) next() (ldapwire.Message, error) { return c.nextWithin(10 * time.Second) }

// nextWithin reads one message, failing after d.
func (c *rawClient) nextWithin(d time.Duration) (ldapwire.Message, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	frame, err := c.r.Next()
	if err != nil {
		return ldapwire.Message{}, err
	}
	return ldapwire.Parse(append([]byte(nil), frame...))
}

// expectNoticeAndClose reads a Notice of Disconnection with code, then EOF.
func (c *rawClient) expectNoticeAndClose(code int) {
	c.t.Helper()
	msg, err := c.next()
	if err != nil {
		c.t.Fatalf("want a notice of disconnection, got %v", err)
	}
	res, _ := ldapwire.ParseResult(msg.Body)
	if msg.ID != 0 || msg.OpTag != ldapwire.OpExtendedResponse || res.Code != code {
		c.t.Fatalf("want notice with code %d, got id %d tag %x code %d (%s)", code, msg.ID, msg.OpTag, res.Code, res.Diagnostic)
	}
	if _, err := c.next(); !errors.Is(err, io.EOF) && !isReset(err) {
		c.t.Fatalf("want the connection closed after the notice, got %v", err)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}

// result reads the next message and returns its ID and result code.
func (c *rawClient) result() (int32, byte, int) {
	c.t.Helper()
	msg, err := c.next()
	if err != nil {
		c.t.Fatalf("want a response, got %v", err)
	}
	res, _ := ldapwire.ParseResult(msg.Body)
	return msg.ID, msg.OpTag, res.Code
}
