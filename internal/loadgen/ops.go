package loadgen

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is a type of operation the generator sends.
type Kind int

// Operation kinds.
const (
	Search Kind = iota
	Modify
	Bind
	nKinds
)

var kindNames = [nKinds]string{"search", "modify", "bind"}

func (k Kind) String() string { return kindNames[k] }

// Mix is the share of each kind of operation, e.g. {80, 10, 10}.
type Mix [nKinds]int

// ParseMix reads "search=80,modify=10,bind=10"; a bare kind means 1.
func ParseMix(s string) (Mix, error) {
	var m Mix
	for _, item := range strings.Split(s, ",") {
		name, weight, hasWeight := strings.Cut(strings.TrimSpace(item), "=")
		k := kindByName(name)
		if k < 0 {
			return m, fmt.Errorf("loadgen: mix %q: unknown operation %q (use search, modify or bind)", s, name)
		}
		w := 1
		if hasWeight {
			var err error
			if w, err = strconv.Atoi(weight); err != nil || w < 0 {
				return m, fmt.Errorf("loadgen: mix %q: bad weight %q", s, weight)
			}
		}
		m[k] += w
	}
	if m.total() == 0 {
		return m, fmt.Errorf("loadgen: mix %q has no operations", s)
	}
	return m, nil
}

func kindByName(name string) Kind {
	for k, n := range kindNames {
		if n == name {
			return Kind(k)
		}
	}
	return -1
}

func (m Mix) total() int { return m[Search] + m[Modify] + m[Bind] }

// only reports whether k is the only kind in the mix.
func (m Mix) only(k Kind) bool { return m[k] > 0 && m[k] == m.total() }

// String formats m like ParseMix reads it.
func (m Mix) String() string {
	var parts []string
	for k, w := range m {
		if w > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", Kind(k), w))
		}
	}
	return strings.Join(parts, ",")
}

// plan is the parsed, validated form of a Config's operation settings,
// shared read-only by the workers.
type plan struct {
	base, filter, value, bindDN, bindPW Template
	filterEnc, attrsEnc                 []byte // pre-encoded when constant
	attr                                []byte
}

func newPlan(cfg *Config) (*plan, error) {
	p := &plan{attr: []byte(cfg.ModifyAttr), attrsEnc: appendAttrList(nil, cfg.Attrs)}
	for _, t := range []struct {
		dst *Template
		src string
	}{{&p.base, cfg.Base}, {&p.filter, cfg.Filter}, {&p.value, cfg.ModifyValue}, {&p.bindDN, cfg.BindDNs}, {&p.bindPW, cfg.BindPasswords}} {
		var err error
		if *t.dst, err = ParseTemplate(t.src); err != nil {
			return nil, err
		}
	}
	if !p.filter.HasRanges() {
		enc, err := appendFilter(nil, []byte(cfg.Filter))
		if err != nil {
			return nil, err
		}
		p.filterEnc = enc
	} else if _, err := appendFilter(nil, p.filter.Append(nil, NewDraw(1))); err != nil {
		return nil, err
	}
	return p, nil
}

// generator encodes the requests of one worker.
type generator struct {
	p         *plan
	mix       Mix
	scope     int
	sizeLimit int
	draw      *Draw
	s         scratch
	dn, val   []byte
	body      []byte
}

// pick draws the kind of the next operation and resets the numbers.
func (g *generator) pick() Kind {
	g.draw.Reset()
	x := g.draw.Intn(g.mix.total())
	for k, w := range g.mix {
		if x < w {
			return Kind(k)
		}
		x -= w
	}
	return Search
}

// encoder returns the function that encodes an operation of kind k.
func (g *generator) encoder(k Kind) func(dst []byte, id int32) []byte {
	switch k {
	case Modify:
		return g.modify
	case Bind:
		return g.bind
	}
	return g.search
}

func (g *generator) search(dst []byte, id int32) []byte {
	g.dn = g.p.base.Append(g.dn[:0], g.draw)
	filter := g.p.filterEnc
	if filter == nil {
		g.val = g.p.filter.Append(g.val[:0], g.draw)
		g.s.a, _ = appendFilter(g.s.a[:0], g.val) // validated by newPlan
		filter = g.s.a
	}
	g.body = appendSearchBody(g.body[:0], g.dn, g.scope, g.sizeLimit, filter, g.p.attrsEnc)
	return appendMessage(dst, id, tagSearchReq, g.body)
}

func (g *generator) modify(dst []byte, id int32) []byte {
	g.dn = g.p.base.Append(g.dn[:0], g.draw)
	g.val = g.p.value.Append(g.val[:0], g.draw)
	g.body = appendModifyBody(g.body[:0], &g.s, g.dn, g.p.attr, g.val)
	return appendMessage(dst, id, tagModifyReq, g.body)
}

func (g *generator) bind(dst []byte, id int32) []byte {
	g.dn = g.p.bindDN.Append(g.dn[:0], g.draw)
	g.val = g.p.bindPW.Append(g.val[:0], g.draw)
	g.body = appendBindBody(g.body[:0], g.dn, g.val)
	return appendMessage(dst, id, tagBindReq, g.body)
}
