package replpos

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustCSN(t *testing.T, s string) CSN {
	t.Helper()
	c, err := ParseCSN([]byte(s))
	if err != nil {
		t.Fatalf("ParseCSN(%q): %v", s, err)
	}
	return c
}

func TestParseCSN(t *testing.T) {
	c := mustCSN(t, "20261204213000.123456Z#00000a#002#000001")
	want := CSN{Time: time.Date(2026, 12, 4, 21, 30, 0, 123456000, time.UTC), Count: 10, SID: 2, Mod: 1}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if c := mustCSN(t, "20261204213000Z#000000#fff#000000"); c.SID != 0xfff || c.Time.Nanosecond() != 0 {
		t.Errorf("no fraction: %+v", c)
	}
	for _, bad := range []string{"", "20261204213000.123456Z#000000#001", "2026120421300.1Z#0#1#0", "20261204213000.Z#0#1#0",
		"20261204213000.1Z#0#1#0x", "20261204213000.1Z#0##0", "20261204213000.1#0#1#0"} {
		if _, err := ParseCSN([]byte(bad)); err == nil {
			t.Errorf("ParseCSN(%q) accepted", bad)
		}
	}
	b := []byte("20261204213000.123456Z#00000a#002#000001")
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseCSN(b) }); n != 0 {
		t.Errorf("ParseCSN allocates %v times", n)
	}
}

// TestVectorPerServerID: a position includes a change only through a CSN
// of the change's own serverID, at or past it.
func TestVectorPerServerID(t *testing.T) {
	early := mustCSN(t, "20261204213000.000001Z#000000#001#000000")
	late := mustCSN(t, "20261204213000.000002Z#000000#001#000000")
	lateMod := mustCSN(t, "20261204213000.000002Z#000000#001#000001")
	other := mustCSN(t, "20261204213005.000000Z#000000#002#000000")
	pos := Vector{late, other}
	switch {
	case !pos.Has(early), !pos.Has(late):
		t.Error("a position misses changes at or before its CSN")
	case pos.Has(lateMod):
		t.Error("a position has a later modification of the same change time")
	case (Vector{other}).Has(early):
		t.Error("a newer CSN of another serverID counts")
	case !pos.Covers(Vector{early, other}) || pos.Covers(Vector{lateMod}):
		t.Error("Covers")
	}
	v := Vector{early}.Merge(late).Merge(early).Merge(other)
	if len(v) != 2 || v[0] != late || v[1] != other {
		t.Errorf("Merge = %+v", v)
	}
}

// TestTrackerRefresh: at most one read per server at a time; a read that
// started early enough serves every caller; a caller needing a later read
// gets exactly one more.
func TestTrackerRefresh(t *testing.T) {
	release := make(chan struct{})
	var reads atomic.Int32
	c1 := mustCSN(t, "20261204213000.000001Z#000000#001#000000")
	tr := NewTracker(func(ctx context.Context, server int) (Vector, error) {
		reads.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return Vector{c1}, nil
	}, 5*time.Second)
	t0 := time.Now()
	a := tr.Refresh(1, t0.Add(-time.Hour))
	b := tr.Refresh(1, t0.Add(-time.Hour))
	if a != b {
		t.Error("two callers started two reads")
	}
	later := tr.Refresh(1, time.Now().Add(time.Millisecond)) // after the running read started
	if later == a {
		t.Error("a read that started too early serves a caller needing a later one")
	}
	if tr.Refresh(1, time.Now().Add(time.Millisecond)) != later {
		t.Error("a second late caller started a third read")
	}
	release <- struct{}{}
	<-a
	if has, at := tr.Covers(1, Vector{c1}); !has || at.Before(t0) {
		t.Errorf("after a read: has %v at %v", has, at)
	}
	release <- struct{}{}
	<-later
	if n := reads.Load(); n != 2 {
		t.Errorf("%d reads, want 2", n)
	}
	select {
	case <-tr.Refresh(1, t0):
	default:
		t.Error("a fresh enough position is read again")
	}
	if has, _ := tr.Covers(2, Vector{c1}); has {
		t.Error("an unknown server has a change")
	}
}

func TestTrackerReportAndFailure(t *testing.T) {
	c1 := mustCSN(t, "20261204213000.000001Z#000000#001#000000")
	c2 := mustCSN(t, "20261204213001.000000Z#000000#001#000000")
	var mu sync.Mutex
	fail := true
	tr := NewTracker(func(ctx context.Context, server int) (Vector, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return nil, errors.New("down")
		}
		return Vector{c1}, nil
	}, time.Second)
	now := time.Now()
	tr.Report(0, []CSN{c2}, now)
	tr.Report(0, []CSN{c1}, now.Add(-time.Second)) // older report: keeps c2
	if has, at := tr.Covers(0, Vector{c2}); !has || !at.Equal(now) {
		t.Errorf("report: has %v at %v", has, at)
	}
	<-tr.Refresh(3, time.Now())
	if started, failed := tr.Reads(); started != 1 || failed != 1 {
		t.Errorf("reads %d failed %d", started, failed)
	}
	if _, at := tr.Covers(3, Vector{c1}); !at.IsZero() {
		t.Error("a failed read counts as known")
	}
	if ages := tr.Ages(now.Add(time.Second)); len(ages) != 1 || ages[0] != time.Second {
		t.Errorf("ages %v, want server 0 one second old", ages)
	}
}
