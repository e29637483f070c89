package frontend

import (
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/proxy"
)

// cancelRequest encodes a Cancel (RFC 3909) of message target.
func cancelRequest(id, target int32) []byte {
	cancelID := ldapwire.AppendInteger(nil, 0x02, int64(target))
	value := ldapwire.AppendElement(nil, 0x30, cancelID)
	body := ldapwire.AppendElement(nil, 0x80, []byte(ldapwire.OIDCancel))
	body = ldapwire.AppendElement(body, 0x81, value)
	return ldapwire.AppendMessage(nil, id, ldapwire.AppendElement(nil, ldapwire.OpExtendedRequest, body), nil, nil)
}

// A Cancel names a message ID of the client's own connection, so ldapmux
// answers it itself: a bind still in progress (once the wait behind it gave
// up) cannot be canceled and goes on; an ID with no operation in progress
// gets noSuchOperation. (Canceling a search against a real slapd:
// internal/e2e TestCancelAsOnSlapd.)
func TestCancelOfABindOrOfNothing(t *testing.T) {
	e := newEnv(t, proxy.Config{OperationTimeout: time.Minute, BindTimeout: time.Minute}, Limits{BindWait: 100 * time.Millisecond}, 2)
	e.ds.addUser(aliceDN, "alice-pw")
	release := e.ds.hold(aliceDN)
	defer release()
	c := e.dial(t)
	c.send(ldapwire.AppendSimpleBind(nil, 1, aliceDN, "alice-pw"))
	e.ds.until(t, 5*time.Second, "alice's bind received", func() bool { return e.ds.findLocked(bindRequestOf(aliceDN)) >= 0 })
	c.send(cancelRequest(2, 1), cancelRequest(3, 77))
	if res, _, _ := c.readDone(2, ldapwire.OpExtendedResponse); res.Code != ldapwire.CannotCancel {
		t.Errorf("cancel of a bind in progress: result %d %s, want cannotCancel", res.Code, res.Diagnostic)
	}
	if res, _, _ := c.readDone(3, ldapwire.OpExtendedResponse); res.Code != ldapwire.NoSuchOperation {
		t.Errorf("cancel of message 77: result %d %s, want noSuchOperation", res.Code, res.Diagnostic)
	}
	release()
	if res, _, _ := c.readDone(1, ldapwire.OpBindResponse); res.Code != ldapwire.Success {
		t.Fatalf("the bind after the cancel: result %d %s", res.Code, res.Diagnostic)
	}
	c.send(ldapwire.AppendWhoAmI(nil, 4))
	if who := c.whoAmI(4); who != "dn:"+aliceDN {
		t.Errorf("Who am I? after the bind: %q", who)
	}
}
