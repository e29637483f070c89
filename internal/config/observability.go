package config

// Observability holds the admin HTTP listener, cn=monitor access and logging
// extras. Its keys sit at the top level of the file.
type Observability struct{}

func (c *Config) validateObservability(v *validator) {}

func (c *Config) setObservabilityDefaults() {}
