package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ldapmux/ldapmux/internal/config"
)

// adminFlags say how to reach a running proxy's admin listener.
type adminFlags struct {
	addr      string
	tokenFile string
	caFile    string
	certFile  string
	keyFile   string
}

func (f *adminFlags) register(fs *flag.FlagSet, defaultAddr string) {
	fs.StringVar(&f.addr, "admin", defaultAddr, "admin listener of the running proxy: host:port, or https://host:port with admin.tls")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the admin token (admin.token-file)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM CA certificates the admin listener's certificate is verified against (default: the system's)")
	fs.StringVar(&f.certFile, "cert-file", "", "client certificate for an admin listener that asks for one (with -key-file)")
	fs.StringVar(&f.keyFile, "key-file", "", "private key of -cert-file")
}

// fromConfig fills what the flags left empty from a configuration file's
// admin section: its address (https with admin.tls, trusting the
// certificate the listener serves) and its token file.
func (f *adminFlags) fromConfig(cfg *config.Config) {
	a := cfg.Admin
	if f.addr == "" {
		f.addr = a.Address
		if a.TLS.Enabled() {
			f.addr = "https://" + a.Address
			if f.caFile == "" {
				f.caFile = a.TLS.CertFile
			}
		}
	}
	if f.tokenFile == "" {
		f.tokenFile = a.TokenFile
	}
}

// adminClient sends requests to the admin listener with the token, if any.
type adminClient struct {
	http  *http.Client
	base  string
	token string
}

func (f *adminFlags) client(timeout time.Duration) (*adminClient, error) {
	c := &adminClient{base: strings.TrimSuffix(f.addr, "/"), http: &http.Client{Timeout: timeout}}
	if !strings.HasPrefix(c.base, "http://") && !strings.HasPrefix(c.base, "https://") {
		c.base = "http://" + c.base
	}
	if f.tokenFile != "" {
		data, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
		c.token = strings.TrimSpace(string(data))
	}
	tc, err := f.tlsConfig()
	if err != nil {
		return nil, err
	}
	c.http.Transport = &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}
	return c, nil
}

func (f *adminFlags) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.caFile != "" {
		roots, err := config.LoadCAFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("-ca-file: %w", err)
		}
		tc.RootCAs = roots
	}
	if (f.certFile == "") != (f.keyFile == "") {
		return nil, errors.New("-cert-file and -key-file go together")
	}
	if f.certFile != "" {
		cert, err := config.LoadKeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("-cert-file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// errAdminAuth is a refusal for want of the right token.
var errAdminAuth = errors.New("admin listener")

// adminError explains err, with where the listener was expected unless it
// answered.
func adminError(err error, addr string) string {
	if errors.Is(err, errAdminAuth) {
		return err.Error()
	}
	return fmt.Sprintf("%v (is the admin listener at %s? see admin.address)", err, addr)
}

// do sends one request; a refusal for want of credentials says what to give.
func (c *adminClient) do(method, path string) (*http.Response, error) {
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		resp.Body.Close()
		if c.token == "" {
			return nil, fmt.Errorf("%w: it asks for a token; give -token-file", errAdminAuth)
		}
		return nil, fmt.Errorf("%w: it refused the token", errAdminAuth)
	}
	return resp, nil
}
