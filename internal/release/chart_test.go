package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ldapmux/ldapmux/internal/config"
)

// kubernetesModule holds the OpenAPI spec the manifests are validated
// against: the Kubernetes release the chart's API versions are checked for.
const kubernetesModule = "k8s.io/kubernetes@v1.37.2"

func chartDir(t *testing.T) string { return filepath.Join(repoRoot(t), "deploy/helm/ldapmux") }

// helmTemplate renders the chart with the given --set values.
func helmTemplate(t *testing.T, helm string, sets ...string) (string, error) {
	t.Helper()
	args := []string{"template", "ldapmux", chartDir(t)}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return runIn("", nil, helm, args...)
}

// manifests splits rendered YAML into objects.
func manifests(t *testing.T, rendered string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(rendered))
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("rendered chart: %v\n%s", err, rendered)
		}
		if obj != nil {
			objs = append(objs, obj)
		}
	}
}

func find(objs []map[string]any, kind string) map[string]any {
	for _, o := range objs {
		if o["kind"] == kind {
			return o
		}
	}
	return nil
}

// get follows a path of map keys and list indexes through a decoded object.
func get(obj any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := obj.(map[string]any)
			obj = m[k]
		case int:
			l, _ := obj.([]any)
			if k >= len(l) {
				return nil
			}
			obj = l[k]
		}
	}
	return obj
}

func TestChartLintsAndRefusesUnknownValues(t *testing.T) {
	helm := tool(t, "helm")
	if out, err := runIn("", nil, helm, "lint", "--strict", chartDir(t), "--set", "servicePassword.value=x"); err != nil {
		t.Errorf("helm lint: %v\n%s", err, out)
	}
	// values.schema.json refuses a misspelt key and the keys the chart owns.
	for _, set := range []string{"replicaCont=3", "config.listen=x", "service.type=Headless", "listener.containerPort=0"} {
		if out, err := helmTemplate(t, helm, "servicePassword.value=x", set); err == nil {
			t.Errorf("helm template --set %s: accepted\n%s", set, out)
		}
	}
	if out, err := helmTemplate(t, helm); err == nil || !strings.Contains(out, "servicePassword.value or servicePassword.existingSecret is required") {
		t.Errorf("helm template without a password: %v\n%s", err, out)
	}
}

func TestChartDeploymentDrainsAndProbes(t *testing.T) {
	helm := tool(t, "helm")
	rendered, err := helmTemplate(t, helm, "servicePassword.value=x", "shutdownGracePeriodSeconds=25")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, rendered)
	}
	objs := manifests(t, rendered)
	dep := find(objs, "Deployment")
	pod := get(dep, "spec", "template", "spec")
	c := get(pod, "containers", 0)
	checks := map[string][2]any{
		"terminationGracePeriodSeconds": {get(pod, "terminationGracePeriodSeconds"), 5 + 25 + 5},
		"preStop sleep":                 {get(c, "lifecycle", "preStop", "sleep", "seconds"), 5},
		"readiness path":                {get(c, "readinessProbe", "httpGet", "path"), "/readyz"},
		"readiness port":                {get(c, "readinessProbe", "httpGet", "port"), "admin"},
		"liveness path":                 {get(c, "livenessProbe", "httpGet", "path"), "/healthz"},
		"runAsNonRoot":                  {get(pod, "securityContext", "runAsNonRoot"), true},
		"readOnlyRootFilesystem":        {get(c, "securityContext", "readOnlyRootFilesystem"), true},
		"allowPrivilegeEscalation":      {get(c, "securityContext", "allowPrivilegeEscalation"), false},
		"capabilities dropped":          {get(c, "securityContext", "capabilities", "drop", 0), "ALL"},
		"scrape annotation":             {get(dep, "spec", "template", "metadata", "annotations", "prometheus.io/scrape"), "true"},
		"PDB maxUnavailable":            {get(find(objs, "PodDisruptionBudget"), "spec", "maxUnavailable"), 1},
		"Service port":                  {get(find(objs, "Service"), "spec", "ports", 0, "port"), 389},
		"Service target":                {get(find(objs, "Service"), "spec", "ports", 0, "targetPort"), "ldap"},
	}
	for name, gw := range checks {
		if fmt.Sprint(gw[0]) != fmt.Sprint(gw[1]) {
			t.Errorf("%s = %v, want %v", name, gw[0], gw[1])
		}
	}
	if get(c, "resources", "limits", "memory") == nil {
		t.Errorf("no memory limit")
	}

	// The ConfigMap's ldapmux.yaml is a valid configuration with the drain
	// and ports the Deployment assumes.
	cfgText, _ := get(find(objs, "ConfigMap"), "data", "ldapmux.yaml").(string)
	cfg := loadChartConfig(t, cfgText)
	if got := fmt.Sprint(cfg.ShutdownGracePeriod); got != "25s" {
		t.Errorf("shutdown-grace-period %s, want 25s", got)
	}
	if cfg.Listen[0].Address != ":1389" || cfg.Observability.Admin.Address != ":8389" {
		t.Errorf("config listens on %s, admin %s", cfg.Listen[0].Address, cfg.Observability.Admin.Address)
	}
	if get(c, "ports", 0, "containerPort") != 1389 || get(c, "ports", 1, "containerPort") != 8389 {
		t.Errorf("container ports %v", get(c, "ports"))
	}

	// A configuration change rolls the pods.
	other, err := helmTemplate(t, helm, "servicePassword.value=x", "shutdownGracePeriodSeconds=25", "config.log.level=debug")
	if err != nil {
		t.Fatal(err)
	}
	sum := func(objs []map[string]any) any {
		return get(find(objs, "Deployment"), "spec", "template", "metadata", "annotations", "checksum/config")
	}
	if a, b := sum(objs), sum(manifests(t, other)); a == nil || a == b {
		t.Errorf("checksum/config %v does not change with the configuration (%v)", a, b)
	}
}

