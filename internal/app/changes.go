package app

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/ldapmux/ldapmux/internal/config"
)

// maxChanges bounds the changes a reload's log line lists.
const maxChanges = 20

// configChanges lists what differs between two configurations, for the
// reload's log line: each changed setting by its key path, with the old
// and new values of plain settings ("load-balancing.algorithm: failover ->
// round-robin"), named entries (servers, algorithms, health checks,
// locations) added, removed or changed by name. Secrets are named, never
// shown.
func configChanges(old, new *config.Config) []string {
	var out []string
	diffValue(&out, "", reflect.ValueOf(*old), reflect.ValueOf(*new))
	if len(out) > maxChanges {
		out = append(out[:maxChanges], fmt.Sprintf("and %d more", len(out)-maxChanges))
	}
	return out
}

var secretType = reflect.TypeFor[config.Secret]()

func diffValue(out *[]string, path string, a, b reflect.Value) {
	if reflect.DeepEqual(a.Interface(), b.Interface()) {
		return
	}
	switch {
	case a.Type() == secretType:
		*out = append(*out, path+" changed")
	case a.Kind() == reflect.Struct:
		diffStruct(out, path, a, b)
	case a.Kind() == reflect.Map && a.Type().Key().Kind() == reflect.String:
		diffMap(out, path, a, b)
	case a.Kind() == reflect.Slice && nameField(a.Type().Elem()) >= 0:
		diffNamed(out, path, a, b)
	case a.Kind() == reflect.Slice && a.Len() == b.Len() && a.Type().Elem().Kind() == reflect.Struct:
		for i := range a.Len() {
			diffValue(out, fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))
		}
	case (a.Kind() == reflect.Pointer || a.Kind() == reflect.Interface) && !a.IsNil() && !b.IsNil() && a.Elem().Type() == b.Elem().Type():
		diffValue(out, path, a.Elem(), b.Elem())
	default:
		*out = append(*out, fmt.Sprintf("%s: %s -> %s", path, show(a), show(b)))
	}
}

func diffStruct(out *[]string, path string, a, b reflect.Value) {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		sub := path
		if name != "" {
			sub = join(path, name)
		}
		diffValue(out, sub, a.Field(i), b.Field(i))
	}
}

func diffMap(out *[]string, path string, a, b reflect.Value) {
	keys := func(m reflect.Value) []string {
		var ks []string
		for _, k := range m.MapKeys() {
			ks = append(ks, k.String())
		}
		slices.Sort(ks)
		return ks
	}
	for _, k := range keys(a) {
		kv := reflect.ValueOf(k).Convert(a.Type().Key())
		if nb := b.MapIndex(kv); nb.IsValid() {
			diffValue(out, join(path, k), a.MapIndex(kv), nb)
		} else {
			*out = append(*out, join(path, k)+" removed")
		}
	}
	for _, k := range keys(b) {
		if !a.MapIndex(reflect.ValueOf(k).Convert(a.Type().Key())).IsValid() {
			*out = append(*out, join(path, k)+" added")
		}
	}
}

// diffNamed compares lists of named entries (servers) by name.
func diffNamed(out *[]string, path string, a, b reflect.Value) {
	field := nameField(a.Type().Elem())
	byName := func(v reflect.Value) map[string]reflect.Value {
		m := map[string]reflect.Value{}
		for i := range v.Len() {
			m[v.Index(i).Field(field).String()] = v.Index(i)
		}
		return m
	}
	am, bm := byName(a), byName(b)
	for i := range a.Len() {
		name := a.Index(i).Field(field).String()
		if nb, ok := bm[name]; ok {
			diffValue(out, join(path, name), am[name], nb)
		} else {
			*out = append(*out, join(path, name)+" removed")
		}
	}
	for i := range b.Len() {
		if name := b.Index(i).Field(field).String(); am[name] == (reflect.Value{}) {
			*out = append(*out, join(path, name)+" added")
		}
	}
}

// nameField is the index of the string field Name of a struct type, or -1.
func nameField(t reflect.Type) int {
	if t.Kind() != reflect.Struct {
		return -1
	}
	f, ok := t.FieldByName("Name")
	if !ok || len(f.Index) != 1 || f.Type.Kind() != reflect.String {
		return -1
	}
	return f.Index[0]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// show renders a plain setting's value for the log.
func show(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case config.Duration:
		return x.D().String()
	case fmt.Stringer:
		return x.String()
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "unset"
		}
		return show(v.Elem())
	}
	if v.Kind() == reflect.String && v.Len() == 0 {
		return `""`
	}
	return fmt.Sprint(v.Interface())
}
