package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ldapmux/ldapmux/internal/admin"
	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/config"
)

// logLevel is the process log level; a reload may change it.
var logLevel slog.LevelVar

// setLogLevel applies cfg's log level.
func setLogLevel(cfg *config.Config) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	logLevel.Set(level)
}

// notifyReload catches SIGHUP from now on (before, it would end the process).
func notifyReload() chan os.Signal {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}

// serveUntilDone waits for ctx's end (SIGINT, SIGTERM), rereading the
// configuration file on every SIGHUP; ReloadFile logs the outcome.
func serveUntilDone(ctx context.Context, a *app.App, path string, hup chan os.Signal) {
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = a.ReloadFile(path)
		}
	}
}

// writePIDFile writes the process ID to path (if set) and returns the
// function that removes it.
func writePIDFile(path string, log *slog.Logger) func() {
	if path == "" {
		return func() {}
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		log.Warn("cannot write the pid file", "file", path, "err", err)
		return func() {}
	}
	return func() { os.Remove(path) }
}

// reloadCmd asks a running proxy to reload its configuration file: through
// its admin listener (which reports the outcome) or with SIGHUP.
func reloadCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var af adminFlags
	af.register(fs, "")
	path := fs.String("config", "", "configuration file: checked first, then its admin section (address, tls, token-file) is used")
	pidFile := fs.String("pid-file", "", "send SIGHUP to the process whose ID this file holds (see serve -pid-file)")
	if err := fs.Parse(args); err != nil {
		return parseFailed(err)
	}
	switch {
	case *pidFile != "":
		return signalReload(*pidFile, stdout, stderr)
	case *path != "":
		cfg, err := config.Load(*path)
		if err != nil {
			printConfigError(stderr, *path, err)
			return 2
		}
		if cfg.Admin.Address == "" && af.addr == "" {
			fmt.Fprintf(stderr, "ldapmux reload: %s sets no admin.address; use -admin or -pid-file\n", *path)
			return 2
		}
		af.fromConfig(cfg)
	case af.addr == "":
		fmt.Fprintln(stderr, "ldapmux reload: give -admin HOST:PORT, -config FILE or -pid-file FILE")
		return 2
	}
	client, err := af.client(time.Minute)
	if err != nil {
		fmt.Fprintf(stderr, "ldapmux reload: %v\n", err)
		return 2
	}
	return postReload(client, af.addr, stdout, stderr)
}

// postReload reloads through POST /api/reload.
func postReload(client *adminClient, addr string, stdout, stderr io.Writer) int {
	resp, err := client.do(http.MethodPost, "/api/reload")
	if err != nil {
		fmt.Fprintf(stderr, "ldapmux reload: %s\n", adminError(err, addr))
		return 1
	}
	defer resp.Body.Close()
	var res admin.ReloadResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		fmt.Fprintf(stderr, "ldapmux reload: unexpected answer (%s): %v\n", resp.Status, err)
		return 1
	}
	if !res.OK {
		fmt.Fprintf(stderr, "ldapmux reload: refused; the running configuration stays:\n%s\n", res.Error)
		return 1
	}
	fmt.Fprintln(stdout, "configuration reloaded")
	return 0
}

// signalReload sends SIGHUP to the process named by a pid file.
func signalReload(pidFile string, stdout, stderr io.Writer) int {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		fmt.Fprintf(stderr, "ldapmux reload: %v\n", err)
		return 1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err == nil && pid <= 0 {
		err = errors.New("not a process ID")
	}
	if err == nil {
		err = syscall.Kill(pid, syscall.SIGHUP)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ldapmux reload: pid file %s: %v\n", pidFile, err)
		return 1
	}
	fmt.Fprintf(stdout, "sent SIGHUP to process %d; its log tells whether the configuration was applied\n", pid)
	return 0
}
