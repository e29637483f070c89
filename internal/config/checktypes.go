package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checkTypes are the health check types, in the order messages list them.
// A type is its own file (its settings, their validation and defaults) and
// one entry here.
var checkTypes = []checkType{
	newCheckType(CheckSearch, func() CheckSettings { return &SearchCheck{} }),
	newCheckType(CheckReplicationBacklog, func() CheckSettings { return &BacklogCheck{} }),
	newCheckType(CheckAdminAlert, func() CheckSettings { return &AlertCheck{} }),
	newCheckType(CheckBusyness, func() CheckSettings { return &BusynessCheck{} }),
}

// CheckSettings are the keys of a health check of one type: a pointer to a
// struct whose yaml tags name them.
type CheckSettings interface {
	// Validate reports the problems of the settings, as decoded.
	Validate(v CheckValidator)
	// SetDefaults fills in the keys left out of a valid check.
	SetDefaults()
}

// CheckValidator reports the problems of one health check.
type CheckValidator struct {
	v    *validator
	path string // of the check
}

// Problem reports a problem with key, or with the whole check if key is "".
func (c CheckValidator) Problem(key, format string, args ...any) {
	c.v.add(c.key(key), format, args...)
}

// Given reports whether the file sets key.
func (c CheckValidator) Given(key string) bool {
	_, ok := c.v.lines[c.key(key)]
	return ok
}

func (c CheckValidator) key(key string) string {
	if key == "" {
		return c.path
	}
	return joinPath(c.path, key)
}

// checkType is a registered health check type.
type checkType struct {
	name string
	new  func() CheckSettings
	keys keySet // of its settings
}

func newCheckType(name string, settings func() CheckSettings) checkType {
	t := reflect.TypeOf(settings())
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("config: settings of health check type %q are %s, not a pointer to a struct", name, t))
	}
	return checkType{name: name, new: settings, keys: structKeys(t.Elem())}
}

// RegisterCheckType adds a health check type whose keys are those of the
// struct that settings points to. Call it from an init function: parsing
// reads the types without a lock. It panics if the name is taken, or if a
// key is a common one or another type's key of another Go type.
func RegisterCheckType(name string, settings func() CheckSettings) {
	t := newCheckType(name, settings)
	if _, taken := lookupCheckType(name); taken || name == "" {
		panic(fmt.Sprintf("config: health check type %q registered twice or unnamed", name))
	}
	all := healthCheckKeys()
	for key, kt := range t.keys.fields {
		if other, ok := all.fields[key]; ok && (other != kt || commonCheckKeys.fields[key] != nil) {
			panic(fmt.Sprintf("config: key %q of health check type %q clashes with another key", key, name))
		}
	}
	checkTypes = append(checkTypes, t)
}

// CheckTypeNames returns the names of the health check types.
func CheckTypeNames() []string {
	names := make([]string, len(checkTypes))
	for i, t := range checkTypes {
		names[i] = t.name
	}
	return names
}

func lookupCheckType(name string) (checkType, bool) {
	i := slices.IndexFunc(checkTypes, func(t checkType) bool { return t.name == name })
	if i < 0 {
		return checkType{}, false
	}
	return checkTypes[i], true
}

// commonCheckKeys are the keys of every health check.
var commonCheckKeys = structKeys(reflect.TypeFor[HealthCheck]())

// healthCheckKeys are the keys a health check may have: the common ones,
// then those of each type.
func healthCheckKeys() keySet {
	ks := keySet{fields: map[string]reflect.Type{}}
	for _, set := range append([]keySet{commonCheckKeys}, typeKeySets()...) {
		for _, name := range set.names {
			if _, dup := ks.fields[name]; !dup {
				ks.fields[name] = set.fields[name]
				ks.names = append(ks.names, name)
			}
		}
	}
	return ks
}

func typeKeySets() []keySet {
	sets := make([]keySet, len(checkTypes))
	for i, t := range checkTypes {
		sets[i] = t.keys
	}
	return sets
}

// yamlKeys lets the walker check a health check against the keys of every
// type; validation then reports those of another type (foreignKeys).
func (*HealthCheck) yamlKeys() keySet { return healthCheckKeys() }

// UnmarshalYAML decodes the common keys, then those of the check's type into
// Settings (left nil for an unknown type).
func (hc *HealthCheck) UnmarshalYAML(n *yaml.Node) error {
	type plain HealthCheck
	if err := n.Decode((*plain)(hc)); err != nil {
		return err
	}
	t, ok := lookupCheckType(hc.Type)
	if !ok {
		return nil
	}
	hc.Settings = t.new()
	return n.Decode(hc.Settings)
}

// foreignKeys reports keys given for a check that belong to other types.
func (v *validator) foreignKeys(path, typ string) {
	own, _ := lookupCheckType(typ)
	owners := map[string][]string{}
	var keys []string
	for _, other := range checkTypes {
		for _, key := range other.keys.names {
			if _, given := v.lines[joinPath(path, key)]; !given || own.keys.fields[key] != nil {
				continue
			}
			if owners[key] == nil {
				keys = append(keys, key)
			}
			owners[key] = append(owners[key], other.name)
		}
	}
	for _, key := range keys {
		v.add(joinPath(path, key), "does not apply to %s checks (it is a key of %s checks)", typ, strings.Join(owners[key], " and "))
	}
}
