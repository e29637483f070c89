package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// parse checks, decodes, validates and completes a configuration whose
// relative paths are relative to dir.
func parse(data []byte, dir string) (*Config, error) {
	root, probs := parseYAML(data)
	if len(probs) > 0 {
		return nil, probs
	}
	w := newWalker()
	cfg := &Config{Dir: dir}
	if root != nil {
		w.value(root, reflect.TypeFor[Config](), "")
		if err := root.Decode(cfg); err != nil {
			w.problem("", 0, "%s", errorText(err))
		}
	}
	v := &validator{lines: w.lines}
	cfg.validate(v)
	probs = w.probs
	for _, p := range v.probs {
		if !w.probs.covers(p.Path) {
			probs = append(probs, p)
		}
	}
	if len(probs) > 0 {
		probs.sortByLine()
		return nil, probs
	}
	cfg.setDefaults()
	return cfg, nil
}

// parseYAML returns the root node of the single YAML document in data, or
// nil if there is none.
func parseYAML(data []byte) (*yaml.Node, Problems) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, Problems{withTabHint(syntaxProblem(err), data)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, Problems{{Line: next.Line, Message: "only one YAML document is allowed"}}
	case !errors.Is(err, io.EOF):
		return nil, Problems{withTabHint(syntaxProblem(err), data)}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

var yamlError = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// syntaxProblem turns a yaml.v3 syntax error into a Problem.
func syntaxProblem(err error) Problem {
	msg := err.Error()
	p := Problem{Message: "invalid YAML: " + msg}
	if m := yamlError.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Message = "invalid YAML: " + msg[len(m[0]):]
	}
	return p
}

// withTabHint adds to a syntax problem where the first tab used for
// indentation is: YAML indents with spaces only, and the parser's own
// message rarely says so.
func withTabHint(p Problem, data []byte) Problem {
	for i, line := range bytes.Split(data, []byte("\n")) {
		indent := len(line) - len(bytes.TrimLeft(line, " \t"))
		if col := bytes.IndexByte(line[:indent], '\t'); col >= 0 {
			p.Message += fmt.Sprintf(" (line %d, column %d is a tab: indent YAML with spaces, not tabs)", i+1, col+1)
			if p.Line == 0 {
				p.Line = i + 1
			}
			return p
		}
	}
	return p
}
