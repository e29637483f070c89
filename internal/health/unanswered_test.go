package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// TestUnansweredTellsSilenceFromAnswers: only a check that ran out of time
// or could not reach the server at all counts as the server not answering
// (which takes the operations in flight off it); a result, even a refused
// bind, and a connection the server closed do not.
func TestUnansweredTellsSilenceFromAnswers(t *testing.T) {
	live := context.Background()
	expired, cancel := context.WithCancel(live)
	cancel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"go-ldap request timeout", live, ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection timed out")), true},
		{"dial refused", live, connectError{fmt.Errorf("connect: %w", ldap.NewError(ldap.ErrorNetwork, refused))}, true},
		{"dial timeout", live, connectError{&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}}, true},
		{"the check's time ran out", expired, ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection closed")), true},
		{"connection closed", live, ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection closed")), false},
		{"service bind refused", live, connectError{fmt.Errorf("service bind: %w", ldap.NewError(ldap.LDAPResultInvalidCredentials, errors.New("invalid credentials")))}, false},
		{"a result", live, ldap.NewError(ldap.LDAPResultBusy, errors.New("busy")), false},
		{"no error", expired, nil, false},
	}
	for _, c := range cases {
		if got := unanswered(c.ctx, c.err); got != c.want {
			t.Errorf("%s: unanswered = %v, want %v", c.name, got, c.want)
		}
	}
}
