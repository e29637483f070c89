package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

func TestBenchHelpAndBadFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-h"}, 0, "-max-errors"},
		{[]string{"-help"}, 0, "-users"},
		{[]string{"-frobnicate"}, 2, "flag provided but not defined"},
		{[]string{"-users", "0"}, 2, "-users must be at least 1"},
		{[]string{"-max-errors", "101"}, 2, "-max-errors must be a percentage"},
		{[]string{"extra"}, 2, "unexpected argument"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"bench"}, tt.args...), &stdout, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("bench %q: exit %d, want %d; stderr lacks %q?\n%s", tt.args, code, tt.code, tt.want, stderr.String())
		}
	}
}

// TestBenchErrorsFailTheRun runs bench against a real slapd holding 5
// users: drawing from them it passes; drawing from more fails with exit
// status 1 and names the result code, unless -max-errors allows it.
func TestBenchErrorsFailTheRun(t *testing.T) {
	cluster := slapdtest.ForTest(t, slapdtest.Options{Replicas: 1, Users: 5})
	url := "ldap://" + cluster.Replicas[0].Addr
	bench := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		base := []string{"bench", "-H", url, "-c", "2", "-d", "300ms", "-warmup", "0s", "-q"}
		code := run(append(base, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	if code, out, errOut := bench("-users", "5"); code != 0 || !strings.Contains(out, " 0 errors") {
		t.Errorf("5 users of 5: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := bench("-users", "5", "-mode", "bind"); code != 0 || !strings.Contains(out, " 0 errors") {
		t.Errorf("binds as 5 users of 5: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := bench() // the default: the demo's 100 users
	if code != 1 || !strings.Contains(out, "search: noSuchObject (32)") || !strings.Contains(errOut, "exceed -max-errors 1%") {
		t.Errorf("100 users of 5: exit %d, want 1 and errors by name\n%s%s", code, out, errOut)
	}
	if code, out, errOut := bench("-max-errors", "100"); code != 0 {
		t.Errorf("-max-errors 100: exit %d\n%s%s", code, out, errOut)
	}
}
