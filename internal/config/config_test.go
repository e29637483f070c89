package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// minimal is the smallest valid configuration; it has 8 lines, so sections
// appended to it start at line 9.
const minimal = `listen:
  - address: :1389
servers:
  - name: ds1
    address: ldap.example.com:389
service-account:
  bind-dn: cn=ldapmux,dc=example,dc=com
  password: s3cr3t-value
`

// sample is the configuration from the design issue.
const sample = `listen:
  - address: 127.0.0.1:1389
servers:                       # in preference order
  - name: ds1
    address: 127.0.0.1:3891
  - name: ds2
    address: 127.0.0.1:3892
service-account:               # identity of the pooled connections
  bind-dn: cn=admin,dc=example,dc=com
  password: secret             # or password-file: PATH
pool:
  connections-per-server: 4    # operation connections, multiplexed
  bind-connections-per-server: 2
  max-connection-age: 5m       # recycle; reopened in server order
  idle-check-interval: 10s     # light read (root DSE) on idle connections
  connect-timeout: 2s
  operation-timeout: 30s       # no response by then: abandon upstream, answer the client
load-balancing:
  algorithm: failover
`

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return cfg
}

func TestMinimalGetsDefaults(t *testing.T) {
	got := mustParse(t, minimal)
	want := &Config{
		Listen: []Listener{{Address: ":1389"}},
		Servers: []Server{{Name: "ds1", Address: "ldap.example.com:389", Weight: 1, ServerHealth: ServerHealth{HealthCheckFrequency: Duration(time.Second)},
			ServerIdentity: ServerIdentity{IdentityMode: IdentityAuto, ServerType: ServerTypeAuto}}},
		ServerIdentity: ServerIdentity{IdentityMode: IdentityAuto, ServerType: ServerTypeAuto},
		ServiceAccount: ServiceAccount{
			BindDN:   "cn=ldapmux,dc=example,dc=com",
			Password: "s3cr3t-value",
		},
		Pool: Pool{
			ConnectionsPerServer:          8,
			MaxConnectionsPerServer:       64,
			GrowAtOperationsPerConnection: 4,
			BindConnectionsPerServer:      2,
			MaxBindConnectionsPerServer:   64,
			BoundConnectionsPerServer:     ptr(16),
			MaxConnectionAge:              Duration(5 * time.Minute),
			IdleCheckInterval:             Duration(10 * time.Second),
			ConnectTimeout:                Duration(2 * time.Second),
			OperationTimeout:              Duration(30 * time.Second),
			LeasedConnectionsPerServer:    64,
			LeaseIdleTimeout:              Duration(5 * time.Minute),
		},
		LoadBalancing:       LoadBalancing{Algorithm: "failover"},
		Limits:              securityLimitDefaults(Limits{MaxPDUSize: 16 << 20, MaxClientConnections: 10000}),
		Log:                 Log{Level: "info", Format: "text"},
		ShutdownGracePeriod: Duration(10 * time.Second),
		EventLoops:          EventLoopsAuto,
		Health:              Health{HealthCheckFrequency: Duration(time.Second), HealthCheckTimeout: Duration(5 * time.Second)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestSampleParses(t *testing.T) {
	cfg := mustParse(t, sample)
	if len(cfg.Servers) != 2 || cfg.Servers[1].Name != "ds2" || cfg.Servers[1].Address != "127.0.0.1:3892" {
		t.Errorf("servers = %+v", cfg.Servers)
	}
	if got := cfg.ServiceAccount.Password.Reveal(); got != "secret" {
		t.Errorf("password = %q, want %q", got, "secret")
	}
	if got := cfg.Pool.OperationTimeout.D(); got != 30*time.Second {
		t.Errorf("operation-timeout = %v", got)
	}
	if cfg.LoadBalancing.Algorithm != "failover" {
		t.Errorf("algorithm = %q", cfg.LoadBalancing.Algorithm)
	}
}

func TestGivenValuesKept(t *testing.T) {
	cfg := mustParse(t, minimal+`pool:
  connections-per-server: 8
  bind-connections-per-server: 1
  max-connection-age: 1h30m
  idle-check-interval: 500ms
  connect-timeout: 1s
  operation-timeout: 1m
load-balancing:
  algorithm: health-weighted
limits:
  max-pdu-size: 1GiB
  max-client-connections: 5
log:
  level: debug
  format: json
  access-log: true
shutdown-grace-period: 1m
`)
	want := Pool{ConnectionsPerServer: 8, MaxConnectionsPerServer: 64, GrowAtOperationsPerConnection: 4,
		BindConnectionsPerServer: 1, MaxBindConnectionsPerServer: 64,
		MaxConnectionAge: Duration(90 * time.Minute), IdleCheckInterval: Duration(500 * time.Millisecond),
		ConnectTimeout: Duration(time.Second), OperationTimeout: Duration(time.Minute),
		LeasedConnectionsPerServer: defaultLeasedConnections, LeaseIdleTimeout: defaultLeaseIdleTimeout,
		BoundConnectionsPerServer: ptr(defaultBoundConnections)}
	if !reflect.DeepEqual(cfg.Pool, want) {
		t.Errorf("pool = %+v, want %+v", cfg.Pool, want)
	}
	if cfg.Limits != securityLimitDefaults(Limits{MaxPDUSize: GiB, MaxClientConnections: 5}) {
		t.Errorf("limits = %+v", cfg.Limits)
	}
	if cfg.Log != (Log{Level: "debug", Format: "json", AccessLog: true}) {
		t.Errorf("log = %+v", cfg.Log)
	}
	if cfg.LoadBalancing.Algorithm != "health-weighted" || cfg.ShutdownGracePeriod.D() != time.Minute {
		t.Errorf("algorithm = %q, grace = %v", cfg.LoadBalancing.Algorithm, cfg.ShutdownGracePeriod)
	}
}

func TestExample(t *testing.T) {
	t.Setenv("LDAPMUX_SERVICE_PASSWORD", "from-env")
	cfg := mustParse(t, string(Example))
	if got := cfg.ServiceAccount.Password.Reveal(); got != "from-env" {
		t.Errorf("password = %q", got)
	}
	if len(cfg.Servers) != 3 || cfg.Servers[2].Address != "127.0.0.1:3893" {
		t.Errorf("servers = %+v", cfg.Servers)
	}
	for _, key := range keyNames(reflect.TypeFor[Config]()) {
		if !bytes.Contains(Example, []byte(key+":")) {
			t.Errorf("example.yaml does not document key %q", key)
		}
	}
}

// keyNames lists every YAML key of struct type t and the structs below it.
func keyNames(t reflect.Type) []string {
	switch t.Kind() {
	case reflect.Slice, reflect.Pointer, reflect.Map:
		return keyNames(t.Elem())
	case reflect.Struct:
	default:
		return nil
	}
	if reflect.PointerTo(t).Implements(yamlUnmarshaler) {
		return nil
	}
	var names []string
	for _, name := range structKeys(t).names {
		names = append(names, name)
		names = append(names, keyNames(structKeys(t).fields[name])...)
	}
	return names
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []Problem
	}{
		{"empty file", "", []Problem{
			{"listen", 0, "at least one listener is required"},
			{"servers", 0, "at least one server is required"},
			{"service-account.bind-dn", 0, "required"},
			{"service-account", 0, "one of password, password-file or password-env is required"},
		}},
		{"listener missing port", `listen:
  - address: 127.0.0.1
` + minimal[len("listen:\n  - address: :1389\n"):], []Problem{
			{"listen[0].address", 2, "missing port"},
		}},
		{"unknown top-level key", minimal + "pools: {}\n", []Problem{
			{"pools", 9, "unknown key (did you mean pool?)"},
		}},
		{"unknown key without suggestion", minimal + "frobnicate: 1\n", []Problem{
			{"frobnicate", 9, "unknown key (valid keys: " + strings.Join(structKeys(reflect.TypeFor[Config]()).names, ", ") + ")"},
		}},
		{"misspelt nested key", minimal + "pool:\n  conect-timeout: 2s\n", []Problem{
			{"pool.conect-timeout", 10, "unknown key (did you mean connect-timeout?)"},
		}},
		{"snake case key", minimal + "pool:\n  connect_timeout: 2s\n", []Problem{
			{"pool.connect_timeout", 10, "unknown key (did you mean connect-timeout?)"},
		}},
		{"bad duration", minimal + "pool:\n  max-connection-age: 5 minutes\n", []Problem{
			{"pool.max-connection-age", 10, `invalid duration "5 minutes" (use e.g. 500ms, 30s, 5m)`},
		}},
		{"duration without unit", minimal + "pool:\n  connect-timeout: 300\n", []Problem{
			{"pool.connect-timeout", 10, "invalid duration 300: missing unit (use e.g. 300s or 300ms)"},
		}},
		{"negative duration", minimal + "shutdown-grace-period: -5s\n", []Problem{
			{"shutdown-grace-period", 9, `invalid duration "-5s": must not be negative`},
		}},
		{"duration not scalar", minimal + "pool:\n  operation-timeout: [30s]\n", []Problem{
			{"pool.operation-timeout", 10, "expected a duration such as 30s, got a list"},
		}},
		{"max connection age too short", minimal + "pool:\n  max-connection-age: 500ms\n", []Problem{
			{"pool.max-connection-age", 10, "must be at least 1s (got 500ms)"},
		}},
		{"connections out of range", minimal + "pool:\n  connections-per-server: 2000\n  bind-connections-per-server: -1\n", []Problem{
			{"pool.connections-per-server", 10, "must be between 1 and 1024 (got 2000)"},
			{"pool.bind-connections-per-server", 11, "must be between 1 and 1024 (got -1)"},
		}},
		{"maximum below the minimum", minimal + "pool:\n  connections-per-server: 8\n  max-connections-per-server: 4\n  bind-connections-per-server: 4\n  max-bind-connections-per-server: 2\n", []Problem{
			{"pool.max-connections-per-server", 11, "must be at least connections-per-server (8), the minimum it grows from (got 4); raise it or lower connections-per-server"},
			{"pool.max-bind-connections-per-server", 13, "must be at least bind-connections-per-server (4), the minimum it grows from (got 2); raise it or lower bind-connections-per-server"},
		}},
		{"integer expected", minimal + "pool:\n  connections-per-server: four\n", []Problem{
			{"pool.connections-per-server", 10, `expected an integer, got "four"`},
		}},
		{"boolean expected", minimal + "log:\n  access-log: sometimes\n", []Problem{
			{"log.access-log", 10, `expected true or false, got "sometimes"`},
		}},
		{"mapping expected", minimal + "pool: 4\n", []Problem{
			{"pool", 9, "expected a mapping, got an integer"},
		}},
		{"list expected", minimal + "pool:\n  connections-per-server: [4]\n", []Problem{
			{"pool.connections-per-server", 10, "expected an integer, got a list"},
		}},
		{"string expected", minimal + "log:\n  level: {a: b}\n", []Problem{
			{"log.level", 10, "expected a string, got a mapping"},
		}},
		{"root not a mapping", "- listen\n", []Problem{
			{"", 1, "expected a mapping, got a list"},
		}},
		{"unknown algorithm", minimal + "load-balancing:\n  algorithm: random\n", []Problem{
			{"load-balancing.algorithm", 10, `unknown algorithm "random" (must be one of failover, fewest-operations, round-robin, weighted, health-weighted)`},
		}},
		{"misspelt algorithm", minimal + "load-balancing:\n  algorithm: roundrobin\n", []Problem{
			{"load-balancing.algorithm", 10, `unknown algorithm "roundrobin" (did you mean round-robin?)`},
		}},
		{"log level and format", minimal + "log:\n  level: verbose\n  format: xml\n", []Problem{
			{"log.level", 10, `unknown level "verbose" (must be one of debug, info, warn, error)`},
			{"log.format", 11, `unknown format "xml" (must be one of text, json)`},
		}},
		{"bad size", minimal + "limits:\n  max-pdu-size: 16 megs\n", []Problem{
			{"limits.max-pdu-size", 10, `invalid size "16 megs" (use e.g. 1024, 512KiB, 16MiB, 1GiB)`},
		}},
		{"size too small", minimal + "limits:\n  max-pdu-size: 512\n", []Problem{
			{"limits.max-pdu-size", 10, "must be at least 1KiB (got 512B)"},
		}},
		{"negative client connections", minimal + "limits:\n  max-client-connections: -1\n", []Problem{
			{"limits.max-client-connections", 10, "must not be negative (got -1)"},
		}},
		{"duplicate key", minimal + "log:\n  level: info\n  level: debug\n", []Problem{
			{"log.level", 11, "duplicate key (first at line 10)"},
		}},
		{"yaml syntax error", "listen: [\n", []Problem{
			{"", 1, "invalid YAML: did not find expected node content"},
		}},
		{"tab indenting a list", "listen:\n\t- address: 127.0.0.1:1389\n", []Problem{
			{"", 2, "invalid YAML: found character that cannot start any token (line 2, column 1 is a tab: indent YAML with spaces, not tabs)"},
		}},
		{"tab after spaces", minimal + "log:\n  \tlevel: info\n", []Problem{
			{"", 10, "invalid YAML: found character that cannot start any token (line 10, column 3 is a tab: indent YAML with spaces, not tabs)"},
		}},
		{"two documents", minimal + "---\nlisten: []\n", []Problem{
			{"", 9, "only one YAML document is allowed"},
		}},
		{"bad bind dn", strings.Replace(minimal, "cn=ldapmux,dc=example,dc=com", "ldapmux", 1), []Problem{
			{"service-account.bind-dn", 7, `invalid DN "ldapmux": DN ended with incomplete type, value pair`},
		}},
		{"two password sources", minimal + "  password-env: PW\n", []Problem{
			{"service-account", 6, "set only one of password, password-file or password-env (found password, password-env)"},
		}},
		{"missing password", strings.Replace(minimal, "  password: s3cr3t-value\n", "", 1), []Problem{
			{"service-account", 6, "one of password, password-file or password-env is required"},
		}},
		{"password file missing", strings.Replace(minimal, "password:", "password-file:", 1), []Problem{
			{"service-account.password-file", 8, "cannot read s3cr3t-value: no such file or directory"},
		}},
		{"password env unset", strings.Replace(minimal, "password: s3cr3t-value", "password-env: LDAPMUX_TEST_SURELY_UNSET", 1), []Problem{
			{"service-account.password-env", 8, "environment variable LDAPMUX_TEST_SURELY_UNSET is not set"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, tt.src, tt.want)
		})
	}
}

func TestServerProblems(t *testing.T) {
	const tail = `service-account:
  bind-dn: cn=ldapmux,dc=example,dc=com
  password: s3cr3t-value
`
	tests := []struct {
		name    string
		servers string // starts at line 3
		want    []Problem
	}{
		{"missing port", "  - name: ds1\n    address: 10.0.0.1\n", []Problem{
			{"servers[0].address", 4, "missing port"},
		}},
		{"invalid port", "  - name: ds1\n    address: ds1:ldap\n  - name: ds2\n    address: ds2:0\n", []Problem{
			{"servers[0].address", 4, `invalid port "ldap" (must be a number from 1 to 65535)`},
			{"servers[1].address", 6, `invalid port "0" (must be a number from 1 to 65535)`},
		}},
		{"missing host", "  - name: ds1\n    address: :389\n", []Problem{
			{"servers[0].address", 4, "missing host"},
		}},
		{"unbracketed IPv6", "  - name: ds1\n    address: ::1:389\n", []Problem{
			{"servers[0].address", 4, `invalid address "::1:389" (write IPv6 hosts in brackets, e.g. [::1]:389)`},
		}},
		{"missing name and address", "  - location: here\n", []Problem{
			{"servers[0].name", 3, "required"},
			{"servers[0].address", 3, "required"},
		}},
		{"invalid name", "  - name: ds 1\n    address: a:1\n", []Problem{
			{"servers[0].name", 3, `invalid name "ds 1" (use letters, digits, '.', '_' and '-')`},
		}},
		{"duplicate names", "  - name: ds1\n    address: a:1\n  - name: ds2\n    address: b:1\n  - name: ds1\n    address: c:1\n", []Problem{
			{"servers[2].name", 7, `duplicate name "ds1" (also used by servers[0])`},
		}},
		{"negative weight", "  - name: ds1\n    address: a:1\n    weight: -2\n", []Problem{
			{"servers[0].weight", 5, "must be at least 1 (got -2)"},
		}},
		{"nested unknown key", "  - name: ds1\n    address: a:1\n  - name: ds2\n    adress: b:1\n", []Problem{
			{"servers[1].address", 5, "required"},
			{"servers[1].adress", 6, "unknown key (did you mean address?)"},
		}},
		{"item not a mapping", "  - name: ds1\n    address: a:1\n  - ds2\n", []Problem{
			{"servers[1]", 5, "expected a mapping, got a string"},
		}},
		{"servers not a list", "  name: ds1\n", []Problem{
			{"servers", 3, "expected a list, got a mapping"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "listen: [{address: ':1389'}]\nservers:\n" + tt.servers + tail
			checkProblems(t, src, tt.want)
		})
	}
}

func TestDuplicateListener(t *testing.T) {
	src := strings.Replace(minimal, "  - address: :1389\n",
		"  - address: :1389\n  - address: :0\n  - address: :0\n  - address: :1389\n", 1)
	checkProblems(t, src, []Problem{{"listen[3].address", 5, `duplicate address ":1389" (also used by listen[0])`}})
}

func TestSeveralProblemsAtOnce(t *testing.T) {
	src := `listen:
  - address: 127.0.0.1:1389
servers:
  - name: ds1
    address: 127.0.0.1:3891
  - name: ds2
    address: 127.0.0.1
service-account:
  bind-dn: cn=admin,dc=example,dc=com
  password: secret
pool:
  conect-timeout: 2s
  max-connection-age: 5 minutes
`
	checkProblems(t, src, []Problem{
		{"servers[1].address", 7, "missing port"},
		{"pool.conect-timeout", 12, "unknown key (did you mean connect-timeout?)"},
		{"pool.max-connection-age", 13, `invalid duration "5 minutes" (use e.g. 500ms, 30s, 5m)`},
	})
	_, err := Parse([]byte(src))
	want := `servers[1].address (line 7): missing port
pool.conect-timeout (line 12): unknown key (did you mean connect-timeout?)
pool.max-connection-age (line 13): invalid duration "5 minutes" (use e.g. 500ms, 30s, 5m)`
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
}

func checkProblems(t *testing.T, src string, want []Problem) {
	t.Helper()
	cfg, err := Parse([]byte(src))
	var got Problems
	if !errors.As(err, &got) {
		t.Fatalf("Parse: got (%v, %v), want Problems", cfg, err)
	}
	if cfg != nil {
		t.Errorf("Parse returned a config along with problems")
	}
	if !reflect.DeepEqual([]Problem(got), want) {
		t.Errorf("problems:\n%v\nwant:\n%v", got, Problems(want))
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{"servers[1].address", 7, "missing port"}, "servers[1].address (line 7): missing port"},
		{Problem{"servers[1].address", 0, "missing port"}, "servers[1].address: missing port"},
		{Problem{"", 3, "invalid YAML: x"}, "line 3: invalid YAML: x"},
		{Problem{"", 0, "bad"}, "bad"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestAliasesAndMerges(t *testing.T) {
	cfg := mustParse(t, minimal+`pool: &pool
  connect-timeout: 3s
  operation-timeout: 1m
`)
	if cfg.Pool.ConnectTimeout.D() != 3*time.Second {
		t.Errorf("connect-timeout = %v", cfg.Pool.ConnectTimeout)
	}
	src := `listen: [{address: ':1389'}]
servers:
  - &ds1 {name: ds1, address: 'a:1', location: east, weight: 2}
  - <<: *ds1
    name: ds2
    address: b:1
    wieght: 3
service-account: {bind-dn: 'cn=x', password: y}
`
	checkProblems(t, src, []Problem{{"servers[1].wieght", 7, "unknown key (did you mean weight?)"}})
	cfg = mustParse(t, strings.Replace(src, "wieght", "weight", 1))
	if s := cfg.Servers[1]; s.Name != "ds2" || s.Address != "b:1" || s.Location != "east" || s.Weight != 3 {
		t.Errorf("merged server = %+v", s)
	}
}

func TestPasswordFileRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ldapmux.yaml")
	src := strings.Replace(minimal, "password: s3cr3t-value", "password-file: pw", 1)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.ServiceAccount.Password.Reveal(); got != "file-secret" {
		t.Errorf("password = %q, want %q", got, "file-secret")
	}
	if cfg.Dir != dir {
		t.Errorf("Dir = %q, want %q", cfg.Dir, dir)
	}
	if cfg.ServiceAccount.PasswordFile != "pw" {
		t.Errorf("PasswordFile = %q", cfg.ServiceAccount.PasswordFile)
	}
}

func TestPasswordFileEmpty(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(minimal, "password: s3cr3t-value", "password-file: "+pw, 1)
	checkProblems(t, src, []Problem{{"service-account.password-file", 8, "file " + pw + " is empty"}})
}

func TestPasswordEnv(t *testing.T) {
	src := strings.Replace(minimal, "password: s3cr3t-value", "password-env: LDAPMUX_TEST_PW", 1)
	t.Setenv("LDAPMUX_TEST_PW", "env-secret")
	if got := mustParse(t, src).ServiceAccount.Password.Reveal(); got != "env-secret" {
		t.Errorf("password = %q", got)
	}
	t.Setenv("LDAPMUX_TEST_PW", "")
	checkProblems(t, src, []Problem{{"service-account.password-env", 8, "environment variable LDAPMUX_TEST_PW is empty"}})
}

func TestLoadErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	var ps Problems
	if !errors.Is(err, fs.ErrNotExist) || errors.As(err, &ps) || !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("Load(missing) = %v; want a wrapped fs.ErrNotExist", err)
	}

	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte(minimal+"extra: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = Load(path); !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "extra" {
		t.Errorf("Load(bad) = %v; want one Problem at extra", err)
	}
}

func TestSecretNeverLeaks(t *testing.T) {
	const secret = "s3cr3t-value"
	cfg := mustParse(t, minimal)

	var outputs []string
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs, fmt.Sprintf(format, cfg), fmt.Sprintf(format, *cfg), fmt.Sprintf(format, cfg.ServiceAccount.Password))
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("cfg", "config", cfg, "sa", cfg.ServiceAccount, "pw", cfg.ServiceAccount.Password)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("cfg", "config", cfg, "pw", cfg.ServiceAccount.Password)
	outputs = append(outputs, logs.String())
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(j), string(y), cfg.ServiceAccount.Password.String())

	// Configurations with problems must not echo the secret either.
	for _, src := range []string{
		minimal + "  password-file: x\n",
		strings.Replace(minimal, "password: ", "pasword: ", 1),
		strings.Replace(minimal, "password: s3cr3t-value", "password: [s3cr3t-value]", 1),
		strings.Replace(minimal, "  password: s3cr3t-value", "  password: s3cr3t-value\n  password: s3cr3t-value", 1),
		strings.Replace(minimal, "service-account:\n  bind-dn: cn=ldapmux,dc=example,dc=com\n  password: ", "service-account: ", 1),
	} {
		_, err := Parse([]byte(src))
		if err == nil {
			t.Fatalf("no problems in\n%s", src)
		}
		outputs = append(outputs, err.Error())
	}
	for _, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("secret leaked in:\n%s", out)
		}
	}
	if !strings.Contains(outputs[0], "REDACTED") {
		t.Errorf("%%v output lacks REDACTED: %s", outputs[0])
	}
	if got := cfg.ServiceAccount.Password.Reveal(); got != secret {
		t.Errorf("Reveal() = %q", got)
	}
}

