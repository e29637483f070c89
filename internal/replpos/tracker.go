package replpos

import (
	"context"
	"sync"
	"time"
)

// Reader reads the replication position of a server (by snapshot index).
type Reader func(ctx context.Context, server int) (Vector, error)

// Tracker holds the newest replication position known of each server,
// from the replication-backlog checks (Report) and from reads of its own
// (Refresh): at most one read runs per server at a time, and a read that
// started after the time a caller needs serves every caller needing it.
// It is safe for concurrent use.
type Tracker struct {
	read    Reader
	timeout time.Duration
	now     func() time.Time

	mu      sync.Mutex // mu guards the fields below
	servers map[int]*known
	reads   int64 // reads started by Refresh
	failed  int64 // of which failed
}

// known is what the tracker knows of one server.
type known struct {
	pos     Vector
	at      time.Time // when pos was read; zero: never
	running bool
	started time.Time     // of the running read
	done    chan struct{} // closed when the running read ends
	next    chan struct{} // for callers needing a read started after the running one
}

// NewTracker makes a tracker whose reads use read, each bounded by
// timeout.
func NewTracker(read Reader, timeout time.Duration) *Tracker {
	return &Tracker{read: read, timeout: timeout, now: time.Now, servers: map[int]*known{}}
}

// server returns the record of server. Caller must hold mu.
func (t *Tracker) server(server int) *known {
	k := t.servers[server]
	if k == nil {
		k = &known{}
		t.servers[server] = k
	}
	return k
}

// Report records server's position read at at. Positions only grow: a
// report older than what is known raises nothing it already has.
func (t *Tracker) Report(server int, pos []CSN, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.server(server)
	for _, c := range pos {
		k.pos = k.pos.Merge(c)
	}
	if at.After(k.at) {
		k.at = at
	}
}

// Covers reports whether server is known to have applied every change of
// need, and when what is known of it was read (zero: never).
func (t *Tracker) Covers(server int, need Vector) (has bool, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.servers[server]
	if k == nil {
		return false, time.Time{}
	}
	return k.pos.Covers(need), k.at
}

// Position appends server's known position to dst and returns it with the
// time it was read.
func (t *Tracker) Position(server int, dst Vector) (Vector, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.servers[server]
	if k == nil {
		return dst, time.Time{}
	}
	return append(dst, k.pos...), k.at
}

// Refresh makes sure a read of server's position that started at or after
// after has ended or will: the returned channel is closed when it has,
// successfully or not. A read already running that started in time is
// shared; one that started too early is followed by one more.
func (t *Tracker) Refresh(server int, after time.Time) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.server(server)
	switch {
	case !k.at.Before(after):
		return closed
	case k.running && !k.started.Before(after):
		return k.done
	case k.running:
		if k.next == nil {
			k.next = make(chan struct{})
		}
		return k.next
	}
	done := make(chan struct{})
	t.start(server, k, done)
	return done
}

// closed is a channel that is always ready.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// start begins a read of server that closes done. Caller must hold mu.
func (t *Tracker) start(server int, k *known, done chan struct{}) {
	k.running, k.started, k.done = true, t.now(), done
	t.reads++
	go t.run(server, k.started)
}

// run reads server's position, records it and starts the read waited for
// next, if any.
func (t *Tracker) run(server int, started time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	pos, err := t.read(ctx, server)
	cancel()
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.servers[server]
	if err == nil {
		for _, c := range pos {
			k.pos = k.pos.Merge(c)
		}
		if started.After(k.at) {
			k.at = started
		}
	} else {
		t.failed++
	}
	close(k.done)
	k.running, k.done = false, nil
	if next := k.next; next != nil {
		k.next = nil
		t.start(server, k, next)
	}
}

// Ages returns the age, at now, of what is known of each server that was
// read at least once.
func (t *Tracker) Ages(now time.Time) map[int]time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	ages := map[int]time.Duration{}
	for s, k := range t.servers {
		if !k.at.IsZero() {
			ages[s] = now.Sub(k.at)
		}
	}
	return ages
}

// Reads reports how many reads Refresh started and how many failed.
func (t *Tracker) Reads() (started, failed int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reads, t.failed
}
