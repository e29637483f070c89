package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// walker checks a YAML node tree against a Go type before it is decoded,
// collecting every problem instead of stopping at the first. It follows the
// yaml tags of struct fields, so new config fields need no walker changes.
//
// Values that cannot be decoded are replaced by null in the tree, so that
// decoding the checked tree always succeeds and later validation still sees
// everything else.
type walker struct {
	probs Problems
	lines map[string]int // line of every path present in the file
}

func newWalker() *walker { return &walker{lines: map[string]int{}} }

var (
	yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	keyListerType   = reflect.TypeFor[keyLister]()
)

// keyLister is a mapping that decodes itself and lists the keys it may have.
type keyLister interface{ yamlKeys() keySet }

func (w *walker) problem(path string, line int, format string, args ...any) {
	w.probs = append(w.probs, Problem{Path: path, Line: line, Message: fmt.Sprintf(format, args...)})
}

// value checks n against t and prunes n if it cannot be decoded.
func (w *walker) value(n *yaml.Node, t reflect.Type, path string) {
	if !w.check(resolve(n), t, path) {
		prune(n)
	}
}

// check reports whether n can be decoded into a value of type t, recording
// problems found in n and below.
func (w *walker) check(n *yaml.Node, t reflect.Type, path string) bool {
	switch {
	case isNull(n):
		return true
	case reflect.PointerTo(t).Implements(keyListerType):
		return w.mapping(n, reflect.New(t).Interface().(keyLister).yamlKeys(), path)
	case reflect.PointerTo(t).Implements(yamlUnmarshaler):
		return w.custom(n, t, path)
	case reflect.PointerTo(t).Implements(textUnmarshaler):
		return w.text(n, t, path)
	}
	switch t.Kind() {
	case reflect.Pointer:
		return w.check(n, t.Elem(), path)
	case reflect.Interface:
		return true
	case reflect.Struct:
		return w.mapping(n, structKeys(t), path)
	case reflect.Map:
		return w.mapping(n, mapKeys(t), path)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return w.scalar(n, t, path)
		}
		return w.sequence(n, t, path)
	default:
		return w.scalar(n, t, path)
	}
}

// custom runs a type's own UnmarshalYAML on n.
func (w *walker) custom(n *yaml.Node, t reflect.Type, path string) bool {
	u := reflect.New(t).Interface().(yaml.Unmarshaler)
	if err := u.UnmarshalYAML(n); err != nil {
		w.problem(path, n.Line, "%s", errorText(err))
		return false
	}
	return true
}

// text runs a type's own UnmarshalText on the scalar n.
func (w *walker) text(n *yaml.Node, t reflect.Type, path string) bool {
	if n.Kind != yaml.ScalarNode {
		w.problem(path, n.Line, "expected a string, got %s", describe(n))
		return false
	}
	u := reflect.New(t).Interface().(encoding.TextUnmarshaler)
	if err := u.UnmarshalText([]byte(n.Value)); err != nil {
		w.problem(path, n.Line, "%s", err)
		return false
	}
	return true
}

// scalar checks a string, number or boolean by decoding it.
func (w *walker) scalar(n *yaml.Node, t reflect.Type, path string) bool {
	if n.Kind != yaml.ScalarNode {
		w.problem(path, n.Line, "expected %s, got %s", typeName(t), describe(n))
		return false
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		w.problem(path, n.Line, "%s", scalarError(n, t, err))
		return false
	}
	return true
}

// sequence checks a list and each of its items.
func (w *walker) sequence(n *yaml.Node, t reflect.Type, path string) bool {
	if n.Kind != yaml.SequenceNode {
		w.problem(path, n.Line, "expected a list, got %s", describe(n))
		return false
	}
	if t.Kind() == reflect.Array && len(n.Content) > t.Len() {
		w.problem(path, n.Line, "at most %d items allowed, got %d", t.Len(), len(n.Content))
		return false
	}
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		w.lines[p] = item.Line
		w.value(item, t.Elem(), p)
	}
	return true
}

// keySet describes the keys a mapping may have.
type keySet struct {
	fields map[string]reflect.Type // named keys (struct fields)
	names  []string                // named keys in declaration order
	key    reflect.Type            // type of other keys, nil if none allowed
	elem   reflect.Type            // type of the values of other keys
}

func (ks keySet) lookup(key string) (reflect.Type, bool) {
	if t, ok := ks.fields[key]; ok {
		return t, true
	}
	return ks.elem, ks.key != nil
}

// structKeys lists the keys of struct type t the way yaml.v3 names them.
func structKeys(t reflect.Type) keySet {
	ks := keySet{fields: map[string]reflect.Type{}}
	addFields(&ks, t)
	return ks
}

