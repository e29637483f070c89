package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/config"
)

// serve runs the proxy until SIGINT or SIGTERM, then drains; SIGHUP
// reloads the configuration.
func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	pidFile := fs.String("pid-file", "", "write the process ID to this file (for ldapmux reload -pid-file)")
	if err := fs.Parse(args); err != nil {
		return parseFailed(err)
	}
	if *path == "" {
		fmt.Fprintln(stderr, "ldapmux serve: -config FILE is required (see: ldapmux example-config)")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigError(stderr, *path, err)
		return 2
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := notifyReload()
	a, err := app.New(cfg, log)
	if err == nil {
		err = a.Start(ctx)
	}
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	defer writePIDFile(*pidFile, log)()
	a.SetConfigFile(*path, setLogLevel)
	serveUntilDone(ctx, a, *path, hup)
	log.Info("shutting down", "grace-period", cfg.ShutdownGracePeriod.D())
	drain, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGracePeriod.D())
	defer cancel()
	a.Shutdown(drain)
	log.Info("stopped")
	return 0
}

// newLogger builds the process logger from the log settings.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	setLogLevel(cfg)
	opts := &slog.HandlerOptions{Level: &logLevel}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// checkConfig validates a configuration and lists every problem.
func checkConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML); or give it as the argument")
	if err := fs.Parse(args); err != nil {
		return parseFailed(err)
	}
	switch {
	case fs.NArg() > 1 || fs.NArg() == 1 && *path != "":
		fmt.Fprintln(stderr, "ldapmux check-config: give one configuration file: check-config FILE or check-config -config FILE")
		return 2
	case fs.NArg() == 1:
		*path = fs.Arg(0)
	case *path == "":
		fmt.Fprintln(stderr, "ldapmux check-config: a configuration file is required: check-config FILE")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigError(stderr, *path, err)
		return 2
	}
	fmt.Fprintf(stdout, "%s: valid (%d listeners, %d servers)\n", *path, len(cfg.Listen), len(cfg.Servers))
	return 0
}

func printConfigError(w io.Writer, path string, err error) {
	var problems config.Problems
	if errors.As(err, &problems) {
		fmt.Fprintf(w, "%s: %d problem(s):\n", path, len(problems))
		for _, p := range problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
		return
	}
	fmt.Fprintf(w, "ldapmux: %v\n", err)
}

func exampleConfig(w io.Writer) int {
	w.Write(config.Example)
	return 0
}
