package config

// Security holds client-side protections. Its keys sit at the top level of
// the file.
type Security struct{}

// ListenerSecurity holds a listener's TLS and PROXY protocol settings.
type ListenerSecurity struct{}

// ServerSecurity holds a backend server's TLS settings.
type ServerSecurity struct{}

func (c *Config) validateSecurity(v *validator) {}

func (c *Config) setSecurityDefaults() {}
