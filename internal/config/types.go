package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a length of time, written in YAML as a Go duration string
// such as 500ms, 30s, 5m or 1h30m. A bare number other than 0 is rejected
// because its unit would be a guess. Negative durations are rejected.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does, e.g. "5m0s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText formats d like String, so that JSON and YAML output is
// readable and parses back.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalYAML parses a duration string such as 30s.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("expected a duration such as 30s, got " + describe(n))
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func parseDuration(s string) (Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if s != "" && strings.Trim(s, "0123456789.") == "" {
		return 0, fmt.Errorf("invalid duration %s: missing unit (use e.g. %[1]ss or %[1]sms)", s)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 500ms, 30s, 5m)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return Duration(v), nil
}

// ByteSize is a number of bytes, written in YAML as a plain number of bytes
// (1024) or with a unit: KiB, MiB, GiB, TiB (powers of 1024) or
// KB, MB, GB, TB (powers of 1000); B is also accepted. Units are not case
// sensitive and may be separated from the number by a space.
type ByteSize int64

// Byte size units.
const (
	KiB ByteSize = 1 << (10 * (iota + 1)) // 1024 bytes
	MiB                                   // 1024 KiB
	GiB                                   // 1024 MiB
	TiB                                   // 1024 GiB
)

// byteUnits lists the units ByteSize understands, largest first, binary
// before decimal.
var byteUnits = []struct {
	name string
	size ByteSize
}{
	{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	{"B", 1},
}

// String formats s with the unit that divides it exactly into the smallest
// number, preferring binary units, e.g. "16MiB", "16MB" or "1500B".
func (s ByteSize) String() string {
	best := byteUnits[len(byteUnits)-1]
	for _, u := range byteUnits {
		if s%u.size == 0 && s/u.size < s/best.size {
			best = u
		}
	}
	return strconv.FormatInt(int64(s/best.size), 10) + best.name
}

// MarshalText formats s like String.
func (s ByteSize) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalYAML parses a size such as 16MiB.
func (s *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("expected a size such as 16MiB, got " + describe(n))
	}
	v, err := parseByteSize(n.Value)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

func parseByteSize(text string) (ByteSize, error) {
	bad := fmt.Errorf("invalid size %q (use e.g. 1024, 512KiB, 16MiB, 1GiB)", text)
	digits := strings.TrimLeft(text, "0123456789")
	num, unit := text[:len(text)-len(digits)], strings.TrimSpace(digits)
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, bad
	}
	size := ByteSize(1)
	if unit != "" {
		if size = unitSize(unit); size == 0 {
			return 0, bad
		}
	}
	if n > math.MaxInt64/int64(size) {
		return 0, fmt.Errorf("invalid size %q: too large", text)
	}
	return ByteSize(n) * size, nil
}

func unitSize(unit string) ByteSize {
	for _, u := range byteUnits {
		if strings.EqualFold(unit, u.name) {
			return u.size
		}
	}
	return 0
}

// Secret is a string that must not leak: printing, formatting, logging and
// marshaling it all give "REDACTED". Use Reveal to get the value.
type Secret string

const redacted = "REDACTED"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String returns "REDACTED".
func (Secret) String() string { return redacted }

// GoString returns "REDACTED".
func (Secret) GoString() string { return redacted }

// Format writes "REDACTED" whatever the verb and flags.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON returns the JSON string "REDACTED".
func (Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalText returns "REDACTED" (also used by YAML encoding).
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue makes slog print "REDACTED".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }
