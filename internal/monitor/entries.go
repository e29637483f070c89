package monitor

import (
	"strconv"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/status"
)

// Entry is one monitor entry.
type Entry struct {
	DN     string
	Attrs  []ldapwire.Attribute
	parsed *ldap.DN
}

// Entries renders a status report as the monitor subtree: cn=monitor, then
// one entry per server and per algorithm.
func Entries(st *status.Status) []Entry {
	out := []Entry{entry(BaseDN, rootAttrs(st))}
	for _, s := range st.Servers {
		out = append(out, entry("cn="+ldap.EscapeDN("LDAP External Server "+s.Name)+","+BaseDN, serverAttrs(s)))
	}
	for _, a := range st.Algorithms {
		out = append(out, entry("cn="+ldap.EscapeDN("Load-Balancing Algorithm "+a.Name)+","+BaseDN, algorithmAttrs(a)))
	}
	return out
}

func entry(dn string, attrs []ldapwire.Attribute) Entry {
	parsed, _ := ldap.ParseDN(dn)
	return Entry{DN: dn, Attrs: attrs, parsed: parsed}
}

// attrs builds attributes from name, value pairs; empty values are left out.
func attrs(kv ...string) []ldapwire.Attribute {
	var out []ldapwire.Attribute
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			out = append(out, ldapwire.Attribute{Type: kv[i], Values: []string{kv[i+1]}})
		}
	}
	return out
}

func objectClass(oc string) ldapwire.Attribute {
	return ldapwire.Attribute{Type: "objectClass", Values: []string{"top", "extensibleObject", oc}}
}

func rootAttrs(st *status.Status) []ldapwire.Attribute {
	c := st.Clients
	out := []ldapwire.Attribute{objectClass("ldapmux-monitor-entry")}
	return append(out, attrs(
		"cn", "monitor", "product-name", "ldapmux",
		"version", st.Build.Version, "build-revision", st.Build.Revision, "go-version", st.Build.GoVersion,
		"start-time", genTime(st.Started), "current-time", genTime(st.Time),
		"up-time-seconds", num(int64(st.Time.Sub(st.Started).Seconds())),
		"ready", boolean(st.Ready), "location", st.Location,
		"current-connections", num(c.Current), "total-connections", num(c.Accepted),
		"rejected-connections", num(c.Rejected), "operations-in-progress", num(c.Inflight),
		"bytes-received", num(c.Received), "bytes-sent", num(c.Sent),
		"last-reload-time", genTime(st.Reload.Time), "last-reload-error", st.Reload.Error,
	)...)
}

func serverAttrs(s status.Server) []ldapwire.Attribute {
	out := []ldapwire.Attribute{objectClass("ldapmux-server-monitor-entry")}
	return append(out, attrs(
		"cn", "LDAP External Server "+s.Name, "server-name", s.Name,
		"server-address", s.Address, "location", s.Location,
		"health-check-state", s.State, "health-check-score", num(int64(s.Score)),
		"server-type", s.ServerType, "identity-mode", s.IdentityMode, "vendor", s.Vendor,
		"health-check-name", s.Check, "health-check-message", s.Reason, "health-check-since", genTime(s.Since),
		"outstanding-operations", num(s.Outstanding),
		"operations-forwarded", num(s.Forwarded), "operations-completed", num(s.Completed), "operations-failed", num(s.Failed),
		"operations-per-second", decimal(s.OpsPerSec), "average-response-time-millis", decimal(s.LatencyMs),
		"pool-open-operation-connections", num(int64(s.Pool.OpenOps)),
		"pool-open-anonymous-connections", num(int64(s.Pool.OpenAnon)),
		"pool-open-bound-connections", num(int64(s.Pool.OpenBound)),
		"pool-open-bind-connections", num(int64(s.Pool.OpenBinds)), "pool-idle-bind-connections", num(int64(s.Pool.IdleBinds)),
		"pool-leased-connections", num(int64(s.Pool.Leased)), "pool-leases-refused", num(s.Pool.LeasesRefused),
		"pool-connections-opened", num(s.Pool.Opened), "pool-connections-recycled", num(s.Pool.Recycled),
		"pool-connections-failed", num(s.Pool.Failed),
		"pool-max-operation-connections", num(int64(s.Pool.MaxOps)), "pool-max-bind-connections", num(int64(s.Pool.MaxBinds)),
		"pool-connections-grown", num(s.Pool.Grown), "pool-connections-shrunk", num(s.Pool.Shrunk),
	)...)
}

func algorithmAttrs(a status.Algorithm) []ldapwire.Attribute {
	out := []ldapwire.Attribute{objectClass("ldapmux-algorithm-monitor-entry"), {Type: "server-name", Values: a.Servers}}
	return append(out, attrs(
		"cn", "Load-Balancing Algorithm "+a.Name, "algorithm-name", a.Name, "algorithm-type", a.Type,
		"usable-servers", num(int64(a.Usable)),
		"selections", num(a.Selections), "failovers", num(a.Failovers), "affinity-selections", num(a.Affinity),
	)...)
}

func num(n int64) string { return strconv.FormatInt(n, 10) }

func decimal(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func boolean(b bool) string {
	if b {
		return "TRUE"
	}
	return "FALSE"
}

// genTime formats t as a GeneralizedTime, "" for the zero time.
func genTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("20060102150405Z")
}
