package app

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

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
// dashboard in step with the metrics: every name they use exists, every
// metric is documented in docs/observability.md, and the README points
// there.
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
		if file != "docs/observability.md" {
			continue
		}
		for _, n := range names {
			if !slices.Contains(used, n) {
				t.Errorf("%s does not document %s", file, n)
			}
		}
	}
	if readme := readDoc(t, "README.md"); !strings.Contains(readme, "(docs/observability.md#metrics)") {
		t.Errorf("README.md does not link the metrics' documentation, docs/observability.md#metrics")
	}
	data, _ := os.ReadFile(filepath.Join("..", "..", "docs", "grafana-dashboard.json"))
	var dash struct{ Panels []json.RawMessage }
	if err := json.Unmarshal(data, &dash); err != nil || len(dash.Panels) == 0 {
		t.Errorf("grafana-dashboard.json: %v", err)
	}
}

func readDoc(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", file))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestGoVersionAgrees: the Go version the README asks for is go.mod's.
func TestGoVersionAgrees(t *testing.T) {
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(readDoc(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	readme := readDoc(t, "README.md")
	for _, v := range regexp.MustCompile(`\bGo (1\.[0-9.]*[0-9])`).FindAllStringSubmatch(readme, -1) {
		if v[1] != m[1] {
			t.Errorf("README.md says Go %s, go.mod says go %s", v[1], m[1])
		}
	}
	if !strings.Contains(readme, "Go "+m[1]) {
		t.Errorf("README.md does not say which Go it needs (go.mod: go %s)", m[1])
	}
}

// TestDocLinks checks the relative links of the README and docs/*.md: the
// file exists and the #anchor is one of its headings.
func TestDocLinks(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	files = append(files, filepath.Join("..", "..", "README.md"))
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			target, anchor, _ := strings.Cut(m[1], "#")
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path := file
			if target != "" {
				path = filepath.Join(filepath.Dir(file), target)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links %s, which does not exist", filepath.Base(file), m[1])
				continue
			}
			if anchor != "" && !slices.Contains(anchors(t, path), anchor) {
				t.Errorf("%s links %s: no heading has the anchor #%s", filepath.Base(file), m[1], anchor)
			}
		}
	}
}

// anchors lists the anchors a Markdown file's headings get (GitHub's rule:
// lower case, punctuation but hyphens dropped, spaces to hyphens, -1, -2
// for repeats).
func anchors(t *testing.T, path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	inCode := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		title, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if inCode || !strings.HasPrefix(line, "#") || !ok {
			continue
		}
		slug := strings.Map(func(r rune) rune {
			switch {
			case r == ' ':
				return '-'
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				return unicode.ToLower(r)
			}
			return -1
		}, title)
		base := slug
		for i := 1; slices.Contains(out, slug); i++ {
			slug = fmt.Sprintf("%s-%d", base, i)
		}
		out = append(out, slug)
	}
	return out
}
