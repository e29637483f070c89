package app

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/config"
	"github.com/ldapmux/ldapmux/internal/frontend"
)

// tlsSet is every TLS configuration built from one config: one per listener
// (nil without a certificate) and one per server (nil for plain LDAP).
type tlsSet struct {
	listeners []*tls.Config
	servers   []*backend.TLS
	admin     *tls.Config // nil without admin.tls
}

// loadTLS reads every certificate, key and CA file of cfg. Errors name the
// key path and the file, never file contents. A reload calls it with the
// new configuration and, when it succeeds, hands the results to
// frontend.TLSSource.Set (listeners) and backend.Server.SetTLS (servers):
// new handshakes and new server connections use the new files.
func loadTLS(cfg *config.Config) (*tlsSet, error) {
	set := &tlsSet{}
	for i, l := range cfg.Listen {
		tc, err := listenerTLS(l.TLS)
		if err != nil {
			return nil, fmt.Errorf("listen[%d].tls: %w", i, err)
		}
		set.listeners = append(set.listeners, tc)
	}
	for i, s := range cfg.Servers {
		bt, err := serverTLS(s)
		if err != nil {
			return nil, fmt.Errorf("servers[%d].tls: %w", i, err)
		}
		set.servers = append(set.servers, bt)
	}
	var err error
	if set.admin, err = listenerTLS(cfg.Admin.TLS); err != nil {
		return nil, fmt.Errorf("admin.tls: %w", err)
	}
	return set, nil
}

// listenerTLS builds a listener's server-side configuration.
func listenerTLS(t config.ListenerTLS) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := config.LoadKeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: config.TLSVersion(t.MinVersion),
		ClientAuth: t.ClientAuthType()}
	if t.ClientCAFile != "" {
		if tc.ClientCAs, err = config.LoadCAFile(t.ClientCAFile); err != nil {
			return nil, err
		}
	}
	return tc, nil
}

// serverTLS builds the client-side configuration towards one server;
// host names are always verified unless insecure-skip-verify is set.
func serverTLS(s config.Server) (*backend.TLS, error) {
	t := s.TLS
	if !t.Enabled() {
		return nil, nil
	}
	name := t.ServerName
	if name == "" {
		name, _, _ = net.SplitHostPort(s.Address)
	}
	tc := &tls.Config{ServerName: name, MinVersion: config.TLSVersion(t.MinVersion), InsecureSkipVerify: t.InsecureSkipVerify}
	var err error
	if t.CAFile != "" {
		if tc.RootCAs, err = config.LoadCAFile(t.CAFile); err != nil {
			return nil, err
		}
	}
	if t.CertFile != "" {
		cert, err := config.LoadKeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	mode := backend.TLSLDAPS
	if t.Mode == config.BackendTLSStartTLS {
		mode = backend.TLSStartTLS
	}
	return &backend.TLS{Mode: mode, Config: tc}, nil
}

// setupSecurity loads the TLS files and prepares the listeners.
func (a *App) setupSecurity() error {
	set, err := loadTLS(a.cfg)
	if err != nil {
		return err
	}
	for i, s := range a.servers {
		s.SetTLS(set.servers[i])
	}
	for i, l := range a.cfg.Listen {
		a.listenerConfs = append(a.listenerConfs, listenerConf(l, set.listeners[i]))
	}
	if set.admin != nil {
		a.obs.adminTLS = frontend.NewTLSSource(set.admin)
	}
	return nil
}

func listenerConf(l config.Listener, tc *tls.Config) *frontend.Listener {
	lc := &frontend.Listener{LDAPS: l.IsLDAPS(), StartTLS: l.StartTLSEnabled()}
	if tc != nil {
		lc.TLS = frontend.NewTLSSource(tc)
	}
	if l.ProxyProtocol {
		for _, s := range l.TrustedProxies {
			if p, err := config.ParseNetwork(s); err == nil {
				lc.TrustedProxies = append(lc.TrustedProxies, p.Masked())
			}
		}
	}
	return lc
}

// frontendLimits maps the limits and bind policy onto the frontend.
func frontendLimits(cfg *config.Config) frontend.Limits {
	l := cfg.Limits
	return frontend.Limits{
		MaxPerIP: l.MaxConnectionsPerClientIP, MaxOpsPerConn: l.MaxOperationsPerConnection,
		IdleTimeout: l.IdleTimeout.D(), RequestTimeout: l.RequestTimeout.D(),
		RequireSecureBind: cfg.RequireSecureBind, AllowUnauthenticatedBinds: cfg.AllowUnauthenticatedBinds,
		BindWait: bindWait(cfg),
	}
}

// bindWait is longer than any bind can take: every server tried, each with
// a connect and a bind timeout.
func bindWait(cfg *config.Config) time.Duration {
	per := cfg.Pool.ConnectTimeout.D() + cfg.Limits.BindTimeout.D()
	return time.Duration(len(cfg.Servers)+1)*per + 5*time.Second
}

// FrontendServer is the client side: connection counts for status pages
// and tests.
func (a *App) FrontendServer() *frontend.Server { return a.frontend }
