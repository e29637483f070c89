// Package status is what ldapmux reports about itself: the model behind
// /api/status, the status page, `ldapmux status` and cn=monitor, and the
// recent history (state transitions, throughput and latency samples) that
// the process keeps for them.
package status

import "time"

// Status is a point-in-time report of a running proxy.
type Status struct {
	Time        time.Time    `json:"time"`
	Build       Build        `json:"build"`
	Started     time.Time    `json:"started"`
	Ready       bool         `json:"ready"`
	NotReady    []string     `json:"notReady,omitempty"` // why not, when not ready
	Draining    bool         `json:"draining"`
	Location    string       `json:"location,omitempty"`
	Listeners   []string     `json:"listeners"`
	Clients     Clients      `json:"clients"`
	Servers     []Server     `json:"servers"` // configured order
	Algorithms  []Algorithm  `json:"algorithms"`
	Transitions []Transition `json:"transitions"` // newest first
	History     []Sample     `json:"history"`     // oldest first
	Reload      Reload       `json:"reload"`
}

// Build says which ldapmux is running.
type Build struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	GoVersion string `json:"goVersion"`
}

// Clients counts client connections and traffic.
type Clients struct {
	Current  int64 `json:"current"`
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`
	Inflight int64 `json:"inflight"`
	Received int64 `json:"receivedBytes"`
	Sent     int64 `json:"sentBytes"`
}

// Server is one configured backend server.
type Server struct {
	Name        string    `json:"name"`
	Address     string    `json:"address"`
	Location    string    `json:"location"`
	State       string    `json:"state"` // available, degraded, unavailable
	Score       int       `json:"score"`
	Reason      string    `json:"reason"`
	Check       string    `json:"check"` // the check that decided the state
	Since       time.Time `json:"since"`
	Outstanding int64     `json:"outstanding"`
	Forwarded   int64     `json:"forwarded"` // attempts sent
	Completed   int64     `json:"completed"` // answered by the server
	Failed      int64     `json:"failed"`    // attempts that failed
	OpsPerSec   float64   `json:"opsPerSec"` // over the last sample
	LatencyMs   float64   `json:"latencyMs"` // mean, over the last sample
	Pool        Pool      `json:"pool"`
	// ServerType, IdentityMode and Vendor are what the server's root DSE
	// said at the last connect ("" before the first).
	ServerType   string `json:"serverType"`
	IdentityMode string `json:"identityMode"`
	Vendor       string `json:"vendor"`
	// PasswordPolicy: the root DSE lists the password policy control, so
	// ldapmux asks the binds it checks whether the server restricts the
	// session they open.
	PasswordPolicy bool `json:"passwordPolicy"`
}

// Pool is a server's connection pool.
type Pool struct {
	OpenOps int `json:"openOperation"`
	// OpenAnon is the unbound operation connections that carry anonymous
	// clients' operations.
	OpenAnon int `json:"openAnonymous"`
	// OpenBound is the connections that clients' binds left bound as
	// them, carrying the operations of clients bound as the same DN.
	OpenBound int `json:"openBound"`
	OpenBinds int `json:"openBind"`
	IdleBinds int `json:"idleBind"`
	// Leased is the connections leased to clients for paging, VLV and
	// long-lived searches; LeasesRefused the searches answered busy
	// because none was left.
	Leased        int   `json:"leased"`
	LeasesRefused int64 `json:"leasesRefused"`
	Opened        int64 `json:"opened"`
	Recycled      int64 `json:"recycled"`
	Failed        int64 `json:"failed"`
	// MaxOps and MaxBinds are how far the pool grows under load; Grown
	// counts connections opened under load above the minimum, Shrunk those
	// closed for idleness above it.
	MaxOps   int   `json:"maxOperation"`
	MaxBinds int   `json:"maxBind"`
	Grown    int64 `json:"grown"`
	Shrunk   int64 `json:"shrunk"`
}

// Algorithm is a load-balancing algorithm in use (named after its route).
type Algorithm struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	Servers    []string `json:"servers"`
	Usable     int      `json:"usable"` // servers not unavailable
	Selections int64    `json:"selections"`
	Failovers  int64    `json:"failovers"`
	Affinity   int64    `json:"affinity"`
}

// Transition is a change of a server's state.
type Transition struct {
	Time   time.Time `json:"time"`
	Server string    `json:"server"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Score  int       `json:"score"`
	Check  string    `json:"check"`
	Reason string    `json:"reason"`
}

// Sample is the throughput and mean latency of each server over one
// sampling interval.
type Sample struct {
	Time    time.Time             `json:"time"`
	Servers map[string]ServerRate `json:"servers"`
}

// ServerRate is one server's share of a sample.
type ServerRate struct {
	OpsPerSec float64 `json:"ops"`
	LatencyMs float64 `json:"latencyMs"`
}

// Reload is the outcome of the last configuration reload.
type Reload struct {
	Time   time.Time `json:"time,omitzero"`
	OK     bool      `json:"ok"`
	Error  string    `json:"error,omitempty"`
	Count  int64     `json:"count"`
	Failed int64     `json:"failed"`
}
