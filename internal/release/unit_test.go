package release

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/config"
)

// unitSettings reads the [Service] settings of the systemd unit; repeated
// keys keep every value, in order.
func unitSettings(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "deploy/systemd/ldapmux.service"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			settings[k] = append(settings[k], v)
		}
	}
	return settings
}

// defaults returns a configuration with every default applied.
func defaults(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`
listen: [{address: "127.0.0.1:0"}]
servers: [{name: a, address: "127.0.0.1:1"}]
service-account: {bind-dn: "cn=x", password: x}
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestUnitRunsUnprivilegedAndSandboxed(t *testing.T) {
	s := unitSettings(t)
	want := map[string]string{
		"User":                    "ldapmux",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"MemoryDenyWriteExecute":  "yes",
		"LockPersonality":         "yes",
		"RestrictNamespaces":      "yes",
		"KillSignal":              "SIGTERM",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
	}
	for k, v := range want {
		if got := s[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s=%v, want %s", k, got, v)
		}
	}
	if got := s["SystemCallFilter"]; len(got) == 0 || got[0] != "@system-service" {
		t.Errorf("SystemCallFilter=%v, want @system-service first", got)
	}
	if got := s["ExecStart"]; len(got) != 1 || !strings.HasPrefix(got[0], "/usr/bin/ldapmux serve -config /etc/ldapmux/ldapmux.yaml") {
		t.Errorf("ExecStart=%v", got)
	}
}

// TestUnitLimitsFitTheConfigDefaults ties the unit's stop timeout and file
// descriptor limit to ldapmux's defaults and to the packaged configuration.
func TestUnitLimitsFitTheConfigDefaults(t *testing.T) {
	s := unitSettings(t)
	cfg := defaults(t)

	stop, err := time.ParseDuration(strings.Join(s["TimeoutStopSec"], ""))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	packaged := packagedConfig(t)
	for name, grace := range map[string]time.Duration{
		"default":  time.Duration(cfg.ShutdownGracePeriod),
		"packaged": time.Duration(packaged.ShutdownGracePeriod),
	} {
		// The drain, then the Notices of Disconnection and the closes.
		if stop < grace+10*time.Second {
			t.Errorf("TimeoutStopSec=%v leaves the %s shutdown-grace-period %v less than 10s to close", stop, name, grace)
		}
	}

	nofile, err := strconv.Atoi(strings.Join(s["LimitNOFILE"], ""))
	if err != nil {
		t.Fatalf("LimitNOFILE: %v", err)
	}
	// Client connections, then per server operation, bind and leased
	// connections and health checks for 10 servers, then a margin.
	perServer := cfg.Pool.ConnectionsPerServer + cfg.Pool.BindConnectionsPerServer + cfg.Pool.LeasedConnectionsPerServer + 2
	need := cfg.Limits.MaxClientConnections + 10*perServer + 1000
	if nofile < need {
		t.Errorf("LimitNOFILE=%d, want at least %d (max-client-connections %d + 10 servers x %d + 1000)",
			nofile, need, cfg.Limits.MaxClientConnections, perServer)
	}
}

// packagedConfig loads deploy/packaging/ldapmux.yaml, the packages'
// /etc/ldapmux/ldapmux.yaml, with a password file beside it.
func packagedConfig(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/packaging/ldapmux.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"ldapmux.yaml": data, "service-password": []byte("secret\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "ldapmux.yaml"))
	if err != nil {
		t.Fatalf("deploy/packaging/ldapmux.yaml: %v", err)
	}
	return cfg
}

func TestContainerConfigIsValid(t *testing.T) {
	t.Setenv("LDAPMUX_SERVICE_PASSWORD", "secret")
	cfg, err := config.Load(filepath.Join(repoRoot(t), "deploy/container/ldapmux.yaml"))
	if err != nil {
		t.Fatalf("deploy/container/ldapmux.yaml: %v", err)
	}
	if cfg.Listen[0].Address != ":389" || cfg.Observability.Admin.Address != ":8389" {
		t.Errorf("container listens on %s, admin on %s; the Containerfile exposes 389 and 8389",
			cfg.Listen[0].Address, cfg.Observability.Admin.Address)
	}
}
