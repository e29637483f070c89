// Package config loads and validates the ldapmux configuration file.
//
// The file is YAML with kebab-case keys. Every problem in it is reported at
// once, each with its key path and line, e.g.
//
//	servers[1].address (line 7): missing port
//
// In the types below, a zero value means "use the default"; Load and Parse
// fill in defaults after validating what the file gives. Example holds a
// complete, commented configuration.
package config

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
)

// Example is a complete, commented example configuration using every key.
//
//go:embed example.yaml
var Example []byte

// Config is the whole ldapmux configuration.
type Config struct {
	// Listen lists the addresses ldapmux accepts LDAP clients on; at least
	// one is required.
	Listen []Listener `yaml:"listen"`
	// Servers lists the upstream directory servers, in preference order; at
	// least one is required.
	Servers []Server `yaml:"servers"`
	// ServiceAccount is the identity of the pooled upstream connections.
	ServiceAccount ServiceAccount `yaml:"service-account"`
	// Pool sizes and maintains the upstream connection pools.
	Pool Pool `yaml:"pool"`
	// LoadBalancing chooses the server for each operation.
	LoadBalancing LoadBalancing `yaml:"load-balancing"`
	// Limits protects ldapmux from oversized or excessive clients.
	Limits Limits `yaml:"limits"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// ShutdownGracePeriod is how long in-flight operations get to finish
	// after SIGTERM. Default 10s.
	ShutdownGracePeriod Duration `yaml:"shutdown-grace-period"`
	// EventLoops is how many event loops serve plain connections: auto
	// (one per two GOMAXPROCS, the default), off, or a number. Restart only.
	EventLoops string `yaml:"event-loops"`

	// Routing: locations, named algorithms, criteria routes and affinity
	// (see routing.go).
	Routing `yaml:",inline"`
	// Health: checks and their schedule (see health.go).
	Health `yaml:",inline"`
	// Observability: admin HTTP listener, cn=monitor access, access log
	// (see observability.go).
	Observability `yaml:",inline"`
	// Security: TLS to backends' defaults and client-side protections
	// (see security.go).
	Security `yaml:",inline"`
	// ServerIdentity: the default identity mode and server type of every
	// server (see identity.go).
	ServerIdentity `yaml:",inline"`

	// Dir is the absolute directory of the configuration file, set by Load
	// (empty after Parse). It is not read from the file.
	Dir string `yaml:"-"`
}

// Listener is an address ldapmux accepts LDAP clients on.
type Listener struct {
	// Address is host:port, required. The host may be empty to listen on
	// all interfaces; port 0 picks a free port.
	Address string `yaml:"address"`
	// ListenerSecurity holds the listener's TLS and PROXY protocol settings
	// (see security.go).
	ListenerSecurity `yaml:",inline"`
}

// Server is an upstream directory server.
type Server struct {
	// Name identifies the server in logs and metrics; required, unique,
	// made of letters, digits, '.', '_' and '-'.
	Name string `yaml:"name"`
	// Address is host:port, required; the port must be 1-65535.
	Address string `yaml:"address"`
	// Location is an optional free-form place, such as a site or zone.
	Location string `yaml:"location"`
	// Weight is the server's share of operations under the weighted
	// algorithms. Default 1; at least 1.
	Weight int `yaml:"weight"`
	// ServerHealth holds per-server health-check settings (see health.go).
	ServerHealth `yaml:",inline"`
	// ServerSecurity holds the server's TLS settings (see security.go).
	ServerSecurity `yaml:",inline"`
	// ServerIdentity holds the server's identity mode and type (see
	// identity.go); the top-level keys give the default.
	ServerIdentity `yaml:",inline"`
}

// ServiceAccount is the simple-bind identity of the pooled connections.
// Exactly one of Password, PasswordFile and PasswordEnv must be set; after
// Load or Parse, Password holds the resolved secret.
type ServiceAccount struct {
	// BindDN is the DN to bind as; required.
	BindDN string `yaml:"bind-dn"`
	// Password is the password itself.
	Password Secret `yaml:"password"`
	// PasswordFile is a file holding the password, read at load time with
	// trailing newlines trimmed. A relative path is relative to the
	// configuration file's directory (to the working directory after Parse).
	PasswordFile string `yaml:"password-file"`
	// PasswordEnv is the name of an environment variable holding the
	// password, read at load time.
	PasswordEnv string `yaml:"password-env"`
	// ProxyCheckDN, when set, is an identity the service account must be
	// able to proxy as (proxied-authorization mode): ldapmux proves it on
	// every server at connect, before the server is used, so that a
	// service account without proxy rights makes the server unusable with
	// a clear reason instead of failing every bound client. Any user the
	// clients bind as will do. Anonymous proxying is always checked.
	ProxyCheckDN string `yaml:"proxy-check-dn"`
}

// Pool sizes and maintains the connection pools kept to each server.
type Pool struct {
	// ConnectionsPerServer is the minimum of multiplexed connections for
	// operations other than client binds: opened as soon as operations
	// overlap, and what the pool shrinks back to. Default 4; 1-1024.
	ConnectionsPerServer int `yaml:"connections-per-server"`
	// MaxConnectionsPerServer is how far the operation connections grow
	// under load. Default 64, or connections-per-server when that is
	// larger; at least connections-per-server, at most 1024.
	MaxConnectionsPerServer int `yaml:"max-connections-per-server"`
	// GrowAtOperationsPerConnection is the number of operations in flight
	// that every operation connection must carry before the pool opens
	// another. Default 4; 1-100000.
	GrowAtOperationsPerConnection int `yaml:"grow-at-operations-per-connection"`
	// BindConnectionsPerServer is the minimum of connections used to check
	// client binds. Default 2; 1-1024.
	BindConnectionsPerServer int `yaml:"bind-connections-per-server"`
	// MaxBindConnectionsPerServer is how far the bind connections grow
	// while binds wait for one. Default 64, or bind-connections-per-server
	// when that is larger; at least bind-connections-per-server, at most
	// 1024.
	MaxBindConnectionsPerServer int `yaml:"max-bind-connections-per-server"`
	// BoundConnectionsPerServer caps the connections that clients' simple
	// binds left bound as them, kept to carry, without a Proxied
	// Authorization control, the operations of clients bound as the same
	// DN (proxied-authorization mode). Default 16; 0 keeps none; at most
	// 1024.
	BoundConnectionsPerServer *int `yaml:"bound-connections-per-server"`
	// MaxConnectionAge is how long a connection lives before it is recycled
	// (reopened in server preference order). Default 5m; at least 1s.
	MaxConnectionAge Duration `yaml:"max-connection-age"`
	// IdleCheckInterval is how often idle connections are probed with a
	// light read of the root DSE; connections above the minimum that were
	// idle this long are closed instead. Default 10s.
	IdleCheckInterval Duration `yaml:"idle-check-interval"`
	// ConnectTimeout bounds opening and binding a connection. Default 2s.
	ConnectTimeout Duration `yaml:"connect-timeout"`
	// OperationTimeout is how long a server may stay silent — before its
	// first response, and between the entries of a search — before the
	// operation is abandoned upstream and the client answered: a search
	// still receiving entries is not a hung server. Long-lived searches
	// (sync refreshAndPersist, persistent search) have no timeout.
	// Default 30s.
	OperationTimeout Duration `yaml:"operation-timeout"`
	// SearchTimeLimit, when set, caps a whole search however steadily its
	// entries arrive (timeLimitExceeded, not held against the server).
	// Long-lived searches are exempt. Default 0: no cap.
	SearchTimeLimit Duration `yaml:"search-time-limit"`
	// LeasedConnectionsPerServer caps the connections leased to clients at
	// once on one server: a client's paged or VLV search, or long-lived
	// search, runs on a connection of its own, because the server keeps
	// its state (cookie, context, identity) per connection. Past the cap,
	// such searches are answered busy (51). Default 64; 1-100000.
	LeasedConnectionsPerServer int `yaml:"leased-connections-per-server"`
	// LeaseIdleTimeout ends a lease whose paged or VLV cursors were not
	// used for this long (the client's next page then gets
	// unwillingToPerform, as from a server that forgot it). Default 5m.
	LeaseIdleTimeout Duration `yaml:"lease-idle-timeout"`
}

// KnownAlgorithms lists the load-balancing algorithms, the default first.
var KnownAlgorithms = []string{"failover", "fewest-operations", "round-robin", "weighted", "health-weighted"}

// LoadBalancing chooses the server for each operation.
type LoadBalancing struct {
	// Algorithm is one of KnownAlgorithms. Default "failover": the first
	// healthy server in preference order.
	Algorithm string `yaml:"algorithm"`
}

// Limits protects ldapmux from oversized or excessive clients.
type Limits struct {
	// MaxPDUSize is the largest LDAP message accepted from a client or
	// server. Default 16MiB; at least 1KiB.
	MaxPDUSize ByteSize `yaml:"max-pdu-size"`
	// MaxClientConnections caps concurrent client connections.
	// Default 10000.
	MaxClientConnections int `yaml:"max-client-connections"`
	// MaxConnectionsPerClientIP caps concurrent connections from one client
	// address (the real one behind a PROXY protocol load balancer).
	// Default 0: no limit besides MaxClientConnections.
	MaxConnectionsPerClientIP int `yaml:"max-connections-per-client-ip"`
	// MaxOperationsPerConnection caps the outstanding operations of one
	// client connection; more are answered busy (51). Default 256.
	MaxOperationsPerConnection int `yaml:"max-operations-per-connection"`
	// MaxOperationsPerServer caps the operations in flight to one server;
	// an operation that finds every candidate at its cap is answered busy
	// (51). Default 10000.
	MaxOperationsPerServer int `yaml:"max-operations-per-server"`
	// MaxOperationsPerServerConnection caps the operations in flight on one
	// pooled server connection, abandoned ones counting until the server
	// has surely read the abandon; past it, busy (51). Keep it under the
	// server's own per-connection queue limit (OpenLDAP closes a connection
	// past conn_max_pending_auth, 1000 by default). Default 500.
	MaxOperationsPerServerConnection int `yaml:"max-operations-per-server-connection"`
	// MaxClientBuffer bounds the response bytes queued for a client that
	// does not read them; past it the client is dropped and its operations
	// abandoned upstream. Default 32MiB; at least 64KiB.
	MaxClientBuffer ByteSize `yaml:"max-client-buffer"`
	// IdleTimeout closes client connections that have no operation in
	// progress and sent nothing for this long. Default 0: never.
	IdleTimeout Duration `yaml:"idle-timeout"`
	// RequestTimeout is how long a client may take to send the rest of a
	// request once its first byte arrived; it also bounds the TLS handshake
	// and the PROXY protocol header (slowloris). Default 10s.
	RequestTimeout Duration `yaml:"request-timeout"`
	// WriteTimeout drops a client that accepts no response bytes for this
	// long. Default 1m.
	WriteTimeout Duration `yaml:"write-timeout"`
	// BindTimeout bounds the wait for a server's answer to a bind, after
	// which the bind is tried on the next server. Default 5s (at most
	// pool.operation-timeout).
	BindTimeout Duration `yaml:"bind-timeout"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
	// AccessLog logs one line per operation. Default false.
	AccessLog bool `yaml:"access-log"`
	// AccessLogFile is where access lines go, in the log format; relative
	// to the configuration file's directory. Default: with the other logs.
	// It is reopened on reload (for log rotation).
	AccessLogFile string `yaml:"access-log-file"`
}

// Load reads, validates and completes the configuration file at path.
// Problems with the configuration are returned as Problems; I/O errors are
// wrapped with the prefix "config: ".
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return parse(data, dir)
}

// Parse validates and completes a configuration given as YAML. It behaves
// like Load, with relative paths in the configuration taken relative to the
// working directory. Problems with the configuration are returned as
// Problems.
func Parse(data []byte) (*Config, error) {
	return parse(data, "")
}

// ServerByName returns the index in Servers of the server with the given
// name, and whether there is one.
func (c *Config) ServerByName(name string) (int, bool) {
	for i, s := range c.Servers {
		if s.Name == name {
			return i, true
		}
	}
	return -1, false
}
