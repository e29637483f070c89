package config

import (
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The walker knows nothing about Config: these types exercise each kind
// of type it supports.
type walkLeaf struct {
	N int      `yaml:"n"`
	D Duration `yaml:"d"`
}

type walkBase struct {
	Base string `yaml:"base"`
}

type walkRoot struct {
	walkBase `yaml:",inline"`
	Leaf     walkLeaf            `yaml:"leaf"`
	Ptr      *walkLeaf           `yaml:"ptr"`
	Map      map[string]walkLeaf `yaml:"map"`
	Nested   [][]walkLeaf        `yaml:"nested"`
	Pair     [2]int              `yaml:"pair"`
	Any      any                 `yaml:"any"`
	Untagged uint
	Skipped  string `yaml:"-"`
}

func TestWalkerIsGeneric(t *testing.T) {
	src := `base: x
leaf: {n: 1, d: 1s, x: 0}
ptr:
  n: one
map:
  "a.b": {d: soon}
  c: {nn: 2}
nested:
  - - {n: 1}
    - {d: 1}
pair: [1, 2, 3]
any: {whatever: [1]}
untagged: -1
skipped: y
`
	want := []Problem{
		{"leaf.x", 2, "unknown key (valid keys: n, d)"},
		{"ptr.n", 4, `expected an integer, got "one"`},
		{`map["a.b"].d`, 6, `invalid duration "soon" (use e.g. 500ms, 30s, 5m)`},
		{"map.c.nn", 7, "unknown key (valid keys: n, d)"},
		{"nested[0][1].d", 10, "invalid duration 1: missing unit (use e.g. 1s or 1ms)"},
		{"pair", 11, "at most 2 items allowed, got 3"},
		{"untagged", 13, `expected a non-negative integer, got "-1"`},
		{"skipped", 14, "unknown key (valid keys: base, leaf, ptr, map, nested, pair, any, untagged)"},
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	w := newWalker()
	w.value(&doc, reflect.TypeFor[walkRoot](), "")
	if !reflect.DeepEqual([]Problem(w.probs), want) {
		t.Errorf("problems:\n%v\nwant:\n%v", w.probs, Problems(want))
	}
	// The pruned tree decodes cleanly, keeping the good values.
	var got walkRoot
	if err := doc.Decode(&got); err != nil {
		t.Fatalf("decoding the checked tree: %v", err)
	}
	if got.Base != "x" || got.Leaf.N != 1 || got.Ptr == nil || got.Ptr.N != 0 || got.Nested[0][0].N != 1 {
		t.Errorf("decoded %+v", got)
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"connect-timeout", "operation-timeout", "name", "address", "weight"}
	tests := map[string]string{
		"conect-timeout":   "connect-timeout",
		"connectTimeout":   "connect-timeout",
		"CONNECT_TIMEOUT":  "connect-timeout",
		"operation-timout": "operation-timeout",
		"adress":           "address",
		"wieght":           "weight",
		"nmae":             "name",
		"timeout":          "",
		"x":                "",
	}
	for word, want := range tests {
		if got := suggest(word, names); got != want {
			t.Errorf("suggest(%q) = %q, want %q", word, got, want)
		}
	}
}
