package route

import (
	"sync"
	"testing"
	"time"

	"github.com/ldapmux/ldapmux/internal/backend"
	"github.com/ldapmux/ldapmux/internal/balancer"
	"github.com/ldapmux/ldapmux/internal/ldapwire"
	"github.com/ldapmux/ldapmux/internal/replpos"
)

// fakePositions are replication positions set by the test; Refresh
// records what it was asked and "reads" the next position set for the
// server.
type fakePositions struct {
	mu        sync.Mutex
	pos       map[int]replpos.Vector
	at        map[int]time.Time
	next      map[int]replpos.Vector // what a refresh reads
	refreshed []int
	clk       *clock
}

func newFakePositions(clk *clock) *fakePositions {
	return &fakePositions{pos: map[int]replpos.Vector{}, at: map[int]time.Time{}, next: map[int]replpos.Vector{}, clk: clk}
}

func (f *fakePositions) Covers(s int, need replpos.Vector) (bool, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos[s].Covers(need), f.at[s]
}

func (f *fakePositions) Position(s int, dst replpos.Vector) (replpos.Vector, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append(dst, f.pos[s]...), f.at[s]
}

func (f *fakePositions) Refresh(s int, after time.Time) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshed = append(f.refreshed, s)
	if n, ok := f.next[s]; ok {
		f.pos[s], f.at[s] = n, f.clk.now()
	}
	c := make(chan struct{})
	close(c)
	return c
}

func (f *fakePositions) set(s int, at time.Time, pos ...replpos.CSN) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pos[s], f.at[s] = pos, at
}

func csnAt(t time.Time, sid int) replpos.CSN { return replpos.CSN{Time: t, SID: sid} }

// ordered is an algorithm returning its servers in a fixed order.
type ordered []int

func (o ordered) Name() string { return "ordered" }
func (o ordered) Candidates(_ *backend.Snapshot, dst []int) []int {
	return append(dst, o...)
}

func replicatedRouter(clk *clock, pos Positions, order ...int) *Router {
	table := NewAffinityTable(0)
	table.Positions = pos
	return &Router{
		Default:  ordered(order),
		Affinity: &Affinity{Kind: ByConnection, UntilReplicated: true, MaxWait: time.Second, Table: table},
		Now:      clk.now,
	}
}

func names(snap *backend.Snapshot, cands []int) []string {
	var out []string
	for _, s := range cands {
		out = append(out, snap.Servers[s].Name)
	}
	return out
}

func TestReadYourWritesRouting(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	snap := snapshot(3)
	pos := newFakePositions(clk)
	r := replicatedRouter(clk, pos, 1, 2, 0) // the algorithm prefers s1, then s2, then s0
	write := &Operation{Tag: ldapwire.OpModifyRequest, ConnID: 7}
	read := func() ([]int, *Operation) {
		op := &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 7}
		got, _ := r.Candidates(snap, op, nil)
		return got, op
	}

	// A client that never wrote: the algorithm's order, no wait.
	if got, op := read(); len(got) != 3 || got[0] != 1 || op.Await.Servers != 0 {
		t.Fatalf("before any write: %v, wait %+v", names(snap, got), op.Await)
	}
	// A failed write records nothing: the proxy only records successes;
	// the write itself is placed by the algorithm, not pinned.
	if got, _ := r.Candidates(snap, write, nil); got[0] != 1 {
		t.Fatalf("write placed on %v", names(snap, got))
	}

	// s0 takes the write with CSN c (serverID 1); s1 and s2 were last
	// read before it.
	before := clk.t.Add(-time.Second)
	pos.set(1, before, csnAt(before, 1))
	pos.set(2, before, csnAt(before, 1))
	clk.advance(time.Millisecond)
	c := csnAt(clk.t, 1)
	r.RecordWrite(write, 0, c, true, clk.t)

	// The preferred s1 may have it: read s1 and s2 again first.
	got, op := read()
	if op.Await.Servers != 1<<1|1<<2 || op.Await.After != clk.t || op.Await.Budget != PositionReadBudget {
		t.Fatalf("stale positions: wait %+v, candidates %v", op.Await, names(snap, got))
	}
	// Read again, s1 still lacks it, s2 has it: the read goes to s2, then
	// the writer; no further wait.
	pos.next[1] = replpos.Vector{csnAt(before, 1)}
	pos.next[2] = replpos.Vector{c}
	if !r.AwaitPositions(&op.Await, time.Now().Add(time.Second)) {
		t.Fatal("AwaitPositions gave up")
	}
	op.Await = PositionWait{}
	got, _ = r.Candidates(snap, op, nil)
	if want := []string{"ds2", "ds0"}; !equalStrings(names(snap, got), want) || op.Await.Servers != 0 {
		t.Fatalf("after reading positions: %v, wait %+v; want %v", names(snap, got), op.Await, want)
	}
	if n := r.Affinity.Table.Stats.Elsewhere.Load(); n != 1 {
		t.Errorf("reads sent elsewhere = %d", n)
	}

	// Known fresh and lacking: no new wait within positionsFresh; the
	// read goes to those that have it.
	clk.advance(positionsFresh / 2)
	if got, op := read(); op.Await.Servers != 0 || got[0] != 2 {
		t.Fatalf("fresh positions: %v, wait %+v", names(snap, got), op.Await)
	}

	// Once every candidate has it, the client is free: the entry goes.
	pos.set(1, clk.t, c)
	if got, op := read(); len(got) != 3 || got[0] != 1 || op.Await.Servers != 0 {
		t.Fatalf("replicated everywhere: %v, wait %+v", names(snap, got), op.Await)
	}
	if r.Affinity.Table.Len() != 0 || r.Affinity.Table.Stats.Replicated.Load() != 1 {
		t.Errorf("entry kept after replication (%d entries)", r.Affinity.Table.Len())
	}
	// Another client was never affected.
	other := &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 8}
	if got, _ := r.Candidates(snap, other, nil); got[0] != 1 {
		t.Errorf("another client's read went to %v", names(snap, got))
	}
}

