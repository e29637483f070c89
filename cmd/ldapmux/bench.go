package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ldapmux/ldapmux/internal/loadgen"
)

// benchFlags are the command-line settings of `ldapmux bench`.
type benchFlags struct {
	cfg        loadgen.Config
	mode, mix  string
	scope      string
	attrs      string
	jsonOutput bool
	quiet      bool
}

// bench puts LDAP load on a server (ldapmux or a directory server) and
// prints throughput and latency percentiles.
func bench(args []string, stdout, stderr io.Writer) int {
	bf, err := parseBenchFlags(args, stderr)
	if err != nil {
		return 2
	}
	if !bf.quiet {
		bf.cfg.Progress = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Run(ctx, bf.cfg)
	if err != nil {
		fmt.Fprintf(stderr, "ldapmux bench: %v\n", err)
		return 1
	}
	if bf.jsonOutput {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		return 0
	}
	res.WriteText(stdout)
	return 0
}

func parseBenchFlags(args []string, stderr io.Writer) (*benchFlags, error) {
	bf := &benchFlags{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	bf.define(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ldapmux bench: unexpected argument %q\n", fs.Arg(0))
		return nil, flag.ErrHelp
	}
	if err := bf.resolve(); err != nil {
		fmt.Fprintf(stderr, "ldapmux bench: %v\n", err)
		return nil, err
	}
	return bf, nil
}

const benchUsage = `usage: ldapmux bench [flags]

Puts LDAP load on a server: -c connections, each with one operation
outstanding, for -d after -warmup. Templates may hold numeric ranges such as
uid=user.[1-10000],...: each operation draws a number (identical ranges in
one operation share it). A progress line goes to stderr every second.

`

func (bf *benchFlags) define(fs *flag.FlagSet) {
	c := &bf.cfg
	fs.StringVar(&c.URL, "H", "ldap://127.0.0.1:1389", "server `URL` (ldap://host:port)")
	fs.StringVar(&c.BindDN, "D", "", "bind `DN` of the search and modify connections (default anonymous)")
	fs.StringVar(&c.Password, "w", "", "`password` of -D")
	fs.IntVar(&c.Conns, "c", 8, "client `connections`")
	fs.DurationVar(&c.Duration, "d", 10*time.Second, "measured `duration`")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "load before measuring, not counted")
	fs.Float64Var(&c.Rate, "rate", 0, "target `ops/s` over all connections (0: as fast as possible)")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "per-operation timeout")
	fs.StringVar(&bf.mode, "mode", "search", "search, modify, bind or mixed")
	fs.StringVar(&bf.mix, "mix", "search=80,modify=10,bind=10", "shares of operations with -mode mixed")
	fs.StringVar(&c.Base, "b", "uid=user.[1-10000],ou=people,dc=example,dc=com", "search base / modified entry (`template`)")
	fs.StringVar(&bf.scope, "s", "base", "search scope: base, one or sub")
	fs.StringVar(&c.Filter, "f", "(objectClass=*)", "search filter (`template`)")
	fs.StringVar(&bf.attrs, "a", "", "comma-separated `attributes` to return (default all)")
	fs.IntVar(&c.SizeLimit, "z", 0, "search size `limit` (0: none)")
	fs.StringVar(&c.ModifyAttr, "modify-attr", "description", "`attribute` replaced by modifies")
	fs.StringVar(&c.ModifyValue, "modify-value", "bench [0-999999999]", "its new value (`template`)")
	fs.StringVar(&c.BindDNs, "bind-dn", "uid=user.[1-10000],ou=people,dc=example,dc=com", "DN of bind operations (`template`)")
	fs.StringVar(&c.BindPasswords, "bind-pw", "password.[1-10000]", "password of bind operations (`template`)")
	fs.BoolVar(&bf.jsonOutput, "json", false, "print the summary as JSON")
	fs.BoolVar(&bf.quiet, "q", false, "no progress lines")
}

// resolve turns the string flags into the load configuration.
func (bf *benchFlags) resolve() error {
	mix, err := modeMix(bf.mode, bf.mix)
	if err != nil {
		return err
	}
	bf.cfg.Mix = mix
	if bf.cfg.Scope, err = parseScope(bf.scope); err != nil {
		return err
	}
	if bf.attrs != "" {
		bf.cfg.Attrs = strings.Split(bf.attrs, ",")
	}
	return nil
}

func modeMix(mode, mix string) (loadgen.Mix, error) {
	switch mode {
	case "search", "modify", "bind":
		return loadgen.ParseMix(mode)
	case "mixed":
		return loadgen.ParseMix(mix)
	}
	return loadgen.Mix{}, fmt.Errorf("unknown -mode %q (use search, modify, bind or mixed)", mode)
}

func parseScope(s string) (int, error) {
	switch s {
	case "base":
		return loadgen.ScopeBase, nil
	case "one":
		return loadgen.ScopeOne, nil
	case "sub":
		return loadgen.ScopeSub, nil
	}
	return 0, fmt.Errorf("unknown scope -s %q (use base, one or sub)", s)
}
