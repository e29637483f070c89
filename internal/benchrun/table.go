package benchrun

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// scenarioTitles describe the scenarios in the printed tables.
var scenarioTitles = map[string]string{
	"search8":      "base-object searches, %d connections",
	"bound8":       "base-object searches bound as a user, %d connections",
	"search64":     "base-object searches, 64 connections",
	"bind64":       "simple binds of random users, 64 connections",
	"search1":      "base-object searches, 1 connection (latency added = p50 - p50 direct)",
	"scale":        "fewest-operations over 1 vs 3 replicas, slapd threads %d, %d connections (replicas share every CPU)",
	"scale-pinned": "fewest-operations over 1 vs 3 replicas, slapd threads %d, %d connections, replica N pinned to CPU (N-1) mod %d",
	"profile":      "ldapmux under -test.cpuprofile/-test.memprofile (not comparable)",
}

// WriteTables prints the results as Markdown tables.
func (r *Report) WriteTables(w io.Writer) {
	fmt.Fprintf(w, "\nldapmux benchmark, %s, %d CPUs, %d users; per target %d interleaved rounds of %s after %s warm-up,\n",
		r.Started.Format("2006-01-02 15:04"), r.CPUs, r.Options.Users, r.Options.Rounds, r.Options.Duration, r.Options.Warmup)
	fmt.Fprintln(w, "medians over the rounds (× direct: median of the per-round ratios, [min-max]); CPU per operation over all rounds")
	if r.Options.Nice != 0 {
		fmt.Fprintf(w, "every process at nice %d (other load on the machine is in the \"other\" column)\n", r.Options.Nice)
	}
	for _, s := range r.Setup {
		fmt.Fprintf(w, "setup: %s: %.1fs\n", s.What, s.Seconds)
	}
	for _, sc := range []string{"search8", "bound8", "search64", "search1", "bind64", "scale", "scale-pinned"} {
		r.writeScenario(w, sc)
	}
	cores := r.coresScenarios()
	for _, sc := range cores {
		r.writeScenario(w, sc)
	}
	r.writeCoresSummary(w, cores)
	r.writeScenario(w, "profile")
	r.writeIdle(w)
}

// coresScenarios lists the many-core scenarios measured, in order.
func (r *Report) coresScenarios() []string {
	var out []string
	for _, m := range r.Measurements {
		if strings.HasPrefix(m.Scenario, "cores") && !slices.Contains(out, m.Scenario) {
			out = append(out, m.Scenario)
		}
	}
	return out
}

// writeCoresSummary prints the many-core scenarios one row each: ratios to
// direct, proxy and slapd CPU per operation of every proxy side by side
// (with slapd alone on its CPUs, its CPU per operation is what bounds the
// throughput).
func (r *Report) writeCoresSummary(w io.Writer, scenarios []string) {
	if len(scenarios) == 0 {
		return
	}
	var proxies []string
	for _, m := range r.Measurements {
		if slices.Contains(scenarios, m.Scenario) && m.Target != "direct" && !slices.Contains(proxies, m.Target) {
			proxies = append(proxies, m.Target)
		}
	}
	fmt.Fprintf(w, "\nmany-core summary: × direct [min-max], proxy CPU µs/op, p50 added µs, slapd CPU µs/op\n\n")
	fmt.Fprintf(w, "| proxy cores, clients | direct ops/s, slapd CPU µs/op | %s |\n", strings.Join(proxies, " | "))
	fmt.Fprintf(w, "|---|--:|%s\n", strings.Repeat("--:|", len(proxies)))
	for _, sc := range scenarios {
		var k, clients int
		fmt.Sscanf(sc, "cores%d-c%d", &k, &clients)
		row := map[string]*Measurement{}
		for _, m := range r.Measurements {
			if m.Scenario == sc {
				row[m.Target] = m
			}
		}
		direct, slapd := 0.0, 0.0
		if d := row["direct"]; d != nil {
			direct, slapd = d.OpsPerSec, d.SlapdCPUPerOp
		}
		fmt.Fprintf(w, "| %d, %d | %.0f, %.1f |", k, clients, direct, slapd)
		for _, p := range proxies {
			if m := row[p]; m != nil {
				fmt.Fprintf(w, " %s, %s, %s, %.1f |", ratio(m), optional(m.ProxyCPUPerOp, "%.1f"), added(m), m.SlapdCPUPerOp)
			} else {
				fmt.Fprint(w, " - |")
			}
		}
		fmt.Fprintln(w)
	}
}

func (r *Report) title(sc string) string {
	switch sc {
	case "search8", "bound8":
		return fmt.Sprintf(scenarioTitles[sc], r.Options.Conns)
	case "scale":
		return fmt.Sprintf(scenarioTitles[sc], r.Options.ScaleThreads, r.Options.ScaleConns)
	case "scale-pinned":
		return fmt.Sprintf(scenarioTitles[sc], r.Options.ScaleThreads, r.Options.ScaleConns, r.CPUs)
	}
	return scenarioTitles[sc]
}

func (r *Report) writeScenario(w io.Writer, sc string) {
	var rows []*Measurement
	for _, m := range r.Measurements {
		if m.Scenario == sc {
			rows = append(rows, m)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\n\n", r.title(sc))
	fmt.Fprintln(w, "| target | ops/s | p50 µs | p99 µs | × direct | p50 added µs | proxy CPU µs/op | proxy RSS MiB | slapd CPU µs/op | client CPU µs/op | machine CPU cores (other) | errors |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, m := range rows {
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.0f | %s | %s | %s | %s | %.1f | %.1f | %.2f (%.2f) | %d |\n",
			m.Target, m.OpsPerSec, m.P50, m.P99, ratio(m), added(m),
			optional(m.ProxyCPUPerOp, "%.1f"), optional(m.ProxyRSSMiB, "%.1f"), m.SlapdCPUPerOp, m.ClientCPUPerOp,
			m.MachineCores, m.OtherCores, m.Errors)
	}
}

func ratio(m *Measurement) string {
	switch {
	case m.Ratio == 0 || m.Scenario == "profile":
		return "-"
	case m.Target == "direct" || m.RatioMin == m.RatioMax:
		return fmt.Sprintf("%.2f", m.Ratio)
	}
	return fmt.Sprintf("%.2f [%.2f-%.2f]", m.Ratio, m.RatioMin, m.RatioMax)
}

func added(m *Measurement) string {
	if m.Target == "direct" || m.Ratio == 0 || m.Scenario == "profile" {
		return "-"
	}
	return fmt.Sprintf("%+.0f", m.AddedP50)
}

func optional(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func (r *Report) writeIdle(w io.Writer) {
	in := r.Idle
	if in == nil {
		return
	}
	fmt.Fprintf(w, "\nidle client connections to ldapmux (fewest-operations), held %.0fs each step\n\n", in.HoldSeconds)
	fmt.Fprintln(w, "| connections | RSS before MiB | RSS idle MiB | KiB/conn idle | RSS after one search each MiB | KiB/conn | peak RSS MiB |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|--:|")
	fmt.Fprintf(w, "| %d of %d (%d searched) | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n",
		in.Opened, in.Wanted, in.Searched, in.BaseRSSMiB, in.IdleRSSMiB, in.IdleKiBPerConn,
		in.AfterSearchRSSMiB, in.SearchKiBPerConn, in.PeakRSSMiB)
}
