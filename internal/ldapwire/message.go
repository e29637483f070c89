package ldapwire

// Protocol operation tags (RFC 4511, section 4.2 onward).
const (
	OpBindRequest           = 0x60
	OpBindResponse          = 0x61
	OpUnbindRequest         = 0x42
	OpSearchRequest         = 0x63
	OpSearchResultEntry     = 0x64
	OpSearchResultDone      = 0x65
	OpModifyRequest         = 0x66
	OpModifyResponse        = 0x67
	OpAddRequest            = 0x68
	OpAddResponse           = 0x69
	OpDelRequest            = 0x4a
	OpDelResponse           = 0x6b
	OpModifyDNRequest       = 0x6c
	OpModifyDNResponse      = 0x6d
	OpCompareRequest        = 0x6e
	OpCompareResponse       = 0x6f
	OpAbandonRequest        = 0x50
	OpSearchResultReference = 0x73
	OpExtendedRequest       = 0x77
	OpExtendedResponse      = 0x78
	OpIntermediateResponse  = 0x79
)

// MaxMessageID is the largest message ID (RFC 4511: MessageID ::= INTEGER (0 .. maxInt)).
const MaxMessageID = 1<<31 - 1

// Message is one parsed LDAPMessage. Its slices alias the bytes given to
// Parse; nothing is copied.
type Message struct {
	ID       int32
	OpTag    byte
	Op       []byte // the whole protocolOp element (tag, length, content)
	Body     []byte // the protocolOp content
	Controls []byte // the whole [0] Controls element, or nil
}

// Parse splits a framed LDAPMessage into its parts.
func Parse(raw []byte) (Message, error) {
	outer, err := expect(raw, tagSequence, "LDAPMessage")
	if err != nil {
		return Message{}, err
	}
	if outer.size != len(raw) {
		return Message{}, malformed("%d trailing bytes after LDAPMessage", len(raw)-outer.size)
	}
	rest := outer.content
	idElem, err := expect(rest, tagInteger, "messageID")
	if err != nil {
		return Message{}, err
	}
	id, err := parseInt(idElem.content)
	if err != nil || id < 0 || id > MaxMessageID {
		return Message{}, malformed("message ID out of range")
	}
	rest = rest[idElem.size:]
	op, err := readTLV(rest)
	if err != nil {
		return Message{}, err
	}
	m := Message{ID: int32(id), OpTag: op.tag, Op: rest[:op.size], Body: op.content}
	rest = rest[op.size:]
	if len(rest) == 0 {
		return m, nil
	}
	ctrls, err := expect(rest, tagControls, "controls")
	if err != nil {
		return Message{}, err
	}
	if ctrls.size != len(rest) {
		return Message{}, malformed("unexpected element after controls")
	}
	m.Controls = rest
	return m, nil
}

// IsFinal reports whether a response with this tag ends its operation.
// Search entries, references and intermediate responses do not.
func IsFinal(opTag byte) bool {
	switch opTag {
	case OpSearchResultEntry, OpSearchResultReference, OpIntermediateResponse:
		return false
	}
	return true
}

// ResponseTag is the tag of the final response to a request, or 0 for
// requests without a response (unbind, abandon) and unknown tags.
func ResponseTag(requestTag byte) byte {
	switch requestTag {
	case OpBindRequest:
		return OpBindResponse
	case OpSearchRequest:
		return OpSearchResultDone
	case OpModifyRequest:
		return OpModifyResponse
	case OpAddRequest:
		return OpAddResponse
	case OpDelRequest:
		return OpDelResponse
	case OpModifyDNRequest:
		return OpModifyDNResponse
	case OpCompareRequest:
		return OpCompareResponse
	case OpExtendedRequest:
		return OpExtendedResponse
	}
	return 0
}

// AppendMessage appends an LDAPMessage made of id, an already encoded
// protocolOp and an optional [0] Controls element. extra, when not nil, is one
// more encoded Control appended inside the controls sequence.
func AppendMessage(dst []byte, id int32, op, controls, extra []byte) []byte {
	ctrlContent := 0
	if controls != nil || extra != nil {
		ctrlContent = controlsContentLen(controls) + len(extra)
	}
	content := tlvSize(intSize(int64(id))) + len(op)
	if controls != nil || extra != nil {
		content += tlvSize(ctrlContent)
	}
	dst = appendHeader(dst, tagSequence, content)
	dst = appendInt(dst, tagInteger, int64(id))
	dst = append(dst, op...)
	if controls == nil && extra == nil {
		return dst
	}
	dst = appendHeader(dst, tagControls, ctrlContent)
	if controls != nil {
		inner, _ := readTLV(controls)
		dst = append(dst, inner.content...)
	}
	return append(dst, extra...)
}

// controlsContentLen is the content length of a [0] Controls element, or 0.
func controlsContentLen(controls []byte) int {
	if controls == nil {
		return 0
	}
	t, err := readTLV(controls)
	if err != nil {
		return 0
	}
	return len(t.content)
}

// WithID appends m re-encoded with another message ID, controls unchanged.
func (m Message) WithID(dst []byte, id int32) []byte {
	return AppendMessage(dst, id, m.Op, m.Controls, nil)
}
