package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	// Path is the key path of the offending value, e.g. "servers[1].address".
	// It is empty for problems with the file as a whole.
	Path string
	// Line is the 1-based line in the file, or 0 when unknown.
	Line int
	// Message says what is wrong. It never contains a secret value.
	Message string
}

// String formats the problem as "path (line N): message", leaving out
// what is unknown.
func (p Problem) String() string {
	switch {
	case p.Line <= 0 && p.Path == "":
		return p.Message
	case p.Line <= 0:
		return p.Path + ": " + p.Message
	case p.Path == "":
		return fmt.Sprintf("line %d: %s", p.Line, p.Message)
	}
	return fmt.Sprintf("%s (line %d): %s", p.Path, p.Line, p.Message)
}

// Problems is every problem found in a configuration file. Load and Parse
// return it as their error; retrieve it with errors.As.
type Problems []Problem

// Error joins the problems, one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortByLine orders problems as they appear in the file; problems without
// a line (such as missing top-level keys) come last.
func (ps Problems) sortByLine() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Compare(lineKey(a.Line), lineKey(b.Line))
	})
}

func lineKey(line int) int {
	if line <= 0 {
		return int(^uint(0) >> 1)
	}
	return line
}

// covers reports whether path lies at or below any path in ps; a problem
// there already explains anything wrong further down.
func (ps Problems) covers(path string) bool {
	for _, p := range ps {
		if isUnder(path, p.Path) {
			return true
		}
	}
	return false
}

// isUnder reports whether path equals prefix or names something inside it.
func isUnder(path, prefix string) bool {
	if prefix == "" || path == prefix {
		return true
	}
	rest, ok := strings.CutPrefix(path, prefix)
	return ok && (rest[0] == '.' || rest[0] == '[')
}
