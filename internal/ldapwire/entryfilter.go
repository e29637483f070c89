package ldapwire

// AppendEntryFiltered appends the SearchResultEntry msg with message ID id,
// its controls, and only the attribute values keep accepts; keep is called
// once per value, in order. An attribute left without values keeps its type
// with an empty set, as a PartialAttributeList allows. With room in dst it
// does not allocate for entries of up to 256 values.
func AppendEntryFiltered(dst []byte, msg Message, id int32, keep func(attr, value []byte) bool) ([]byte, error) {
	if msg.OpTag != OpSearchResultEntry {
		return dst, malformed("entry filter: tag 0x%02x is not a search entry", msg.OpTag)
	}
	dn, list, err := splitEntry(msg.Body)
	if err != nil {
		return dst, err
	}
	var kept valueMask
	listLen, err := measureKept(list, keep, &kept)
	if err != nil {
		return dst, err
	}
	body := tlvSize(len(dn)) + tlvSize(listLen)
	dst = appendHeader(dst, tagSequence, tlvSize(intSize(int64(id)))+tlvSize(body)+len(msg.Controls))
	dst = appendInt(dst, tagInteger, int64(id))
	dst = appendHeader(dst, OpSearchResultEntry, body)
	dst = AppendElement(dst, tagOctetString, dn)
	dst = appendHeader(dst, tagSequence, listLen)
	dst = appendKept(dst, list, &kept)
	return append(dst, msg.Controls...), nil
}

// splitEntry returns the objectName and the attribute list content of a
// SearchResultEntry body.
func splitEntry(body []byte) (dn, list []byte, err error) {
	c := cursor{rest: body}
	dn = c.next(tagOctetString, "entry objectName")
	list = c.next(tagSequence, "entry attributes")
	return dn, list, c.done("search entry")
}

// nextAttribute splits the PartialAttribute at the start of list into its
// type and the content of its value set; size is the bytes it uses.
func nextAttribute(list []byte) (typ, vals []byte, size int, err error) {
	seq, err := expect(list, tagSequence, "attribute")
	if err != nil {
		return nil, nil, 0, err
	}
	c := cursor{rest: seq.content}
	typ = c.next(tagOctetString, "attribute type")
	vals = c.next(tagSet, "attribute values")
	return typ, vals, seq.size, c.done("attribute")
}

// measureKept asks keep about every value, records the answers in kept and
// returns the content length of the filtered attribute list.
func measureKept(list []byte, keep func(attr, value []byte) bool, kept *valueMask) (int, error) {
	total := 0
	for len(list) > 0 {
		typ, vals, size, err := nextAttribute(list)
		if err != nil {
			return 0, err
		}
		setLen := 0
		for len(vals) > 0 {
			v, err := expect(vals, tagOctetString, "attribute value")
			if err != nil {
				return 0, err
			}
			ok := keep(typ, v.content)
			kept.add(ok)
			if ok {
				setLen += v.size
			}
			vals = vals[v.size:]
		}
		total += tlvSize(tlvSize(len(typ)) + tlvSize(setLen))
		list = list[size:]
	}
	return total, nil
}

// appendKept appends the attributes of a list measureKept accepted, with
// the values kept records.
func appendKept(dst, list []byte, kept *valueMask) []byte {
	for i := 0; len(list) > 0; {
		typ, vals, size, _ := nextAttribute(list)
		setLen := keptLen(vals, kept, i)
		dst = appendHeader(dst, tagSequence, tlvSize(len(typ))+tlvSize(setLen))
		dst = AppendElement(dst, tagOctetString, typ)
		dst = appendHeader(dst, tagSet, setLen)
		for ; len(vals) > 0; i++ {
			v, _ := readTLV(vals)
			if kept.get(i) {
				dst = append(dst, vals[:v.size]...)
			}
			vals = vals[v.size:]
		}
		list = list[size:]
	}
	return dst
}

// keptLen is the length of the values in vals that kept records, the
// first being value i of the entry.
func keptLen(vals []byte, kept *valueMask, i int) int {
	n := 0
	for ; len(vals) > 0; i++ {
		v, _ := readTLV(vals)
		if kept.get(i) {
			n += v.size
		}
		vals = vals[v.size:]
	}
	return n
}

// valueMask records one bit per value; the first 256 need no allocation.
type valueMask struct {
	small [4]uint64
	more  []uint64
	n     int
}

func (m *valueMask) add(v bool) {
	w := m.n / 64
	if m.n%64 == 0 && w >= len(m.small) {
		m.more = append(m.more, 0)
	}
	if v {
		*m.word(w) |= 1 << (m.n % 64)
	}
	m.n++
}

func (m *valueMask) get(i int) bool {
	w := *m.word(i / 64)
	return w&(1<<(i%64)) != 0
}

func (m *valueMask) word(w int) *uint64 {
	if w < len(m.small) {
		return &m.small[w]
	}
	return &m.more[w-len(m.small)]
}

// EntryDropsAny reports, without allocating, whether keep refuses any value
// of the SearchResultEntry msg (and so whether AppendEntryFiltered would
// change it). A malformed entry reports false.
func EntryDropsAny(msg Message, keep func(attr, value []byte) bool) bool {
	if msg.OpTag != OpSearchResultEntry {
		return false
	}
	_, list, err := splitEntry(msg.Body)
	if err != nil {
		return false
	}
	for len(list) > 0 {
		typ, vals, size, err := nextAttribute(list)
		if err != nil {
			return false
		}
		for len(vals) > 0 {
			v, err := readTLV(vals)
			if err != nil {
				return false
			}
			if !keep(typ, v.content) {
				return true
			}
			vals = vals[v.size:]
		}
		list = list[size:]
	}
	return false
}
