package ldapwire

import "testing"

// appendCancelValue encodes a Cancel request value (RFC 3909).
func appendCancelValue(dst []byte, target int32) []byte {
	dst = appendHeader(dst, tagSequence, tlvSize(intSize(int64(target))))
	return appendInt(dst, tagInteger, int64(target))
}

// cancelRequest encodes a whole Cancel request with the given value (nil:
// none).
func cancelRequest(id int32, value []byte) []byte {
	body := appendString(nil, 0x80, OIDCancel)
	if value != nil {
		body = AppendElement(body, 0x81, value)
	}
	op := AppendElement(nil, OpExtendedRequest, body)
	return AppendMessage(nil, id, op, nil, nil)
}

func TestCancelTarget(t *testing.T) {
	for _, target := range []int32{0, 1, 127, 128, 65535, MaxMessageID} {
		m, err := Parse(cancelRequest(3, appendCancelValue(nil, target)))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := m.CancelTarget(); err != nil || got != target {
			t.Fatalf("cancel of %d: got %d, %v", target, got, err)
		}
	}
	bad := map[string][]byte{
		"no value":         nil,
		"empty value":      {},
		"not a sequence":   {0x02, 0x01, 0x05},
		"empty sequence":   {0x30, 0x00},
		"negative":         {0x30, 0x03, 0x02, 0x01, 0xff},
		"octet string":     {0x30, 0x03, 0x04, 0x01, 0x05},
		"trailing element": {0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x06},
		"trailing bytes":   {0x30, 0x03, 0x02, 0x01, 0x05, 0x00},
		"too large":        {0x30, 0x07, 0x02, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00},
	}
	for name, value := range bad {
		m, err := Parse(cancelRequest(3, value))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, err := m.CancelTarget(); err == nil {
			t.Errorf("%s: accepted as a cancel of %d", name, got)
		}
	}
	search, _ := Parse(AppendAbandon(nil, 2, 1))
	if _, err := search.CancelTarget(); err == nil {
		t.Error("an abandon request read as a cancel")
	}
}
