package benchrun

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/app"
	"github.com/ldapmux/ldapmux/internal/config"
)

// TestServeForProfile runs ldapmux inside the test binary, from the
// configuration file named by LDAPMUX_PROFILE_CONFIG, until SIGTERM. Run
// the compiled test binary with -test.cpuprofile and -test.memprofile while
// an external load generator drives it, and the profiles hold the proxy
// alone (ldapmux has no pprof endpoint). Skipped unless the variable is set.
func TestServeForProfile(t *testing.T) {
	path := os.Getenv("LDAPMUX_PROFILE_CONFIG")
	if path == "" {
		t.Skip("LDAPMUX_PROFILE_CONFIG not set: this is the profiling harness of make bench (BENCH_PROFILE=1)")
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	drain, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a.Shutdown(drain)
}
