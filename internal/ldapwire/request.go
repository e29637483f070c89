package ldapwire

// Bind authentication choices (RFC 4511, 4.2).
const (
	AuthSimple = 0x80 // [0] OCTET STRING
	AuthSASL   = 0xa3 // [3] SaslCredentials
)

// BindRequest is the decoded part of a BindRequest the proxy needs.
// Name and Password alias the message bytes.
type BindRequest struct {
	Version   int
	Name      []byte
	Auth      byte // AuthSimple or AuthSASL
	Password  []byte
	Mechanism []byte // SASL mechanism
}

// ParseBind decodes the body of a BindRequest.
func ParseBind(body []byte) (BindRequest, error) {
	var br BindRequest
	ver, err := expect(body, tagInteger, "bind version")
	if err != nil {
		return br, err
	}
	v, err := parseInt(ver.content)
	if err != nil {
		return br, err
	}
	br.Version = int(v)
	rest := body[ver.size:]
	name, err := expect(rest, tagOctetString, "bind name")
	if err != nil {
		return br, err
	}
	br.Name = name.content
	rest = rest[name.size:]
	auth, err := readTLV(rest)
	if err != nil {
		return br, err
	}
	br.Auth = auth.tag
	switch auth.tag {
	case AuthSimple:
		br.Password = auth.content
	case AuthSASL:
		mech, err := expect(auth.content, tagOctetString, "SASL mechanism")
		if err != nil {
			return br, err
		}
		br.Mechanism = mech.content
	}
	return br, nil
}

// TargetDN returns the entry DN an operation addresses (the base DN of a
// search), or nil for operations without one.
func (m Message) TargetDN() []byte {
	switch m.OpTag {
	case OpDelRequest:
		return m.Body
	case OpSearchRequest, OpAddRequest, OpModifyRequest, OpModifyDNRequest, OpCompareRequest:
		first, err := expect(m.Body, tagOctetString, "target DN")
		if err != nil {
			return nil
		}
		return first.content
	case OpBindRequest:
		br, err := ParseBind(m.Body)
		if err != nil {
			return nil
		}
		return br.Name
	}
	return nil
}

// ExtendedOID returns the requestName of an ExtendedRequest, or nil.
func (m Message) ExtendedOID() []byte {
	if m.OpTag != OpExtendedRequest {
		return nil
	}
	name, err := expect(m.Body, 0x80, "extended requestName")
	if err != nil {
		return nil
	}
	return name.content
}

// AbandonTarget returns the message ID an AbandonRequest names.
func (m Message) AbandonTarget() (int32, error) {
	v, err := parseInt(m.Body)
	if err != nil || v < 0 || v > MaxMessageID {
		return 0, malformed("abandon: bad message ID")
	}
	return int32(v), nil
}

// ExtendedValue returns the requestValue of an ExtendedRequest and
// whether it has a well-formed one.
func (m Message) ExtendedValue() ([]byte, bool) {
	if m.OpTag != OpExtendedRequest {
		return nil, false
	}
	value, present, err := extendedValue(m.Body)
	return value, present && err == nil
}

// extendedValue finds the requestValue in an ExtendedRequest body: present
// is false when the request has none.
func extendedValue(body []byte) (value []byte, present bool, err error) {
	name, err := expect(body, 0x80, "extended requestName")
	if err != nil || name.size == len(body) {
		return nil, false, err
	}
	v, err := expect(body[name.size:], 0x81, "extended requestValue")
	if err != nil {
		return nil, false, err
	}
	return v.content, true, nil
}

// CancelTarget returns the message ID a Cancel request (RFC 3909) names.
func (m Message) CancelTarget() (int32, error) {
	value, ok := m.ExtendedValue()
	if !ok {
		return 0, malformed("cancel: no request value")
	}
	seq, err := expect(value, tagSequence, "cancel request value")
	if err != nil {
		return 0, err
	}
	id, err := expect(seq.content, tagInteger, "cancelID")
	if err != nil {
		return 0, err
	}
	v, err := parseInt(id.content)
	if err != nil || v < 0 || v > MaxMessageID || id.size != len(seq.content) || seq.size != len(value) {
		return 0, malformed("cancel: bad cancelID")
	}
	return int32(v), nil
}

// Control is one decoded request or response control; slices alias the message.
type Control struct {
	OID      []byte
	Critical bool
	Value    []byte
	HasValue bool
}

// EachControl calls fn for every control in a [0] Controls element until fn
// returns false. It reports a malformed element as an error.
func EachControl(controls []byte, fn func(Control) bool) error {
	if controls == nil {
		return nil
	}
	outer, err := expect(controls, tagControls, "controls")
	if err != nil {
		return err
	}
	for rest := outer.content; len(rest) > 0; {
		seq, err := expect(rest, tagSequence, "control")
		if err != nil {
			return err
		}
		c, err := parseControl(seq.content)
		if err != nil {
			return err
		}
		if !fn(c) {
			return nil
		}
		rest = rest[seq.size:]
	}
	return nil
}

func parseControl(b []byte) (Control, error) {
	var c Control
	oid, err := expect(b, tagOctetString, "control type")
	if err != nil {
		return c, err
	}
	c.OID = oid.content
	for rest := b[oid.size:]; len(rest) > 0; {
		t, err := readTLV(rest)
		if err != nil {
			return c, err
		}
		switch t.tag {
		case tagBoolean:
			c.Critical = len(t.content) == 1 && t.content[0] != 0
		case tagOctetString:
			c.Value, c.HasValue = t.content, true
		default:
			return c, malformed("control: unexpected tag 0x%02x", t.tag)
		}
		rest = rest[t.size:]
	}
	return c, nil
}

// HasControl reports whether the controls element holds a control with oid.
func HasControl(controls []byte, oid string) bool {
	found := false
	_ = EachControl(controls, func(c Control) bool {
		found = string(c.OID) == oid
		return !found
	})
	return found
}
