package loadgen

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

// Result is what a run measured. Latencies are in microseconds.
type Result struct {
	URL         string                `json:"url"`
	Mix         string                `json:"mix"`
	Connections int                   `json:"connections"`
	TargetRate  float64               `json:"target_rate,omitempty"`
	Seconds     float64               `json:"seconds"`
	Operations  uint64                `json:"operations"`
	Errors      uint64                `json:"errors"`
	Entries     uint64                `json:"entries"`
	OpsPerSec   float64               `json:"ops_per_sec"`
	Latency     Latency               `json:"latency_us"`
	ByKind      map[string]KindResult `json:"by_kind,omitempty"`
	ErrorCounts map[string]uint64     `json:"error_counts,omitempty"`
	FirstError  string                `json:"first_error,omitempty"`
}

// KindResult is the part of a result for one kind of operation.
type KindResult struct {
	Operations uint64  `json:"operations"`
	Errors     uint64  `json:"errors"`
	OpsPerSec  float64 `json:"ops_per_sec"`
	Latency    Latency `json:"latency_us"`
}

// Latency summarises a histogram, in microseconds.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

func micros(d time.Duration) float64 { return float64(d) / 1e3 }

// Summarize reads the usual percentiles from h.
func Summarize(h *Histogram) Latency {
	return Latency{Mean: micros(h.Mean()), P50: micros(h.Quantile(0.5)), P90: micros(h.Quantile(0.9)),
		P99: micros(h.Quantile(0.99)), P999: micros(h.Quantile(0.999)), Max: micros(h.Max())}
}

// result merges the workers' measurements.
func (r *run) result(measured time.Duration) *Result {
	res := &Result{URL: r.cfg.URL, Mix: r.cfg.Mix.String(), Connections: r.cfg.Conns,
		TargetRate: r.cfg.Rate, Seconds: measured.Seconds()}
	var all Histogram
	var errs errorCounts
	for k := range nKinds {
		kr, h := r.kindResult(k, measured)
		if h.Count() == 0 && kr.Errors == 0 {
			continue
		}
		all.Merge(h)
		res.Operations += kr.Operations
		res.Errors += kr.Errors
		if !r.cfg.Mix.only(k) {
			res.addKind(k, kr)
		}
	}
	for _, w := range r.workers {
		res.Entries += w.stats[Search].entries
		errs.merge(&w.errs)
	}
	res.ErrorCounts, res.FirstError = errs.byCause, errs.first
	res.OpsPerSec = perSecond(res.Operations, measured)
	res.Latency = Summarize(&all)
	return res
}

func (res *Result) addKind(k Kind, kr KindResult) {
	if res.ByKind == nil {
		res.ByKind = make(map[string]KindResult)
	}
	res.ByKind[k.String()] = kr
}

// kindResult merges the workers' statistics of one kind.
func (r *run) kindResult(k Kind, measured time.Duration) (KindResult, *Histogram) {
	var kr KindResult
	h := new(Histogram)
	for _, w := range r.workers {
		st := &w.stats[k]
		if st.hist != nil {
			h.Merge(st.hist)
		}
		kr.Operations += st.ops
		kr.Errors += st.errors
	}
	kr.OpsPerSec = perSecond(kr.Operations, measured)
	kr.Latency = Summarize(h)
	return kr, h
}

func perSecond(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func (e *errorCounts) merge(o *errorCounts) {
	for cause, n := range o.byCause {
		if e.byCause == nil {
			e.byCause = make(map[string]uint64)
		}
		e.byCause[cause] += n
	}
	if e.first == "" {
		e.first = o.first
	}
}

// WriteText prints the result for people.
func (res *Result) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%s  %s  %d connections", res.URL, res.Mix, res.Connections)
	if res.TargetRate > 0 {
		fmt.Fprintf(w, "  target %.0f ops/s", res.TargetRate)
	}
	fmt.Fprintf(w, "\n%d operations in %.1fs: %.0f ops/s, %d errors, %d entries\n",
		res.Operations, res.Seconds, res.OpsPerSec, res.Errors, res.Entries)
	fmt.Fprintf(w, "latency: %s\n", res.Latency)
	for _, name := range slices.Sorted(maps.Keys(res.ByKind)) {
		kr := res.ByKind[name]
		fmt.Fprintf(w, "  %-7s %.0f ops/s, %d errors, %s\n", name, kr.OpsPerSec, kr.Errors, kr.Latency)
	}
	for _, cause := range slices.Sorted(maps.Keys(res.ErrorCounts)) {
		fmt.Fprintf(w, "  error  %s: %d\n", cause, res.ErrorCounts[cause])
	}
	if res.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", res.FirstError)
	}
}

func (l Latency) String() string {
	return fmt.Sprintf("mean %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s",
		fmtMicros(l.Mean), fmtMicros(l.P50), fmtMicros(l.P90), fmtMicros(l.P99), fmtMicros(l.P999), fmtMicros(l.Max))
}

// fmtMicros prints microseconds readably: 87µs, 1.25ms, 2.0s.
func fmtMicros(us float64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.2fms", us/1e3)
	}
	return fmt.Sprintf("%.1fs", us/1e6)
}

// reporter prints a progress line every second.
type reporter struct {
	r     *run
	start time.Time
	iv    Histogram
}

func newReporter(r *run) *reporter { return &reporter{r: r, start: time.Now()} }

func (p *reporter) loop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := p.start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			p.line(now, now.Sub(last))
			last = now
		}
	}
}

// line collects the last interval from the workers and prints it.
func (p *reporter) line(now time.Time, span time.Duration) {
	p.iv.Reset()
	var ops, errs uint64
	for _, w := range p.r.workers {
		o, e := w.takeInterval(&p.iv)
		ops, errs = ops+o, errs+e
	}
	if p.r.cfg.Progress == nil {
		return
	}
	tag := ""
	if p.r.phase.Load() == warming {
		tag = "  (warm-up)"
	}
	fmt.Fprintf(p.r.cfg.Progress, "%4.0fs %8.0f ops/s  p50 %-7s p99 %-7s errors %d%s\n",
		now.Sub(p.start).Seconds(), perSecond(ops, span), fmtMicros(micros(p.iv.Quantile(0.5))),
		fmtMicros(micros(p.iv.Quantile(0.99))), errs, tag)
}
