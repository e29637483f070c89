// Package replpos holds replication positions: change sequence numbers
// (CSNs) of OpenLDAP and 389 Directory Server, the newest of each serverID
// (replica ID) a server has applied (OpenLDAP's contextCSN, 389's replica
// update vector), and what the proxy currently knows of every server's.
package replpos

import (
	"errors"
	"time"
)

// CSN is an OpenLDAP change sequence number,
// YYYYmmddHHMMSS.uuuuuuZ#count#sid#mod: the time of a change, a counter
// of changes within that time, the serverID that made it, and a counter
// of modifications within the change. A server's contextCSN holds the
// newest CSN it has of each serverID.
//
// A 389 Directory Server CSN (Parse389CSN) fills the same fields: seconds
// (Time), sequence number (Count), replica ID (SID) and sub-sequence
// number (Mod). 389 orders CSNs by time, sequence, replica ID and
// sub-sequence; of one replica ID that is the order After uses.
type CSN struct {
	Time       time.Time
	Count, Mod int
	SID        int
}

// After reports whether c is a later change than o of the same serverID.
func (c CSN) After(o CSN) bool {
	if !c.Time.Equal(o.Time) {
		return c.Time.After(o.Time)
	}
	if c.Count != o.Count {
		return c.Count > o.Count
	}
	return c.Mod > o.Mod
}

var errCSN = errors.New("invalid CSN: want YYYYmmddHHMMSS[.fraction]Z#count#sid#mod")

// ParseCSN parses a CSN, OpenLDAP's (the fraction of seconds may be
// missing: older servers) or 389's (20 hex digits). It does not allocate:
// it runs on every write answered when read-your-writes is on.
func ParseCSN(b []byte) (CSN, error) {
	if len(b) == len389CSN && !hasHash(b) { // OpenLDAP's always has #
		return Parse389CSN(b)
	}
	p := csnParser{b: b}
	var d [6]int
	for i, width := range [6]int{4, 2, 2, 2, 2, 2} {
		d[i] = p.decimal(width)
	}
	nanos := p.fraction()
	p.expect('Z')
	var n [3]int
	for i := range n {
		p.expect('#')
		n[i] = p.hex()
	}
	if p.bad || p.i != len(b) {
		return CSN{}, errCSN
	}
	t := time.Date(d[0], time.Month(d[1]), d[2], d[3], d[4], d[5], nanos, time.UTC)
	return CSN{Time: t, Count: n[0], SID: n[1], Mod: n[2]}, nil
}

func hasHash(b []byte) bool {
	for _, c := range b {
		if c == '#' {
			return true
		}
	}
	return false
}

// len389CSN is the length of a 389 Directory Server CSN.
const len389CSN = 20

var err389CSN = errors.New("invalid 389 CSN: want 20 hex digits (time, sequence, replica ID, sub-sequence)")

// Parse389CSN parses a 389 Directory Server CSN: 20 hex digits, seconds
// since 1970 (8), a sequence number within the second (4), the replica ID
// (4) and a sub-sequence number (4). It does not allocate.
func Parse389CSN(b []byte) (CSN, error) {
	if len(b) != len389CSN {
		return CSN{}, err389CSN
	}
	p := csnParser{b: b}
	secs := p.fixedHex(8)
	seq, rid, sub := p.fixedHex(4), p.fixedHex(4), p.fixedHex(4)
	if p.bad {
		return CSN{}, err389CSN
	}
	return CSN{Time: time.Unix(int64(secs), 0).UTC(), Count: seq, SID: rid, Mod: sub}, nil
}

// csnParser reads a CSN left to right; bad records any error.
type csnParser struct {
	b   []byte
	i   int
	bad bool
}

func (p *csnParser) decimal(width int) int {
	v := 0
	for range width {
		if p.i >= len(p.b) || p.b[p.i] < '0' || p.b[p.i] > '9' {
			p.bad = true
			return 0
		}
		v = v*10 + int(p.b[p.i]-'0')
		p.i++
	}
	return v
}

// fraction reads an optional .ddd part as nanoseconds.
func (p *csnParser) fraction() int {
	if p.i >= len(p.b) || p.b[p.i] != '.' {
		return 0
	}
	p.i++
	v, digits := 0, 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		if digits < 9 {
			v = v*10 + int(p.b[p.i]-'0')
			digits++
		}
		p.i++
	}
	if digits == 0 {
		p.bad = true
	}
	for ; digits < 9; digits++ {
		v *= 10
	}
	return v
}

func (p *csnParser) expect(c byte) {
	if p.i >= len(p.b) || p.b[p.i] != c {
		p.bad = true
		return
	}
	p.i++
}

func (p *csnParser) hex() int { return p.hexDigits(15) }

// hexDigits reads at most limit hex digits, at least one.
func (p *csnParser) hexDigits(limit int) int {
	v, digits := 0, 0
	for ; p.i < len(p.b) && digits < limit; p.i++ {
		c := p.b[p.i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | int(c-'A'+10)
		default:
			p.bad = p.bad || digits == 0
			return v
		}
		digits++
	}
	p.bad = p.bad || digits == 0
	return v
}

// fixedHex reads exactly width hex digits.
func (p *csnParser) fixedHex(width int) int {
	if p.i+width > len(p.b) {
		p.bad = true
		return 0
	}
	start := p.i
	v := p.hexDigits(width)
	p.bad = p.bad || p.i-start != width
	return v
}

// Vector is a replication position: the newest CSN of each serverID, at
// most one per serverID.
type Vector []CSN

// Has reports whether the position includes change c: it holds a CSN of
// c's serverID at or past c.
func (v Vector) Has(c CSN) bool {
	for _, own := range v {
		if own.SID == c.SID {
			return !c.After(own)
		}
	}
	return false
}

// Covers reports whether v includes every change of need.
func (v Vector) Covers(need Vector) bool {
	for _, c := range need {
		if !v.Has(c) {
			return false
		}
	}
	return true
}

// Merge returns v raised to include c: c replaces an older CSN of its
// serverID or is appended. It reuses v's array.
func (v Vector) Merge(c CSN) Vector {
	for i, own := range v {
		if own.SID == c.SID {
			if c.After(own) {
				v[i] = c
			}
			return v
		}
	}
	return append(v, c)
}