func addFields(ks *keySet, t reflect.Type) {
	for f := range t.Fields() {
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if hasOption(opts, "inline") && addInline(ks, f.Type) {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		ks.fields[name] = f.Type
		ks.names = append(ks.names, name)
	}
}

// addInline adds the keys of an inlined struct or map field.
func addInline(ks *keySet, t reflect.Type) bool {
	switch {
	case t.Kind() == reflect.Struct:
		addFields(ks, t)
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		addFields(ks, t.Elem())
	case t.Kind() == reflect.Map:
		ks.key, ks.elem = t.Key(), t.Elem()
	default:
		return false
	}
	return true
}

func hasOption(opts, opt string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// mapKeys describes the keys of map type t.
func mapKeys(t reflect.Type) keySet {
	return keySet{key: t.Key(), elem: t.Elem()}
}

// mapping checks a mapping against the keys it may have.
func (w *walker) mapping(n *yaml.Node, ks keySet, path string) bool {
	if n.Kind != yaml.MappingNode {
		w.problem(path, n.Line, "expected a mapping, got %s", describe(n))
		return false
	}
	w.entries(n, ks, path)
	return true
}

// entries checks each key and value of mapping n, dropping entries that
// must not reach the decoder (duplicate and non-string keys).
func (w *walker) entries(n *yaml.Node, ks keySet, path string) {
	seen := map[string]int{}
	kept := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if w.entry(k, v, ks, path, seen) {
			kept = append(kept, k, v)
		}
	}
	n.Content = kept
}

// entry checks one key and its value, reporting whether to keep them.
func (w *walker) entry(k, v *yaml.Node, ks keySet, path string, seen map[string]int) bool {
	if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
		w.merge(v, ks, path)
		return true
	}
	if k = resolve(k); k.Kind != yaml.ScalarNode {
		w.problem(path, k.Line, "keys must be strings, got %s", describe(k))
		return false
	}
	p := joinPath(path, k.Value)
	if first, dup := seen[k.Value]; dup {
		w.problem(p, k.Line, "duplicate key (first at line %d)", first)
		return false
	}
	seen[k.Value] = k.Line
	t, ok := ks.lookup(k.Value)
	if !ok {
		w.problem(p, k.Line, "unknown key (%s)", hint(k.Value, ks.names))
		return true // the decoder ignores unknown struct keys
	}
	if ks.key != nil && ks.fields[k.Value] == nil && !w.check(k, ks.key, p) {
		return false
	}
	w.lines[p] = k.Line
	w.value(v, t, p)
	return true
}

// merge checks the mappings merged in by a "<<" key.
func (w *walker) merge(v *yaml.Node, ks keySet, path string) {
	v = resolve(v)
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		items = v.Content
	}
	for _, m := range items {
		if m = resolve(m); m.Kind != yaml.MappingNode {
			w.problem(path, m.Line, "<< must merge mappings, got %s", describe(m))
			continue
		}
		w.entries(m, ks, path)
	}
}

// hint suggests the key that was probably meant, or lists the valid ones.
func hint(key string, names []string) string {
	if s := suggest(key, names); s != "" {
		return "did you mean " + s + "?"
	}
	return "valid keys: " + strings.Join(names, ", ")
}

// joinPath appends a key to a path: a.b, or a["odd key"].
func joinPath(path, key string) string {
	if !plainKey(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func plainKey(key string) bool {
	if key == "" {
		return false
	}
	for _, r := range key {
		if !isNameRune(r) {
			return false
		}
	}
	return true
}

func isNameRune(r rune) bool {
	return r == '-' || r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

// resolve follows aliases and enters documents.
func resolve(n *yaml.Node) *yaml.Node {
	for {
		switch {
		case n.Kind == yaml.AliasNode && n.Alias != nil:
			n = n.Alias
		case n.Kind == yaml.DocumentNode && len(n.Content) == 1:
			n = n.Content[0]
		default:
			return n
		}
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// prune replaces n by null, so the decoder leaves the zero value.
func prune(n *yaml.Node) {
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
}

// describe names what a node holds, without quoting it: the value could be
// a misplaced secret.
func describe(n *yaml.Node) string {
	switch resolve(n).Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch resolve(n).ShortTag() {
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "nothing"
	}
	return "a string"
}

// typeName names what a scalar Go type expects.
func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a string"
}

// scalarError explains why scalar n does not decode into type t.
func scalarError(n *yaml.Node, t reflect.Type, err error) string {
	want := typeName(t)
	switch {
	case want == "a string":
		return errorText(err)
	case n.ShortTag() == "!!int" && strings.HasSuffix(want, "integer") &&
		!(want == "a non-negative integer" && strings.HasPrefix(n.Value, "-")):
		return n.Value + " is out of range"
	}
	return fmt.Sprintf("expected %s, got %q", want, n.Value)
}

// errorText gives an error's message without yaml.v3's line prefixes.
func errorText(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = stripLine(m)
	}
	return strings.Join(msgs, "; ")
}

// stripLine removes a leading "line N: " from a yaml.v3 message.
func stripLine(msg string) string {
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			return after
		}
	}
	return msg
}
