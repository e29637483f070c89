package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// registered lists the names of every ldapmux metric the registry serves.
func registered(t *testing.T) []string {
	a := startOffline(t, offline(t, "  - {name: ds1, address: '127.0.0.1:1'}\n", ""))
	ch := make(chan *prometheus.Desc, 256)
	a.Metrics().Describe(ch)
	close(ch)
	var names []string
	re := regexp.MustCompile(`fqName: "(ldapmux_\w+)"`)
	for d := range ch {
		if m := re.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return names
}

// mentioned lists the metric names a document mentions (histogram series
// suffixes removed).
func mentioned(t *testing.T, file string) []string {
	data, err := os.ReadFile(filepath.Join("..", "..", file))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`ldapmux_[a-z_]*[a-z]`).FindAllString(string(data), -1) {
		m = regexp.MustCompile(`_(bucket|count|sum)$`).ReplaceAllString(m, "")
		if !slices.Contains(names, m) {
			names = append(names, m)
		}
	}
	return names
}

// TestMetricDocs keeps the documentation, the README and the Grafana
// dashboard in step with the metrics: every name they use exists, and
// every metric is documented.
func TestMetricDocs(t *testing.T) {
	names := registered(t)
	if len(names) < 25 {
		t.Fatalf("only %d metrics registered: %v", len(names), names)
	}
	for _, file := range []string{"docs/observability.md", "README.md", "docs/grafana-dashboard.json"} {
		used := mentioned(t, file)
		for _, n := range used {
			if !slices.Contains(names, n) {
				t.Errorf("%s mentions %s, which does not exist", file, n)
			}
		}
		if file == "docs/grafana-dashboard.json" {
			continue
		}
		for _, n := range names {
			if !slices.Contains(used, n) {
				t.Errorf("%s does not document %s", file, n)
			}
		}
	}
	data, _ := os.ReadFile(filepath.Join("..", "..", "docs", "grafana-dashboard.json"))
	var dash struct{ Panels []json.RawMessage }
	if err := json.Unmarshal(data, &dash); err != nil || len(dash.Panels) == 0 {
		t.Errorf("grafana-dashboard.json: %v", err)
	}
}
