package health

import (
	"fmt"
	"net"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// dialSecure connects to s with the same transport security as the
// forwarding connections (ldaps or StartTLS, same CAs and name checks).
func dialSecure(s *backend.Server, timeout time.Duration) (*ldap.Conn, error) {
	dialer := ldap.DialWithDialer(&net.Dialer{Timeout: timeout})
	t := s.TLS()
	if t == nil {
		conn, err := ldap.DialURL("ldap://"+s.Address, dialer)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		return conn, nil
	}
	if t.Mode == backend.TLSLDAPS {
		conn, err := ldap.DialURL("ldaps://"+s.Address, dialer, ldap.DialWithTLSConfig(t.Config.Clone()))
		if err != nil {
			return nil, fmt.Errorf("connect (ldaps): %w", err)
		}
		return conn, nil
	}
	conn, err := ldap.DialURL("ldap://"+s.Address, dialer)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	conn.SetTimeout(timeout)
	if err := conn.StartTLS(t.Config.Clone()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("StartTLS: %w", err)
	}
	return conn, nil
}