func TestReadYourWritesToWriterAndLost(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	snap := snapshot(3)
	pos := newFakePositions(clk)
	r := replicatedRouter(clk, pos, 1, 2, 0)
	write := &Operation{Tag: ldapwire.OpDelRequest, ConnID: 7}
	read := &Operation{Tag: ldapwire.OpCompareRequest, ConnID: 7}

	// A delete's CSN is unknown: the writer answers until its position
	// read after the write stands for it.
	r.RecordWrite(write, 0, replpos.CSN{}, false, clk.t)
	got, _ := r.Candidates(snap, read, nil)
	if want := []string{"ds0"}; !equalStrings(names(snap, got), want) || read.Await.Servers != 0 {
		t.Fatalf("unknown CSN: %v, wait %+v", names(snap, got), read.Await)
	}
	if len(pos.refreshed) != 1 || pos.refreshed[0] != 0 {
		t.Errorf("writer's position not read again: %v", pos.refreshed)
	}
	if n := r.Affinity.Table.Stats.ToWriter.Load(); n != 1 {
		t.Errorf("reads to writer = %d", n)
	}
	clk.advance(time.Millisecond)
	c := csnAt(clk.t, 3)
	pos.set(0, clk.t, c)
	pos.set(1, clk.t, c)
	pos.set(2, clk.t, csnAt(clk.t.Add(-time.Hour), 3))
	*read = Operation{Tag: ldapwire.OpCompareRequest, ConnID: 7}
	got, _ = r.Candidates(snap, read, nil)
	if want := []string{"ds1", "ds0"}; !equalStrings(names(snap, got), want) {
		t.Fatalf("resolved from the writer's position: %v, want %v", names(snap, got), want)
	}

	// The writer is down and nobody else has the write: every candidate
	// is read again until the wait ends, then the read is refused.
	r2 := replicatedRouter(clk, pos, 1, 2) // s0 is no candidate
	r2.Affinity.LostWriteTimeout = time.Minute
	r2.RecordWrite(write, 0, csnAt(clk.t.Add(time.Hour), 3), true, clk.t)
	down := withState(snap, 0, backend.Unavailable)
	down.Servers[0].Health.Since = clk.t
	op := &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 7}
	got, _ = r2.Candidates(down, op, nil)
	if op.Await.Servers != 1<<1|1<<2 || op.Await.Budget != time.Second {
		t.Fatalf("writer gone: wait %+v, candidates %v", op.Await, names(down, got))
	}
	op.Await = PositionWait{Forced: true}
	got, _ = r2.Candidates(down, op, nil)
	if len(got) != 0 || op.Await.Lost != "ds0" || r2.Affinity.Table.Stats.Refused.Load() != 1 {
		t.Fatalf("writer gone, wait over: %v, %+v", names(down, got), op.Await)
	}

	// Still down when lost-write-timeout has passed since it went down:
	// the write is given up, the read placed as anyone's, the client freed.
	clk.advance(time.Minute)
	*op = Operation{Tag: ldapwire.OpSearchRequest, ConnID: 7, Await: PositionWait{Forced: true}}
	got, _ = r2.Candidates(down, op, nil)
	if want := []string{"ds1", "ds2"}; !equalStrings(names(down, got), want) || op.Await.Lost != "" || op.Await.GaveUp != "ds0" {
		t.Fatalf("writer down past lost-write-timeout: %v, %+v", names(down, got), op.Await)
	}
	if r2.Affinity.Table.Stats.Lost.Load() != 1 || r2.Affinity.Table.HasWrite(affinityKey{kind: ByConnection, conn: 7}, nil) {
		t.Errorf("the lost write is still remembered (lost %d)", r2.Affinity.Table.Stats.Lost.Load())
	}

	// A writer that is up but no candidate of the read's route does not
	// refuse it: once the wait is over, the read goes to the candidates.
	r3 := replicatedRouter(clk, pos, 1, 2)
	r3.RecordWrite(write, 0, csnAt(clk.t.Add(time.Hour), 3), true, clk.t)
	op = &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 7, Await: PositionWait{Forced: true}}
	got, _ = r3.Candidates(snap, op, nil)
	if want := []string{"ds1", "ds2"}; !equalStrings(names(snap, got), want) || op.Await.Lost != "" {
		t.Fatalf("writer up but no candidate: %v, %+v", names(snap, got), op.Await)
	}
}

