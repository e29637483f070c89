package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strconv"
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
	users      int
	maxErrors  float64 // percent of operations
}

// demoUsers is how many users `ldapmux demo` loads: bench's default
// templates draw from them, so that it runs against the demo as is.
const demoUsers = 100

// The default templates; {users} is replaced by -users.
const (
	defaultBase      = "uid=user.[1-{users}],ou=people,dc=example,dc=com"
	defaultBindDNs   = "uid=user.[1-{users}],ou=people,dc=example,dc=com"
	defaultBindPWs   = "password.[1-{users}]"
	usersPlaceholder = "{users}"
)

// bench puts LDAP load on a server (ldapmux or a directory server) and
// prints throughput and latency percentiles.
func bench(args []string, stdout, stderr io.Writer) int {
	bf, err := parseBenchFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
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
	} else {
		res.WriteText(stdout)
	}
	if msg := bf.verdict(res); msg != "" {
		fmt.Fprintf(stderr, "ldapmux bench: %s\n", msg)
		return 1
	}
	return 0
}

// verdict says why a run failed: no operation at all, or more errors than
// -max-errors allows; "" when it passed.
func (bf *benchFlags) verdict(res *loadgen.Result) string {
	if res.Operations == 0 {
		return "no operation completed"
	}
	pct := 100 * float64(res.Errors) / float64(res.Operations)
	if pct > bf.maxErrors {
		return fmt.Sprintf("%d errors of %d operations (%.2f%%) exceed -max-errors %g%%", res.Errors, res.Operations, pct, bf.maxErrors)
	}
	return ""
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
		return nil, errors.New("unexpected argument")
	}
	if bf.users < 1 {
		fmt.Fprintf(stderr, "ldapmux bench: -users must be at least 1 (got %d)\n", bf.users)
		return nil, errors.New("bad -users")
	}
	if bf.maxErrors < 0 || bf.maxErrors > 100 {
		fmt.Fprintf(stderr, "ldapmux bench: -max-errors must be a percentage from 0 to 100 (got %g)\n", bf.maxErrors)
		return nil, errors.New("bad -max-errors")
	}
	n := strconv.Itoa(bf.users)
	for _, s := range []*string{&bf.cfg.Base, &bf.cfg.BindDNs, &bf.cfg.BindPasswords} {
		*s = strings.ReplaceAll(*s, usersPlaceholder, n)
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
uid=user.[1-100],...: each operation draws a number (identical ranges in
one operation share it). The default templates draw from the -users sample
users of ldapmux demo (uid=user.N, password.N). A progress line goes to
stderr every second. Exit status 1 when the errors pass -max-errors.

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
	fs.IntVar(&bf.users, "users", demoUsers, "`count` of sample users uid=user.1.. the default templates draw from")
	fs.Float64Var(&bf.maxErrors, "max-errors", 1, "largest share of failed operations, in `percent`, before the exit status is 1")
	fs.StringVar(&c.Base, "b", defaultBase, "search base / modified entry (`template`)")
	fs.StringVar(&bf.scope, "s", "base", "search scope: base, one or sub")
	fs.StringVar(&c.Filter, "f", "(objectClass=*)", "search filter (`template`)")
	fs.StringVar(&bf.attrs, "a", "", "comma-separated `attributes` to return (default all)")
	fs.IntVar(&c.SizeLimit, "z", 0, "search size `limit` (0: none)")
	fs.StringVar(&c.ModifyAttr, "modify-attr", "description", "`attribute` replaced by modifies")
	fs.StringVar(&c.ModifyValue, "modify-value", "bench [0-999999999]", "its new value (`template`)")
	fs.StringVar(&c.BindDNs, "bind-dn", defaultBindDNs, "DN of bind operations (`template`)")
	fs.StringVar(&c.BindPasswords, "bind-pw", defaultBindPWs, "password of bind operations (`template`)")
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
