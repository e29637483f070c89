package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ldapmux/ldapmux/internal/ldapwire"
)

// reconnectPause slows a worker down while its server refuses connections.
const reconnectPause = 100 * time.Millisecond

// worker drives one client connection (and, for binds mixed with other
// operations, a second connection used only for binds, so that the first
// keeps its identity).
type worker struct {
	r    *run
	gen  generator
	main *conn
	bind *conn

	mu       sync.Mutex // mu guards the interval counters below
	interval Histogram
	ivOps    uint64
	ivErrs   uint64

	stats [nKinds]kindStats // measured; read after the worker ends
	errs  errorCounts
}

// kindStats are the measurements of one kind of operation.
type kindStats struct {
	hist    *Histogram
	ops     uint64
	errors  uint64
	entries uint64
}

func newWorker(r *run, i uint64) *worker {
	w := &worker{r: r, gen: generator{p: r.plan, mix: r.cfg.Mix, scope: r.cfg.Scope,
		sizeLimit: r.cfg.SizeLimit, draw: NewDraw(r.cfg.Seed + i*0x9e37)}}
	for k, share := range r.cfg.Mix {
		if share > 0 {
			w.stats[k].hist = new(Histogram)
		}
	}
	return w
}

// connect opens the main connection, bound as the configured identity
// unless the load is made of binds only.
func (w *worker) connect(ctx context.Context) error {
	cfg := &w.r.cfg
	dn := cfg.BindDN
	if cfg.Mix.only(Bind) {
		dn = ""
	}
	c, err := dial(ctx, w.r.addr, dn, cfg.Password, cfg.Timeout)
	if err != nil {
		return err
	}
	w.setConn(&w.main, c)
	return nil
}

// setConn stores a new connection; the owning goroutine reads the fields
// without the lock, closeConns reads them with it.
func (w *worker) setConn(field **conn, c *conn) {
	w.mu.Lock()
	*field = c
	w.mu.Unlock()
}

// connFor returns the connection an operation of kind k goes on, opening
// it when needed.
func (w *worker) connFor(ctx context.Context, k Kind) (*conn, error) {
	if k == Bind && !w.r.cfg.Mix.only(Bind) {
		if w.bind == nil {
			c, err := dial(ctx, w.r.addr, "", "", w.r.cfg.Timeout)
			if err != nil {
				return nil, err
			}
			w.setConn(&w.bind, c)
		}
		return w.bind, nil
	}
	if w.main == nil {
		if err := w.connect(ctx); err != nil {
			return nil, err
		}
	}
	return w.main, nil
}

// loop sends operations until ctx ends.
func (w *worker) loop(ctx context.Context) {
	defer w.closeConns()
	stop := context.AfterFunc(ctx, w.closeConns)
	defer stop()
	for ctx.Err() == nil && w.r.phase.Load() != stopped {
		w.one(ctx)
	}
}

// one sends one operation and records its outcome.
func (w *worker) one(ctx context.Context) {
	start := time.Now()
	if w.r.pace != nil {
		var ok bool
		if start, ok = w.r.pace.next(ctx); !ok {
			return
		}
	}
	k := w.gen.pick()
	code, entries, err := w.do(ctx, k)
	if ctx.Err() != nil {
		return // interrupted by the end of the run
	}
	w.record(k, time.Since(start), code, entries, err)
	if err != nil {
		sleepCtx(ctx, reconnectPause)
	}
}

// do performs one operation; a connection that failed is dropped.
func (w *worker) do(ctx context.Context, k Kind) (code, entries int, err error) {
	c, err := w.connFor(ctx, k)
	if err != nil {
		return 0, 0, err
	}
	code, entries, err = c.roundTrip(w.gen.encoder(k))
	if err != nil {
		w.drop(c)
	}
	return code, entries, err
}

// drop closes a failed connection so that the next operation reopens it.
func (w *worker) drop(c *conn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c.close()
	if w.main == c {
		w.main = nil
	}
	if w.bind == c {
		w.bind = nil
	}
}

// closeConns closes the worker's connections (also from another goroutine,
// to interrupt a pending read at the end of the run).
func (w *worker) closeConns() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range []*conn{w.main, w.bind} {
		if c != nil {
			c.close()
		}
	}
}

// record counts an operation in the live interval and, while measuring, in
// the measured statistics.
func (w *worker) record(k Kind, d time.Duration, code, entries int, err error) {
	failed := err != nil || !succeeded(k, code)
	w.mu.Lock()
	w.interval.Record(d)
	w.ivOps++
	if failed {
		w.ivErrs++
	}
	w.mu.Unlock()
	if w.r.phase.Load() != measuring {
		return
	}
	st := &w.stats[k]
	st.hist.Record(d)
	st.ops++
	st.entries += uint64(entries)
	if failed {
		st.errors++
		w.errs.add(k, code, err)
	}
}

// succeeded tells the result codes that count as a successful operation.
func succeeded(k Kind, code int) bool {
	if k == Search && code == 4 { // sizeLimitExceeded: entries were returned
		return true
	}
	return code == ldapwire.Success
}

// takeInterval moves the live interval counters into h and resets them.
func (w *worker) takeInterval(h *Histogram) (ops, errs uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h.Merge(&w.interval)
	ops, errs = w.ivOps, w.ivErrs
	w.interval.Reset()
	w.ivOps, w.ivErrs = 0, 0
	return ops, errs
}

// errorCounts counts failures by cause and keeps the first message.
type errorCounts struct {
	byCause map[string]uint64
	first   string
}

func (e *errorCounts) add(k Kind, code int, err error) {
	cause := fmt.Sprintf("%s: %s (%d)", k, ldapwire.ResultName(code), code)
	if err != nil {
		cause = fmt.Sprintf("%s: connection error", k)
	}
	if e.byCause == nil {
		e.byCause = make(map[string]uint64)
	}
	e.byCause[cause]++
	if e.first == "" {
		e.first = cause
		if err != nil {
			e.first = err.Error()
		}
	}
}
