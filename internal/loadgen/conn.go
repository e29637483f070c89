package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// errNotice is returned when the server disconnects the client.
var errNotice = errors.New("loadgen: server sent a notice of disconnection")

// conn is one client connection with one operation outstanding at a time.
type conn struct {
	nc      net.Conn
	r       *ldapwire.Reader
	buf     []byte
	nextID  int32
	timeout time.Duration
}

// hostPort turns ldap://host[:port] into host:port.
func hostPort(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("loadgen: bad URL %q (want ldap://host:port)", raw)
	}
	if u.Scheme != "ldap" {
		return "", fmt.Errorf("loadgen: URL %q: only ldap:// is supported", raw)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "389"), nil
	}
	return u.Host, nil
}

// dial connects to addr and, when dn is not empty, binds with a simple bind.
func dial(ctx context.Context, addr, dn, password string, timeout time.Duration) (*conn, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: connect: %w", err)
	}
	c := &conn{nc: nc, r: ldapwire.NewReader(nc, 0), timeout: timeout}
	if dn == "" {
		return c, nil
	}
	code, _, err := c.roundTrip(func(dst []byte, id int32) []byte {
		return ldapwire.AppendSimpleBind(dst, id, dn, password)
	})
	if err == nil && code != ldapwire.Success {
		err = fmt.Errorf("loadgen: bind as %q: %s (%d) (check -D and -w)", dn, ldapwire.ResultName(code), code)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// roundTrip sends one request built by encode and reads its responses up
// to the final one. It returns the result code and the number of entries.
func (c *conn) roundTrip(encode func(dst []byte, id int32) []byte) (code, entries int, err error) {
	c.nextID++
	if c.nextID <= 0 {
		c.nextID = 1
	}
	c.buf = encode(c.buf[:0], c.nextID)
	c.nc.SetDeadline(time.Now().Add(c.timeout))
	if _, err := c.nc.Write(c.buf); err != nil {
		return 0, 0, fmt.Errorf("loadgen: write: %w", err)
	}
	return c.readResult(c.nextID)
}

// readResult reads responses until the final one for id.
func (c *conn) readResult(id int32) (code, entries int, err error) {
	for {
		frame, err := c.r.Next()
		if err != nil {
			return 0, entries, fmt.Errorf("loadgen: read: %w", err)
		}
		msg, err := ldapwire.Parse(frame)
		if err != nil {
			return 0, entries, err
		}
		if msg.ID == 0 {
			return 0, entries, errNotice
		}
		if msg.ID != id {
			continue
		}
		if !ldapwire.IsFinal(msg.OpTag) {
			entries++
			continue
		}
		res, err := ldapwire.ParseResult(msg.Body)
		return res.Code, entries, err
	}
}

func (c *conn) close() { c.nc.Close() }
