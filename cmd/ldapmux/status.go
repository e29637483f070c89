package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ldapmux/ldapmux/internal/status"
)

// statusCmd prints a running proxy's server table from its admin listener.
func statusCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var af adminFlags
	af.register(fs, "127.0.0.1:8389")
	raw := fs.Bool("json", false, "print the status report as JSON")
	wide := fs.Bool("wide", false, "print failure reasons whole, and each server's vendor")
	if err := fs.Parse(args); err != nil {
		return parseFailed(err)
	}
	client, err := af.client(10 * time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "ldapmux status: %v\n", err)
		return 2
	}
	body, err := fetchStatus(client)
	if err != nil {
		fmt.Fprintf(stderr, "ldapmux status: %s\n", adminError(err, af.addr))
		return 1
	}
	if *raw {
		stdout.Write(body)
		return 0
	}
	var st status.Status
	if err := json.Unmarshal(body, &st); err != nil {
		fmt.Fprintf(stderr, "ldapmux status: unexpected answer: %v\n", err)
		return 1
	}
	printStatus(stdout, &st, *wide)
	return 0
}

func fetchStatus(client *adminClient) ([]byte, error) {
	resp, err := client.do(http.MethodGet, "/api/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/status: %s", resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// Widths reasons are clipped to unless -wide.
const (
	serverReasonWidth     = 60
	transitionReasonWidth = 80
)

// printStatus writes the summary line, the server table, the routes and
// the latest state transitions. Unless wide, reasons are clipped to keep
// lines short, with a note saying how to see them whole.
func printStatus(w io.Writer, st *status.Status, wide bool) {
	ready := "READY"
	switch {
	case st.Draining:
		ready = "DRAINING"
	case !st.Ready:
		ready = "NOT READY (" + strings.Join(st.NotReady, "; ") + ")"
	}
	version := ""
	if st.Build.Version != "" {
		version = " " + st.Build.Version
	}
	fmt.Fprintf(w, "ldapmux%s on %s  %s  up %s  %d clients, %d operations in flight\n\n", version, strings.Join(st.Listeners, ", "),
		ready, age(st.Time.Sub(st.Started)), st.Clients.Current, st.Clients.Inflight)
	clipped := printServers(w, st, wide)
	printAlgorithms(w, st)
	if printTransitions(w, st, 5, wide) || clipped {
		fmt.Fprintln(w, "\n(reasons clipped: ldapmux status -wide prints them whole)")
	}
}

// yesOrDash prints a flag of the status report.
func yesOrDash(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

// printServers writes the server table and says whether it clipped a reason.
func printServers(w io.Writer, st *status.Status, wide bool) (clipped bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "LOCATION\tSERVER\tADDRESS\tTYPE\tIDENTITY\tSTATE\tSCORE\tOUTSTANDING\tOPS/S\tLATENCY\tCOMPLETED\tFAILED\tPOOL OP/ANON/BOUND/BIND\t"
	if wide {
		header += "VENDOR\tPASSWORD POLICY\t"
	}
	fmt.Fprintln(tw, header+"REASON")
	for _, s := range st.Servers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%.1f\t%s\t%d\t%d\t%d/%d/%d/%d\t", dash(s.Location), s.Name, s.Address,
			dash(s.ServerType), dash(s.IdentityMode), s.State, s.Score,
			s.Outstanding, s.OpsPerSec, millis(s.LatencyMs), s.Completed, s.Failed, s.Pool.OpenOps, s.Pool.OpenAnon, s.Pool.OpenBound, s.Pool.OpenBinds)
		reason := s.Reason
		if wide {
			fmt.Fprintf(tw, "%s\t%s\t", dash(s.Vendor), yesOrDash(s.PasswordPolicy))
		} else {
			reason = clip(s.Reason, serverReasonWidth)
			clipped = clipped || reason != s.Reason
		}
		fmt.Fprintln(tw, reason)
	}
	tw.Flush()
	return clipped
}

// dash stands for an empty value in a table.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printAlgorithms(w io.Writer, st *status.Status) {
	if len(st.Algorithms) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tALGORITHM\tSERVERS\tUSABLE\tSELECTIONS\tFAILOVERS")
	for _, a := range st.Algorithms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%d\n", a.Name, a.Type, strings.Join(a.Servers, ","), a.Usable, len(a.Servers), a.Selections, a.Failovers)
	}
	tw.Flush()
}

// printTransitions writes the latest n transitions and says whether it
// clipped a reason.
func printTransitions(w io.Writer, st *status.Status, n int, wide bool) (clipped bool) {
	if len(st.Transitions) == 0 {
		return false
	}
	fmt.Fprintln(w, "\nLATEST STATE TRANSITIONS")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range st.Transitions[:min(n, len(st.Transitions))] {
		reason := t.Reason
		if !wide {
			reason = clip(t.Reason, transitionReasonWidth)
			clipped = clipped || reason != t.Reason
		}
		fmt.Fprintf(tw, "%s ago\t%s\t%s -> %s\t%s\t%s\n", age(st.Time.Sub(t.Time)), t.Server, t.From, t.To, t.Check, reason)
	}
	tw.Flush()
	return clipped
}

func millis(ms float64) string {
	if ms == 0 {
		return "-"
	}
	return strconv.FormatFloat(ms, 'f', 2, 64) + "ms"
}

// age renders a duration the way people read uptimes: 3d4h, 2h5m, 4m10s, 12s.
func age(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%ds", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
