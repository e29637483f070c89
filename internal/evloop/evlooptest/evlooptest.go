// Package evlooptest gives tests the event loops their connections wait
// in, and runs a package's tests again with the loops off, so that both
// ways of waiting for a socket are tested.
package evlooptest

import (
	"os"
	"os/exec"
	"testing"

	"github.com/ldapmux/ldapmux/internal/evloop"
)

// envOff, set to 1, turns the loops off for the tests of a process.
const envOff = "LDAPMUX_TEST_EVENT_LOOPS_OFF"

// Loops is the group tests use: two loops, or nil in the run RunWithout
// starts.
func Loops() *evloop.Group {
	if os.Getenv(envOff) == "1" {
		return nil
	}
	return evloop.Shared(2)
}

// Off reports whether this is the run without loops.
func Off() bool { return os.Getenv(envOff) == "1" }

// RunWithout runs every other test of the package again, in a new process
// with the loops off, and fails with its output when that run fails. The
// test calling it must be named in skip.
func RunWithout(t *testing.T, skip string) {
	if Off() {
		t.Skip("this is the run without event loops")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	cmd := exec.Command(os.Args[0], "-test.count=1", "-test.skip=^"+skip+"$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), envOff+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the tests without event loops failed: %v\n%s", err, out)
	}
}
