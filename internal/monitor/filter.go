package monitor

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// Matches evaluates a search filter against an entry's attributes. Values
// compare without regard to case; ordering compares numbers as numbers.
// Extensible matches match nothing.
func Matches(f ldapwire.Filter, attrs []ldapwire.Attribute) bool {
	switch f.Kind {
	case ldapwire.FilterAnd:
		for _, c := range f.Children {
			if !Matches(c, attrs) {
				return false
			}
		}
		return true
	case ldapwire.FilterOr:
		for _, c := range f.Children {
			if Matches(c, attrs) {
				return true
			}
		}
		return false
	case ldapwire.FilterNot:
		return !Matches(f.Children[0], attrs)
	case ldapwire.FilterPresent:
		return find(attrs, f.Attr) != nil
	}
	return anyValue(find(attrs, f.Attr), func(v string) bool { return compare(f, v) })
}

// compare applies an assertion filter to one value.
func compare(f ldapwire.Filter, v string) bool {
	switch f.Kind {
	case ldapwire.FilterEqual, ldapwire.FilterApprox:
		return strings.EqualFold(v, string(f.Value))
	case ldapwire.FilterGreater:
		return order(v, string(f.Value)) >= 0
	case ldapwire.FilterLess:
		return order(v, string(f.Value)) <= 0
	case ldapwire.FilterSubstring:
		return substrings(f, strings.ToLower(v))
	}
	return false
}

func find(attrs []ldapwire.Attribute, name []byte) *ldapwire.Attribute {
	for i := range attrs {
		if bytes.EqualFold([]byte(attrs[i].Type), name) {
			return &attrs[i]
		}
	}
	return nil
}

func anyValue(a *ldapwire.Attribute, fn func(string) bool) bool {
	if a == nil {
		return false
	}
	for _, v := range a.Values {
		if fn(v) {
			return true
		}
	}
	return false
}

// order compares numerically when both sides are numbers.
func order(a, b string) int {
	x, errA := strconv.ParseFloat(a, 64)
	y, errB := strconv.ParseFloat(b, 64)
	if errA == nil && errB == nil {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	return strings.Compare(strings.ToLower(a), strings.ToLower(b))
}

// substrings matches lower-cased v against initial, any and final parts.
func substrings(f ldapwire.Filter, v string) bool {
	ini := strings.ToLower(string(f.Initial))
	if !strings.HasPrefix(v, ini) {
		return false
	}
	v = v[len(ini):]
	for _, part := range f.Any {
		p := strings.ToLower(string(part))
		i := strings.Index(v, p)
		if i < 0 {
			return false
		}
		v = v[i+len(p):]
	}
	return strings.HasSuffix(v, strings.ToLower(string(f.Final)))
}
