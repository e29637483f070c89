package config

import "time"

// Defaults and bounds of the client limits added for security.
const (
	defaultMaxOpsPerConnection = 256
	defaultMaxOpsPerServer     = 10000
	defaultMaxOpsPerServerConn = 500
	defaultMaxClientBuffer     = 32 * MiB
	minMaxClientBuffer         = 64 * KiB
	defaultRequestTimeout      = Duration(10 * time.Second)
	defaultWriteTimeout        = Duration(time.Minute)
	defaultBindTimeout         = Duration(5 * time.Second)
)

// validateMore checks the limits that have no check in validate.go.
func (l *Limits) validateMore(v *validator, path string) {
	for _, c := range []struct {
		key string
		n   int
	}{
		{"max-connections-per-client-ip", l.MaxConnectionsPerClientIP},
		{"max-operations-per-connection", l.MaxOperationsPerConnection},
		{"max-operations-per-server", l.MaxOperationsPerServer},
		{"max-operations-per-server-connection", l.MaxOperationsPerServerConnection},
	} {
		if c.n < 0 {
			v.add(path+"."+c.key, "must not be negative (got %d)", c.n)
		}
	}
	if l.MaxClientBuffer != 0 && l.MaxClientBuffer < minMaxClientBuffer {
		v.add(path+".max-client-buffer", "must be at least %s (got %s)", minMaxClientBuffer, l.MaxClientBuffer)
	}
}

// setMoreDefaults fills in the limits added for security; the bind timeout
// never exceeds the operation timeout.
func (l *Limits) setMoreDefaults(operationTimeout Duration) {
	setDefault(&l.MaxOperationsPerConnection, defaultMaxOpsPerConnection)
	setDefault(&l.MaxOperationsPerServer, defaultMaxOpsPerServer)
	setDefault(&l.MaxOperationsPerServerConnection, defaultMaxOpsPerServerConn)
	setDefault(&l.MaxClientBuffer, defaultMaxClientBuffer)
	setDefault(&l.RequestTimeout, defaultRequestTimeout)
	setDefault(&l.WriteTimeout, defaultWriteTimeout)
	setDefault(&l.BindTimeout, defaultBindTimeout)
	if operationTimeout > 0 && l.BindTimeout > operationTimeout {
		l.BindTimeout = operationTimeout
	}
}
