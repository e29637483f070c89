package frontend

import (
	"sync/atomic"
	"testing"
)

// The backlog counts what is queued until it is written: past high a
// leased connection waits, and is resumed once, when it falls under low;
// one asking while it is under low, or once the queue is closed, goes on
// at once.
func TestOutQueueBacklog(t *testing.T) {
	q := newOutQueue(4 << 20) // high: 1 MiB, low: 512 KiB
	if q.high != 1<<20 || q.low != 512<<10 {
		t.Fatalf("high %d, low %d", q.high, q.low)
	}
	frame := make([]byte, 64<<10)
	for range 16 {
		if !q.push(frame) {
			t.Fatal("push refused under the limit")
		}
	}
	if !q.backlogged() {
		t.Fatalf("backlog %d not past high", q.backlog.Load())
	}
	var resumed atomic.Int32
	q.whenDrained(func() { resumed.Add(1) })
	b := q.take(nil) // a writer takes the queue: still not written
	if resumed.Load() != 0 || !q.backlogged() {
		t.Fatal("resumed before anything was written")
	}
	q.written(len(b) / 2) // 512 KiB left: not under low yet
	if resumed.Load() != 0 {
		t.Fatal("resumed at low")
	}
	q.written(1)
	if resumed.Load() != 1 {
		t.Fatalf("resumed %d times once under low, want 1", resumed.Load())
	}
	q.written(len(b)/2 - 1)
	if got := q.backlog.Load(); got != 0 || resumed.Load() != 1 {
		t.Fatalf("backlog %d, resumed %d times", got, resumed.Load())
	}
	q.whenDrained(func() { resumed.Add(1) }) // under low: at once
	if resumed.Load() != 2 {
		t.Fatal("not resumed at once under low")
	}

	for range 16 {
		q.push(frame)
	}
	q.whenDrained(func() { resumed.Add(1) })
	q.close()
	if resumed.Load() != 3 {
		t.Fatal("a waiting connection was not resumed when the client went away")
	}
	q.whenDrained(func() { resumed.Add(1) })
	if resumed.Load() != 4 {
		t.Fatal("not resumed at once on a closed queue")
	}
}

// The default bounds: 1 MiB, or a quarter of a smaller limit.
func TestOutQueueBacklogBounds(t *testing.T) {
	for limit, high := range map[int]int64{0: 1 << 20, 32 << 20: 1 << 20, 1 << 20: 256 << 10} {
		if q := newOutQueue(limit); q.high != high || q.low != high/2 {
			t.Errorf("limit %d: high %d, low %d; want %d, %d", limit, q.high, q.low, high, high/2)
		}
	}
}