// TestReadYourWritesPerScope: writes are remembered per bind DN, per
// client address or per connection, and merged per serverID.
func TestReadYourWritesPerScope(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	snap := snapshot(2)
	pos := newFakePositions(clk)
	r := replicatedRouter(clk, pos, 1, 0)
	r.Affinity.Kind = ByBindDN
	c1, c2 := csnAt(clk.t, 1), csnAt(clk.t, 2)
	r.RecordWrite(&Operation{Tag: ldapwire.OpAddRequest, BindDN: "cn=Alice,dc=x"}, 0, c1, true, clk.t)
	r.RecordWrite(&Operation{Tag: ldapwire.OpModifyDNRequest, BindDN: "cn=alice, dc=x"}, 1, c2, true, clk.t)
	pos.set(0, clk.t, c1, c2)
	pos.set(1, clk.t, c2) // lacks serverID 1's change
	op := &Operation{Tag: ldapwire.OpSearchRequest, BindDN: "CN=alice,DC=x", ConnID: 99}
	got, _ := r.Candidates(snap, op, nil)
	if want := []string{"ds0"}; !equalStrings(names(snap, got), want) {
		t.Fatalf("same DN, another connection: %v, want %v", names(snap, got), want)
	}
	anon := &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 99}
	if got, _ := r.Candidates(snap, anon, nil); len(got) != 2 {
		t.Errorf("anonymous client restricted: %v", names(snap, got))
	}
	if !r.RecordsWrites(&Operation{Tag: ldapwire.OpDelRequest}) || r.RecordsWrites(&Operation{Tag: ldapwire.OpSearchRequest}) {
		t.Error("RecordsWrites")
	}
}

// TestReadYourWritesCostsOneLookup: a client that never wrote is routed
// without allocating.
func TestReadYourWritesCostsOneLookup(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	snap := snapshot(3)
	r := replicatedRouter(clk, newFakePositions(clk), 0, 1, 2)
	r.Default = &balancer.RoundRobin{Tiers: balancer.Flat(seq(3))}
	op := &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 1}
	var buf [16]int
	if n := testing.AllocsPerRun(100, func() { r.Candidates(snap, op, buf[:0]) }); n != 0 {
		t.Errorf("routing a client that never wrote allocates %v times", n)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// BenchmarkRouterUntilReplicated routes reads of a client that never wrote
// (one lookup) and of one whose write every candidate is known to have
// (placed like anyone's, then freed: the record is set again each time).
func BenchmarkRouterUntilReplicated(b *testing.B) {
	clk := &clock{t: time.Unix(1000, 0)}
	snap := snapshot(3)
	pos := newFakePositions(clk)
	r := replicatedRouter(clk, pos, 0, 1, 2)
	read := &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 1}
	var buf [16]int
	b.Run("never wrote", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Candidates(snap, read, buf[:0])
		}
	})
	c := csnAt(clk.t, 1)
	for s := range 3 {
		pos.set(s, clk.t, c)
	}
	write := &Operation{Tag: ldapwire.OpAddRequest, ConnID: 1}
	b.Run("wrote, known everywhere", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.RecordWrite(write, 0, c, true, clk.t)
			r.Candidates(snap, read, buf[:0])
		}
	})
}

// TestReadYourWritesFreedOnlyEverywhere: a client is freed only once every
// usable server has its write, not just the candidates of one route.
func TestReadYourWritesFreedOnlyEverywhere(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	snap := snapshot(3)
	pos := newFakePositions(clk)
	r := replicatedRouter(clk, pos, 1, 2) // this route never uses s0
	c := csnAt(clk.t, 1)
	r.RecordWrite(&Operation{Tag: ldapwire.OpAddRequest, ConnID: 7}, 1, c, true, clk.t)
	pos.set(2, clk.t, c)
	pos.set(0, clk.t, csnAt(clk.t.Add(-time.Second), 1))
	read := func() []int {
		got, _ := r.Candidates(snap, &Operation{Tag: ldapwire.OpSearchRequest, ConnID: 7}, nil)
		return got
	}
	if got := read(); len(got) != 2 || r.Affinity.Table.Len() != 1 {
		t.Fatalf("candidates %v, %d entries: want both candidates and the client still recorded", names(snap, got), r.Affinity.Table.Len())
	}
	pos.set(0, clk.t, c)
	read()
	if r.Affinity.Table.Len() != 0 {
		t.Error("not freed once every server had the write")
	}
}
