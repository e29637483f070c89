package config

// Routing holds locations, named algorithms, criteria-based routes and
// server affinity. Its keys sit at the top level of the file.
type Routing struct{}

func (c *Config) validateRouting(v *validator) {}

func (c *Config) setRoutingDefaults() {}
