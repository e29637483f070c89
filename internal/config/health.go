package config

// Health holds the health checks and their schedule. Its keys sit at the top
// level of the file.
type Health struct{}

// ServerHealth holds a server's own health-check settings.
type ServerHealth struct{}

func (c *Config) validateHealth(v *validator) {}

func (c *Config) setHealthDefaults() {}
