// Command ldapmux is an LDAP directory proxy: it speaks LDAPv3 to clients and
// forwards every operation to one of several backend directory servers,
// chosen per operation by health and a load-balancing algorithm.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ldapmux/ldapmux/internal/buildinfo"
)

const usage = `usage: ldapmux <command> [flags]

commands (each prints its flags with -h):
  serve -config FILE         run the proxy until SIGINT/SIGTERM (SIGHUP reloads)
  reload -admin ADDR         reload a running proxy's configuration (or -config FILE, -pid-file FILE)
  status -admin ADDR         show a running proxy's servers (-wide: reasons whole; -json)
  check-config FILE          validate a configuration (exit 0 when valid, 2 otherwise)
  demo                       run three local slapd replicas with ldapmux in front
  example-config             print a complete, commented configuration
  bench [flags]              put LDAP load on a server and report throughput and latency
  version                    print the version, source revision and Go version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "reload":
		return reloadCmd(args[1:], stdout, stderr)
	case "status":
		return statusCmd(args[1:], stdout, stderr)
	case "check-config":
		return checkConfig(args[1:], stdout, stderr)
	case "demo":
		return demo(args[1:], stdout, stderr)
	case "bench":
		return bench(args[1:], stdout, stderr)
	case "example-config":
		return exampleConfig(stdout)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, buildinfo.Get())
		return 0
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "ldapmux: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// parseFailed is the exit status after a flag set's Parse failed: 0 when
// help was asked for (-h, -help: the flags were printed), 2 otherwise.
func parseFailed(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
