package slapdrun

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// tlsConf is the TLS part of a replica's slapd.conf (Options.TLSCertFile
// and the fields after it).
type tlsConf struct {
	CertFile, KeyFile, CAFile, VerifyClient string
}

// tlsConf returns the TLS settings of the options, or nil without TLS.
func (o Options) tlsConf() (*tlsConf, error) {
	if o.TLSCertFile == "" && o.TLSKeyFile == "" {
		if o.LDAPS || o.TLSCAFile != "" || o.TLSVerifyClient != "" {
			return nil, fmt.Errorf("slapdrun: LDAPS and client verification need TLSCertFile and TLSKeyFile")
		}
		return nil, nil
	}
	if o.TLSCertFile == "" || o.TLSKeyFile == "" {
		return nil, fmt.Errorf("slapdrun: set both TLSCertFile and TLSKeyFile")
	}
	if o.TLSVerifyClient != "" && !slices.Contains([]string{"never", "allow", "try", "demand"}, o.TLSVerifyClient) {
		return nil, fmt.Errorf("slapdrun: TLSVerifyClient %q is not never, allow, try or demand", o.TLSVerifyClient)
	}
	t := &tlsConf{VerifyClient: o.TLSVerifyClient}
	for dst, src := range map[*string]string{&t.CertFile: o.TLSCertFile, &t.KeyFile: o.TLSKeyFile, &t.CAFile: o.TLSCAFile} {
		if src == "" {
			continue
		}
		abs, err := filepath.Abs(src)
		if err != nil || strings.ContainsAny(abs, "\"\\\n") {
			return nil, fmt.Errorf("slapdrun: unsupported TLS file name %q", src)
		}
		*dst = abs
	}
	return t, nil
}

// assignTLS gives every replica its TLS settings and, with Options.LDAPS, a
// second free port for ldaps://.
func (c *Cluster) assignTLS() error {
	t, err := c.opts.tlsConf()
	if err != nil {
		return err
	}
	for _, r := range c.Replicas {
		r.tls = t
	}
	if !c.opts.LDAPS {
		return nil
	}
	ports, err := pickPorts(2 * len(c.Replicas)) // distinct from the ldap ports in use
	if err != nil {
		return err
	}
	ports = slices.DeleteFunc(ports, func(p int) bool {
		return slices.ContainsFunc(c.Replicas, func(r *Replica) bool { return r.Port == p })
	})
	for i, r := range c.Replicas {
		r.setLDAPSPort(ports[i])
	}
	return nil
}

func (r *Replica) setLDAPSPort(port int) {
	r.LDAPSPort = port
	r.LDAPSAddr = "127.0.0.1:" + strconv.Itoa(port)
	r.LDAPSURL = "ldaps://" + r.LDAPSAddr
}

// listenURLs is slapd's -h argument.
func (r *Replica) listenURLs() string {
	if r.LDAPSURL == "" {
		return r.URL + "/"
	}
	return r.URL + "/ " + r.LDAPSURL + "/"
}