// loadChartConfig loads a rendered ldapmux.yaml, its password file moved
// from the Secret's mount to a temporary file.
func loadChartConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	const mounted = "/etc/ldapmux/secret/password"
	if !strings.Contains(text, "password-file: "+mounted) {
		t.Fatalf("config does not read the password from %s:\n%s", mounted, text)
	}
	path := filepath.Join(dir, "ldapmux.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, mounted, pw)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("rendered ldapmux.yaml: %v\n%s", err, text)
	}
	return cfg
}

func TestChartExistingSecretAndServiceMonitor(t *testing.T) {
	helm := tool(t, "helm")
	rendered, err := helmTemplate(t, helm, "servicePassword.existingSecret=ldap-pw", "metrics.serviceMonitor.enabled=true")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, rendered)
	}
	objs := manifests(t, rendered)
	if find(objs, "Secret") != nil {
		t.Errorf("a Secret is rendered besides the existing one")
	}
	vols := fmt.Sprint(get(find(objs, "Deployment"), "spec", "template", "spec", "volumes"))
	if !strings.Contains(vols, "secretName:ldap-pw") {
		t.Errorf("the existing secret is not mounted: %s", vols)
	}
	sm := find(objs, "ServiceMonitor")
	if get(sm, "spec", "endpoints", 0, "port") != "admin" || get(sm, "spec", "endpoints", 0, "path") != "/metrics" {
		t.Errorf("ServiceMonitor %v", sm)
	}
	services := 0
	for _, o := range objs {
		if o["kind"] == "Service" {
			services++
		}
	}
	if services != 2 {
		t.Errorf("%d Services, want the LDAP and the admin one", services)
	}
}

// TestChartValidatesAgainstKubernetesSchemas checks every rendered object
// with kubeconform against strict schemas made from the Kubernetes OpenAPI
// spec (unknown fields refused), and proves that a misspelt field fails.
func TestChartValidatesAgainstKubernetesSchemas(t *testing.T) {
	helm := tool(t, "helm")
	kubeconform := tool(t, "kubeconform")
	schemas := kubeSchemas(t)
	validate := func(rendered string) (string, error) {
		file := filepath.Join(t.TempDir(), "rendered.yaml")
		if err := os.WriteFile(file, []byte(rendered), 0o644); err != nil {
			t.Fatal(err)
		}
		return runIn("", nil, kubeconform, "-strict", "-summary",
			"-schema-location", filepath.Join(schemas, "{{.ResourceKind}}{{.KindSuffix}}.json"), file)
	}
	for _, sets := range [][]string{
		{"servicePassword.value=x"},
		{"servicePassword.existingSecret=pw", "metrics.serviceMonitor.enabled=true", "service.type=LoadBalancer",
			"service.externalTrafficPolicy=Local", "podDisruptionBudget.maxUnavailable=50%"},
	} {
		rendered, err := helmTemplate(t, helm, sets...)
		if err != nil {
			t.Fatalf("helm template %v: %v\n%s", sets, err, rendered)
		}
		out, err := validate(rendered)
		if err != nil || !regexp.MustCompile(`Invalid: 0, Errors: 0, Skipped: 0`).MatchString(out) {
			t.Errorf("kubeconform %v: %v\n%s", sets, err, out)
		}
		t.Logf("kubeconform %v: %s", sets, strings.TrimSpace(lastLine(out)))
	}

	rendered, _ := helmTemplate(t, helm, "servicePassword.value=x")
	for _, typo := range [][2]string{
		{"readinessProbe:", "readinesProbe:"},
		{"maxUnavailable: 1", "maxUnavailble: 1"},
		{"targetPort: ldap", "targetport: ldap"},
	} {
		bad := strings.Replace(rendered, typo[0], typo[1], 1)
		if bad == rendered {
			t.Fatalf("%q not in the rendered chart", typo[0])
		}
		if out, err := validate(bad); err == nil {
			t.Errorf("kubeconform accepted %q:\n%s", typo[1], out)
		}
	}
}

