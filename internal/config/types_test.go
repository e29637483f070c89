package config

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		yaml    string
		want    time.Duration
		wantErr string
	}{
		{"500ms", 500 * time.Millisecond, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"0", 0, ""},
		{"0s", 0, ""},
		{"300", 0, "invalid duration 300: missing unit (use e.g. 300s or 300ms)"},
		{`"300"`, 0, "invalid duration 300: missing unit (use e.g. 300s or 300ms)"},
		{"1.5", 0, "invalid duration 1.5: missing unit (use e.g. 1.5s or 1.5ms)"},
		{"5 minutes", 0, `invalid duration "5 minutes" (use e.g. 500ms, 30s, 5m)`},
		{`""`, 0, `invalid duration "" (use e.g. 500ms, 30s, 5m)`},
		{"-1s", 0, `invalid duration "-1s": must not be negative`},
		{"{a: 1}", 0, "expected a duration such as 30s, got a mapping"},
	}
	for _, tt := range tests {
		var d Duration
		err := yaml.Unmarshal([]byte(tt.yaml), &d)
		if got := errString(err); got != tt.wantErr || d.D() != tt.want {
			t.Errorf("%s: got %v, %q; want %v, %q", tt.yaml, d.D(), got, tt.want, tt.wantErr)
		}
	}
	if got := Duration(90 * time.Second).String(); got != "1m30s" {
		t.Errorf("String() = %q", got)
	}
	if out, _ := yaml.Marshal(Duration(5 * time.Minute)); string(out) != "5m0s\n" {
		t.Errorf("yaml.Marshal = %q", out)
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		yaml    string
		want    ByteSize
		wantErr string
	}{
		{"1024", 1024, ""},
		{"16MiB", 16 << 20, ""},
		{"512KiB", 512 << 10, ""},
		{"1GiB", 1 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{"16MB", 16e6, ""},
		{"3KB", 3000, ""},
		{"16 mib", 16 << 20, ""},
		{"7B", 7, ""},
		{"0", 0, ""},
		{"-1", 0, `invalid size "-1" (use e.g. 1024, 512KiB, 16MiB, 1GiB)`},
		{"1.5GiB", 0, `invalid size "1.5GiB" (use e.g. 1024, 512KiB, 16MiB, 1GiB)`},
		{"16 megs", 0, `invalid size "16 megs" (use e.g. 1024, 512KiB, 16MiB, 1GiB)`},
		{"MiB", 0, `invalid size "MiB" (use e.g. 1024, 512KiB, 16MiB, 1GiB)`},
		{"9000000TiB", 0, `invalid size "9000000TiB": too large`},
		{"[1]", 0, "expected a size such as 16MiB, got a list"},
	}
	for _, tt := range tests {
		var s ByteSize
		err := yaml.Unmarshal([]byte(tt.yaml), &s)
		if got := errString(err); got != tt.wantErr || s != tt.want {
			t.Errorf("%s: got %d, %q; want %d, %q", tt.yaml, s, got, tt.want, tt.wantErr)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		size ByteSize
		want string
	}{
		{16 * MiB, "16MiB"},
		{KiB, "1KiB"},
		{16e6, "16MB"},
		{1000, "1KB"},
		{1500, "1500B"},
		{0, "0B"},
		{3 * TiB, "3TiB"},
	}
	for _, tt := range tests {
		if got := tt.size.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.size), got, tt.want)
		}
		back, err := parseByteSize(tt.want)
		if err != nil || back != tt.size {
			t.Errorf("parseByteSize(%q) = %d, %v", tt.want, back, err)
		}
	}
}

func TestSecret(t *testing.T) {
	s := Secret("hunter2")
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%10s"} {
		if got := fmt.Sprintf(format, s); got != "REDACTED" {
			t.Errorf("Sprintf(%q) = %q", format, got)
		}
	}
	j, _ := json.Marshal(map[string]Secret{"pw": s})
	txt, _ := s.MarshalText()
	if string(j) != `{"pw":"REDACTED"}` || string(txt) != "REDACTED" || s.LogValue().String() != "REDACTED" {
		t.Errorf("json %s, text %s, log %s", j, txt, s.LogValue())
	}
	if s.Reveal() != "hunter2" {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
