package proxy

import (
	"sync"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// call is one attempt's view of an operation in flight on a backend
// connection. It implements backend.Handler.
type call struct {
	req  *Request
	done chan attemptResult // receives exactly one result

	mu        sync.Mutex // mu guards the fields below
	finished  bool
	delivered int
}

func newCall(req *Request) *call {
	return &call{req: req, done: make(chan attemptResult, 1)}
}

// encode writes the request with the backend message ID; every operation but
// a bind carries the client's identity as a Proxied Authorization control.
func (c *call) encode(dst []byte, id int32) []byte {
	var extra []byte
	if c.req.Msg.OpTag != ldapwire.OpBindRequest {
		extra = c.req.Identity.control
	}
	return ldapwire.AppendMessage(dst, id, c.req.Msg.Op, c.req.Msg.Controls, extra)
}

// Response passes a backend response on to the client with its message ID.
func (c *call) Response(frame []byte, msg ldapwire.Message, final bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return
	}
	code := -1
	if final {
		c.finished = true
		if res, err := ldapwire.ParseResult(msg.Body); err == nil {
			code = res.Code
		}
		if c.req.OnBindResult != nil {
			c.req.OnBindResult(code)
		}
	}
	c.req.Sink.Send(msg.WithID(make([]byte, 0, len(frame)+4), c.req.Msg.ID))
	c.delivered++
	if final {
		c.done <- attemptResult{status: answered, code: code, delivered: c.delivered}
	}
}

// Lost ends the call when its connection fails first.
func (c *call) Lost(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return
	}
	c.finished = true
	c.done <- attemptResult{status: lost, err: err, delivered: c.delivered}
}

// interrupt stops the call from the proxy's side (timeout or client gone)
// unless a result won the race, and releases it on the backend.
func (c *call) interrupt(conn *backend.Conn, id int32, st status, err error) attemptResult {
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return <-c.done
	}
	c.finished = true
	delivered := c.delivered
	c.mu.Unlock()
	if conn.Kind() == backend.BindConn {
		conn.Close(errInterrupted) // a bind cannot be abandoned
	} else {
		conn.Abandon(id)
	}
	return attemptResult{status: st, err: err, delivered: delivered}
}