// kubeSchemas writes, for each kind the chart renders, a strict JSON schema
// in kubeconform's layout (kind-group-version.json) made from the OpenAPI
// spec of kubernetesModule, fetched through the Go module proxy (and then
// read from the module cache): every object refuses unknown fields, as
// kubectl's strict field validation does.
func kubeSchemas(t *testing.T) string {
	t.Helper()
	out, err := runIn(t.TempDir(), nil, "go", "mod", "download", "-json", kubernetesModule)
	var mod struct{ Dir, Error string }
	if jerr := json.Unmarshal([]byte(out), &mod); err != nil || jerr != nil || mod.Dir == "" {
		missing(t, kubernetesModule, fmt.Errorf("go mod download: %v %s\n%s", err, mod.Error, out))
	}
	data, err := os.ReadFile(filepath.Join(mod.Dir, "api/openapi-spec/swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct{ Definitions map[string]map[string]any }
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	defs := spec.Definitions
	// Where the API takes a number or a string, as Kubernetes does.
	defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
	defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}

	dir := t.TempDir()
	kinds := map[string]string{ // kind → definition
		"deployment-apps-v1":            "io.k8s.api.apps.v1.Deployment",
		"service-v1":                    "io.k8s.api.core.v1.Service",
		"configmap-v1":                  "io.k8s.api.core.v1.ConfigMap",
		"secret-v1":                     "io.k8s.api.core.v1.Secret",
		"poddisruptionbudget-policy-v1": "io.k8s.api.policy.v1.PodDisruptionBudget",
	}
	for file, def := range kinds {
		if defs[def] == nil {
			t.Fatalf("%s has no definition %s", kubernetesModule, def)
		}
		reached := map[string]any{}
		reach(defs, def, reached)
		writeSchema(t, filepath.Join(dir, file+".json"), map[string]any{
			"$ref": "#/definitions/" + def, "definitions": reached,
		})
	}
	writeSchema(t, filepath.Join(dir, "servicemonitor-monitoring-v1.json"), serviceMonitorSchema)
	return dir
}

// reach copies definition name and every definition it refers to into
// reached, each made strict.
func reach(defs map[string]map[string]any, name string, reached map[string]any) {
	if _, ok := reached[name]; ok {
		return
	}
	def := defs[name]
	reached[name] = def
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				reach(defs, strings.TrimPrefix(ref, "#/definitions/"), reached)
			}
			if _, ok := x["properties"]; ok {
				if _, set := x["additionalProperties"]; !set {
					x["additionalProperties"] = false
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(def)
}

func writeSchema(t *testing.T, path string, schema any) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(schema); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// serviceMonitorSchema is the part of the Prometheus Operator's
// ServiceMonitor (monitoring.coreos.com/v1) that the chart uses, strict.
var serviceMonitorSchema = map[string]any{
	"type":     "object",
	"required": []any{"apiVersion", "kind", "metadata", "spec"},
	"properties": map[string]any{
		"apiVersion": map[string]any{"const": "monitoring.coreos.com/v1"},
		"kind":       map[string]any{"const": "ServiceMonitor"},
		"metadata":   map[string]any{"type": "object"},
		"spec": map[string]any{
			"type": "object", "additionalProperties": false, "required": []any{"selector", "endpoints"},
			"properties": map[string]any{
				"selector": map[string]any{"type": "object", "additionalProperties": false,
					"properties": map[string]any{"matchLabels": map[string]any{"type": "object"}}},
				"endpoints": map[string]any{"type": "array", "items": map[string]any{
					"type": "object", "additionalProperties": false,
					"properties": map[string]any{
						"port": map[string]any{"type": "string"}, "path": map[string]any{"type": "string"},
						"interval": map[string]any{"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
					},
				}},
			},
		},
	},
	"additionalProperties": false,
}
