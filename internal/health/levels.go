package health

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// Levels turns successive values of one measurement (a response time, a
// backlog age, a queue length...) into a state. Separate thresholds for
// entering and for leaving a state give hysteresis, so a server whose value
// hovers near a threshold does not flip back and forth. A zero threshold is
// not used.
type Levels struct {
	// DegradedAbove: a value above it makes the server degraded.
	DegradedAbove float64
	// AvailableBelow: a server that is not available becomes available
	// again only with a value below it. Default DegradedAbove.
	AvailableBelow float64
	// UnavailableAbove: a value above it makes the server unavailable.
	UnavailableAbove float64
	// DegradedBelow: a server that is unavailable becomes degraded again
	// only with a value below it. Default UnavailableAbove.
	DegradedBelow float64
}

// withDefaults fills in the thresholds for leaving a state.
func (l Levels) withDefaults() Levels {
	if l.AvailableBelow == 0 {
		l.AvailableBelow = l.DegradedAbove
	}
	if l.DegradedBelow == 0 {
		l.DegradedBelow = l.UnavailableAbove
	}
	return l
}

// Set reports whether any threshold is set.
func (l Levels) Set() bool { return l != Levels{} }

// Classify returns the state for value v given the state the previous
// values led to.
func (l Levels) Classify(prev backend.State, v float64) backend.State {
	l = l.withDefaults()
	switch {
	case over(v, l.UnavailableAbove), prev == backend.Unavailable && notUnder(v, l.DegradedBelow):
		return backend.Unavailable
	case over(v, l.DegradedAbove), prev != backend.Available && notUnder(v, l.AvailableBelow):
		return backend.Degraded
	}
	return backend.Available
}

func over(v, threshold float64) bool     { return threshold > 0 && v > threshold }
func notUnder(v, threshold float64) bool { return threshold > 0 && v >= threshold }

// Score ranks a value within its state: 10 (no load) down to 6 just below
// the degraded threshold, 5 down to 2 between the degraded and unavailable
// thresholds, 1 when unavailable.
func (l Levels) Score(st backend.State, v float64) int {
	switch st {
	case backend.Unavailable:
		return 1
	case backend.Degraded:
		return 5 - band(v-l.DegradedAbove, l.UnavailableAbove-l.DegradedAbove, 3)
	}
	top := l.DegradedAbove
	if top == 0 {
		top = l.UnavailableAbove
	}
	return 10 - band(v, top, 4)
}

// fixedScore is the score of a state decided without a measurement.
func fixedScore(st backend.State) int {
	return [...]int{backend.Available: 10, backend.Degraded: 5, backend.Unavailable: 1}[st]
}

// band maps v in [0, span] to 0..n; it is 0 when span is not positive.
func band(v, span float64, n int) int {
	if span <= 0 || v <= 0 {
		return 0
	}
	return int(math.Round(math.Min(v/span, 1) * float64(n)))
}

// meter follows one measurement of one server through its Levels. It is
// used by one check of one server, whose runs never overlap.
type meter struct {
	name   string // e.g. "response time"
	levels Levels
	format func(float64) string
	state  backend.State
}

// observe classifies v and remembers the state for the next value.
func (m *meter) observe(v float64) Result {
	m.state = m.levels.Classify(m.state, v)
	return Result{State: m.state, Score: m.levels.Score(m.state, v), Reason: m.explain(v)}
}

// demote makes the next value meet the thresholds for leaving unavailable
// (after an error, or after an operation to the server failed).
func (m *meter) demote() { m.state = backend.Unavailable }

// explain says why v led to the meter's state.
func (m *meter) explain(v float64) string {
	l := m.levels.withDefaults()
	val := m.name + " " + m.format(v)
	switch {
	case m.state == backend.Unavailable && over(v, l.UnavailableAbove):
		return fmt.Sprintf("%s above %s", val, m.format(l.UnavailableAbove))
	case m.state == backend.Unavailable:
		return fmt.Sprintf("%s not yet below %s after being unavailable", val, m.format(l.DegradedBelow))
	case m.state == backend.Degraded && over(v, l.DegradedAbove):
		return fmt.Sprintf("%s above %s", val, m.format(l.DegradedAbove))
	case m.state == backend.Degraded:
		return fmt.Sprintf("%s not yet below %s", val, m.format(l.AvailableBelow))
	}
	return val
}

// seconds formats a value in seconds as a rounded duration.
func seconds(v float64) string {
	d := time.Duration(v * float64(time.Second))
	switch {
	case d >= 10*time.Second:
		d = d.Round(100 * time.Millisecond)
	case d >= time.Millisecond:
		d = d.Round(time.Millisecond)
	default:
		d = d.Round(time.Microsecond)
	}
	return d.String()
}

// count formats a whole number.
func count(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// percent formats a percentage.
func percent(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + "%" }

// DurationLevels builds Levels in seconds from durations.
func DurationLevels(degradedAbove, availableBelow, unavailableAbove, degradedBelow time.Duration) Levels {
	return Levels{
		DegradedAbove: degradedAbove.Seconds(), AvailableBelow: availableBelow.Seconds(),
		UnavailableAbove: unavailableAbove.Seconds(), DegradedBelow: degradedBelow.Seconds(),
	}
}

// worst folds results: the worst state wins, the reason is that of the
// result that decided it (the lowest score among the worst), and the score
// is the lowest of all.
func worst(rs ...Result) Result {
	r, _ := decide(rs)
	return r
}

// decide is worst that also returns the index of the deciding result (-1
// for none).
func decide(rs []Result) (Result, int) {
	out, at := Result{State: backend.Available, Score: 10, Reason: "no check"}, -1
	for i, r := range rs {
		if at < 0 || r.State > out.State || (r.State == out.State && r.Score < out.Score) {
			out, at = r, i
		}
	}
	for _, r := range rs {
		out.Score = min(out.Score, r.Score)
	}
	return out, at
}