func TestServerByName(t *testing.T) {
	cfg := mustParse(t, sample)
	if i, ok := cfg.ServerByName("ds2"); i != 1 || !ok {
		t.Errorf("ServerByName(ds2) = %d, %v", i, ok)
	}
	if i, ok := cfg.ServerByName("ds9"); i != -1 || ok {
		t.Errorf("ServerByName(ds9) = %d, %v", i, ok)
	}
}

func TestPoolMaximumsFollowALargerMinimum(t *testing.T) {
	cfg := mustParse(t, minimal+"pool:\n  connections-per-server: 100\n  bind-connections-per-server: 80\n")
	if p := cfg.Pool; p.MaxConnectionsPerServer != 100 || p.MaxBindConnectionsPerServer != 80 {
		t.Errorf("maximums %d / %d, want the minimums 100 / 80", p.MaxConnectionsPerServer, p.MaxBindConnectionsPerServer)
	}
}

func TestEventLoops(t *testing.T) {
	base := "listen:\n  - address: :1389\nservers:\n  - name: ds1\n    address: ldap.example.com:389\nservice-account:\n  bind-dn: cn=x\n  password: y\n"
	for value, want := range map[string]int{"auto": AutoEventLoops(runtime.GOMAXPROCS(0)), "off": 0, "0": 0, "3": 3} {
		cfg, err := Parse([]byte(base + "event-loops: " + value + "\n"))
		if err != nil {
			t.Fatalf("event-loops: %s: %v", value, err)
		}
		if got := cfg.EventLoopCount(); got != want {
			t.Errorf("event-loops: %s gives %d loops, want %d", value, got, want)
		}
	}
	for procs, want := range map[int]int{1: 1, 2: 1, 3: 2, 4: 2, 16: 8} {
		if got := AutoEventLoops(procs); got != want {
			t.Errorf("auto on %d CPUs: %d loops, want %d", procs, got, want)
		}
	}
	for _, bad := range []string{"-1", "many", "2000", "yes"} {
		if _, err := Parse([]byte(base + "event-loops: " + bad + "\n")); err == nil || !strings.Contains(err.Error(), "event-loops") {
			t.Errorf("event-loops: %s: got %v, want an error naming event-loops", bad, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }
