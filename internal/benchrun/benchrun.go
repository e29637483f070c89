// Package benchrun is `make bench`: it starts slapd replicas, then puts the
// same load on a slapd directly, on ldapmux (failover and fewest-operations,
// run as separate processes built from this tree) and on HAProxy in TCP
// mode, and reports throughput, latency percentiles, the ratio to direct,
// and the CPU time and memory each process spent. Targets are measured in
// interleaved rounds (direct, HAProxy, ldapmux..., then again in a rotated
// order) and each figure is the median over the rounds, so that a burst of
// other load on the machine disturbs one round of one target, not a whole
// column. Results are ratios from one run on one machine, never assertions.
package benchrun

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/ldapmux/ldapmux/internal/slapdtest"
)

// Report is everything one run measured.
type Report struct {
	Started      time.Time      `json:"started"`
	CPUs         int            `json:"cpus"`
	Options      Options        `json:"options"`
	Setup        []SetupTime    `json:"setup"`
	Measurements []*Measurement `json:"measurements"`
	Idle         *IdleResult    `json:"idle,omitempty"`
}

// SetupTime records how long preparing something took.
type SetupTime struct {
	What    string  `json:"what"`
	Seconds float64 `json:"seconds"`
}

// bench is one run in progress.
type bench struct {
	o     Options
	rep   *Report
	log   io.Writer
	slapd []int // pids of the running cluster's replicas
}

// Run performs the selected scenarios and prints the tables to stdout;
// progress goes to log. Results are also written to Out/results.json.
func Run(ctx context.Context, o Options, stdout, log io.Writer) error {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("benchrun: %w", err)
	}
	limit := raiseFileLimit(uint64(o.IdleConns) + 1024)
	fmt.Fprintf(log, "bench: %d CPUs, open-file limit %d, output in %s\n", runtime.NumCPU(), limit, o.Out)
	b := &bench{o: o, rep: &Report{Started: time.Now(), CPUs: runtime.NumCPU(), Options: o}, log: log}
	err := b.scenarios(ctx)
	b.rep.WriteTables(stdout)
	if werr := b.writeJSON(); err == nil {
		err = werr
	}
	return err
}

// scenarios runs the main cluster's scenarios, then the scaling one.
func (b *bench) scenarios(ctx context.Context) error {
	if b.o.wants("search8") || b.o.wants("bound8") || b.o.wants("search64") || b.o.wants("search1") || b.o.wants("bind64") || b.o.wants("idle") {
		if err := b.mainCluster(ctx); err != nil {
			return err
		}
	}
	if b.o.wants("scale") {
		if err := b.scaleCluster(ctx); err != nil {
			return err
		}
	}
	if b.o.wants("cores") {
		return b.cores(ctx)
	}
	return nil
}

func (b *bench) writeJSON() error {
	data, err := json.MarshalIndent(b.rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.o.Out, "results.json"), data, 0o644)
}

// startCluster starts replicas with the benchmark's users and records how
// long it took (slapadd of the users dominates).
func (b *bench) startCluster(ctx context.Context, replicas, threads int) (*slapdtest.Cluster, error) {
	fmt.Fprintf(b.log, "bench: starting %d slapd replicas with %d users (threads %d)...\n", replicas, b.o.Users, threads)
	began := time.Now()
	c, err := slapdtest.Start(ctx, slapdtest.Options{Replicas: replicas, Users: b.o.Users, Threads: threads})
	if err != nil {
		return nil, fmt.Errorf("benchrun: %w (is slapd installed? `make deps`)", err)
	}
	took := time.Since(began)
	b.slapd = pids(c)
	what := fmt.Sprintf("%d replicas, %d users, threads %d (slapadd + start)", replicas, b.o.Users, threads)
	b.rep.Setup = append(b.rep.Setup, SetupTime{What: what, Seconds: took.Seconds()})
	fmt.Fprintf(b.log, "bench: replicas up in %s\n", took.Round(time.Millisecond))
	return c, nil
}

func pids(c *slapdtest.Cluster) []int {
	var out []int
	for _, r := range c.Replicas {
		out = append(out, r.PID())
	}
	return out
}
