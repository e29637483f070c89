// Command benchrun is what `make bench` runs (through scripts/bench.sh): it
// compares direct slapd, ldapmux and HAProxy under the same LDAP load. Its
// settings are BENCH_* environment variables; see internal/benchrun.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ldapmux/ldapmux/internal/benchrun"
)

func main() {
	o, err := benchrun.OptionsFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	flag.StringVar(&o.Ldapmux, "ldapmux", "bin/ldapmux", "ldapmux binary built from this tree")
	flag.StringVar(&o.HAProxy, "haproxy", "", "haproxy binary (empty: skip HAProxy)")
	flag.StringVar(&o.ProfileBin, "profile-bin", "", "test binary of internal/benchrun, to profile ldapmux (empty: skip)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := benchrun.Run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "benchrun: %v\n", err)
		os.Exit(1)
	}
}
