package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Template is text with numeric ranges written [lo-hi], such as
// "uid=user.[1-10000],ou=people,dc=example,dc=com". Each range is replaced by
// a number drawn uniformly from lo..hi for every operation. Within one
// operation, ranges written identically share their number, so that a bind
// DN "uid=user.[1-100],..." and a password "password.[1-100]" match.
// A '[' that does not start a valid range is kept as text.
type Template struct {
	parts []part
}

// part is literal text or a range.
type part struct {
	text   string
	lo, hi int
	isNum  bool
}

// ParseTemplate splits s into text and ranges.
func ParseTemplate(s string) (Template, error) {
	var t Template
	for s != "" {
		i := strings.IndexByte(s, '[')
		if i < 0 {
			t.addText(s)
			break
		}
		t.addText(s[:i])
		p, n, err := parseRange(s[i:])
		if err != nil {
			return Template{}, err
		}
		if n == 0 {
			t.addText("[")
			s = s[i+1:]
			continue
		}
		t.parts = append(t.parts, p)
		s = s[i+n:]
	}
	return t, nil
}

// parseRange reads "[lo-hi]" at the start of s and returns its length, or 0
// when s does not start with something shaped like a range.
func parseRange(s string) (part, int, error) {
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return part{}, 0, nil
	}
	los, his, ok := strings.Cut(s[1:end], "-")
	lo, err1 := strconv.Atoi(los)
	hi, err2 := strconv.Atoi(his)
	if !ok || err1 != nil || err2 != nil || lo < 0 {
		return part{}, 0, nil
	}
	if hi < lo {
		return part{}, 0, fmt.Errorf("loadgen: range %s: %d is below %d", s[:end+1], hi, lo)
	}
	return part{lo: lo, hi: hi, isNum: true}, end + 1, nil
}

func (t *Template) addText(s string) {
	if s == "" {
		return
	}
	if n := len(t.parts); n > 0 && !t.parts[n-1].isNum {
		t.parts[n-1].text += s
		return
	}
	t.parts = append(t.parts, part{text: s})
}

// HasRanges reports whether the template varies between operations.
func (t Template) HasRanges() bool {
	for _, p := range t.parts {
		if p.isNum {
			return true
		}
	}
	return false
}

// String is the template as written (ranges in [lo-hi] form).
func (t Template) String() string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.isNum {
			fmt.Fprintf(&b, "[%d-%d]", p.lo, p.hi)
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String()
}

// Append appends the template expanded with the numbers of d.
func (t Template) Append(dst []byte, d *Draw) []byte {
	for _, p := range t.parts {
		if p.isNum {
			dst = strconv.AppendInt(dst, int64(d.value(p.lo, p.hi)), 10)
		} else {
			dst = append(dst, p.text...)
		}
	}
	return dst
}

// Draw holds the numbers drawn for one operation. Reset it between
// operations; it is not safe for concurrent use.
type Draw struct {
	rng  *rand.Rand
	used [4]drawn
	n    int
}

type drawn struct{ lo, hi, v int }

// NewDraw draws from a generator seeded with seed.
func NewDraw(seed uint64) *Draw {
	return &Draw{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Reset starts a new operation: every range gets a fresh number.
func (d *Draw) Reset() { d.n = 0 }

// value returns this operation's number for the range lo..hi.
func (d *Draw) value(lo, hi int) int {
	for _, u := range d.used[:d.n] {
		if u.lo == lo && u.hi == hi {
			return u.v
		}
	}
	v := lo + d.rng.IntN(hi-lo+1)
	if d.n < len(d.used) {
		d.used[d.n] = drawn{lo, hi, v}
		d.n++
	}
	return v
}

// Intn returns a number in [0, n) from the same generator.
func (d *Draw) Intn(n int) int { return d.rng.IntN(n) }
