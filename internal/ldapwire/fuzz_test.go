package ldapwire

import (
	"bytes"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// FuzzReader feeds arbitrary bytes to the framer and the parsers: they must
// never panic, never return a frame over the limit, and every parsed message
// must re-encode to the same bytes.
func FuzzReader(f *testing.F) {
	f.Add(encodeSearch(f, 1, "dc=example,dc=com", ldap.NewControlPaging(10)))
	f.Add(AppendSimpleBind(nil, 1, "cn=admin", "secret"))
	f.Add(AppendAbandon(nil, 2, 1))
	f.Add(AppendRootDSEProbe(nil, 3))
	f.Add([]byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff})
	f.Add([]byte{0x30, 0x03, 0x02, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewReader(bytes.NewReader(data), 4096)
		for i := 0; i < 16; i++ {
			frame, err := fr.Next()
			if err != nil {
				return
			}
			if len(frame) > 4096+6 {
				t.Fatalf("frame of %d bytes over the limit", len(frame))
			}
			checkMessage(t, frame)
		}
	})
}

func checkMessage(t *testing.T, frame []byte) {
	m, err := Parse(frame)
	if err != nil {
		return
	}
	_ = m.TargetDN()
	_ = m.ExtendedOID()
	_, _ = m.AbandonTarget()
	_, _ = ParseBind(m.Body)
	_, _ = ParseResult(m.Body)
	_ = EachControl(m.Controls, func(Control) bool { return true })
	again := m.WithID(nil, m.ID)
	if m2, err := Parse(again); err != nil || m2.ID != m.ID || !bytes.Equal(m2.Op, m.Op) || !bytes.Equal(m2.Controls, m.Controls) {
		t.Fatalf("re-encoding changed the message: %v", err)
	}
}
