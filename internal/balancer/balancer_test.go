package balancer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// srv describes one server of a test snapshot.
type srv struct {
	state       backend.State
	score       int
	weight      int
	outstanding int
}

// snapshot builds a snapshot of servers named ds0, ds1, ...
func snapshot(t testing.TB, servers ...srv) *backend.Snapshot {
	t.Helper()
	snap := &backend.Snapshot{}
	for i, s := range servers {
		bs := &backend.Server{Index: i, Name: fmt.Sprintf("ds%d", i), Weight: s.weight}
		for range s.outstanding {
			t.Cleanup(bs.Begin())
		}
		snap.Servers = append(snap.Servers, backend.ServerView{Server: bs, Health: backend.Health{State: s.state, Score: s.score}})
	}
	return snap
}

// seeded is a deterministic Rand; it is safe for concurrent use.
func seeded(seed uint64) Rand {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed))
	return func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		return r.IntN(n)
	}
}

// fixed is a Rand that always answers the same (clamped) value.
func fixed(v int) Rand { return func(n int) int { return min(v, n-1) } }

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

var (
	av  = srv{state: backend.Available, score: 10, weight: 1}
	deg = srv{state: backend.Degraded, score: 10, weight: 1}
	un  = srv{state: backend.Unavailable, score: 10, weight: 1}
)

func TestFailover(t *testing.T) {
	tests := []struct {
		name    string
		servers []srv
		tiers   Tiers
		want    []int
	}{
		{"list order", []srv{av, av, av}, Flat([]int{0, 1, 2}), []int{0, 1, 2}},
		{"configured order", []srv{av, av, av}, Flat([]int{2, 0, 1}), []int{2, 0, 1}},
		{"subset", []srv{av, av, av}, Flat([]int{1, 2}), []int{1, 2}},
		{"skips unavailable", []srv{un, av, av}, Flat([]int{0, 1, 2}), []int{1, 2}},
		{"degraded last", []srv{deg, av, un, av}, Flat([]int{0, 1, 2, 3}), []int{1, 3, 0}},
		{"none usable", []srv{un, un}, Flat([]int{0, 1}), nil},
		{"tiers: local first", []srv{av, av, av, av}, Tiers{Groups: [][]int{{2, 3}, {0}, {1}}}, []int{2, 3, 0, 1}},
		{"tiers: available remote beats degraded local", []srv{av, av, deg, av},
			Tiers{Groups: [][]int{{2, 3}, {0}, {1}}}, []int{3, 0, 1, 2}},
		{"tiers: degraded local first when preferred", []srv{av, av, deg, un},
			Tiers{Groups: [][]int{{2, 3}, {0}, {1}}, DegradedFirst: true}, []int{2, 0, 1}},
		{"tiers: degraded first keeps available first within a tier", []srv{deg, av, av, deg},
			Tiers{Groups: [][]int{{0, 1}, {2, 3}}, DegradedFirst: true}, []int{1, 0, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Failover{Tiers: tt.tiers}.Candidates(snapshot(t, tt.servers...), nil)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFewestOps(t *testing.T) {
	busy := func(s srv, n int) srv { s.outstanding = n; return s }
	tests := []struct {
		name    string
		servers []srv
		rnd     Rand
		want    []int
	}{
		{"fewest first", []srv{busy(av, 3), busy(av, 1), busy(av, 2)}, fixed(0), []int{1, 2, 0}},
		{"degraded after available", []srv{busy(av, 5), busy(deg, 0), busy(av, 4)}, fixed(0), []int{2, 0, 1}},
		{"never unavailable", []srv{busy(un, 0), busy(av, 9)}, fixed(0), []int{1}},
		// Fisher-Yates with j=0 turns [0 1 2] into [1 2 0]; ties keep that order.
		{"ties random (draw 0)", []srv{av, av, av}, fixed(0), []int{1, 2, 0}},
		{"ties random (draw max)", []srv{av, av, av}, fixed(99), []int{0, 1, 2}},
		{"ties only among the least busy", []srv{busy(av, 1), av, av}, fixed(0), []int{1, 2, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &FewestOps{Tiers: Flat(seq(len(tt.servers))), Rand: tt.rnd}
			got := f.Candidates(snapshot(t, tt.servers...), nil)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestFewestOpsIdleTiesSpread is the lightly loaded case: with nothing
// outstanding, the first listed server must not get most operations.
func TestFewestOpsIdleTiesSpread(t *testing.T) {
	snap := snapshot(t, av, av, av)
	f := &FewestOps{Tiers: Flat(seq(3)), Rand: seeded(1)}
	counts := firstChoices(snap, f, 3000)
	for i, c := range counts {
		if c < 900 || c > 1100 {
			t.Errorf("server %d first %d times of 3000: %v", i, c, counts)
		}
	}
}

func TestRoundRobin(t *testing.T) {
	snap := snapshot(t, av, av, un, av, deg)
	r := &RoundRobin{Tiers: Flat(seq(5))}
	want := [][]int{{0, 1, 3, 4}, {1, 3, 0, 4}, {3, 0, 1, 4}, {0, 1, 3, 4}}
	for i, w := range want {
		if got := r.Candidates(snap, nil); !slices.Equal(got, w) {
			t.Errorf("call %d: got %v, want %v", i, got, w)
		}
	}
}

func TestWeighted(t *testing.T) {
	heavy := av
	heavy.weight = 2
	snap := snapshot(t, av, av, heavy, un)
	w := &Weighted{Tiers: Flat(seq(4)), Rand: fixed(0)}
	if got := w.Candidates(snap, nil); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("draws of 0: got %v", got)
	}
	w.Rand = fixed(3) // the last quarter of the total weight 4: server 2
	if got := w.Candidates(snap, nil); got[0] != 2 || len(got) != 3 {
		t.Errorf("draw of 3: got %v", got)
	}
	w.Rand = seeded(2)
	checkShares(t, firstChoices(snap, w, 8000), []float64{0.25, 0.25, 0.5, 0})
}

func TestHealthWeighted(t *testing.T) {
	low := av
	low.score = 5
	lowDeg := deg
	lowDeg.score = 1
	snap := snapshot(t, av, low, low, lowDeg, un)
	h := &HealthWeighted{Tiers: Flat(seq(5)), Rand: seeded(3)}
	checkShares(t, firstChoices(snap, h, 8000), []float64{0.5, 0.25, 0.25, 0, 0})
	for range 100 {
		if got := h.Candidates(snap, nil); len(got) != 4 || got[3] != 3 {
			t.Fatalf("degraded server not last: %v", got)
		}
	}
}

// TestEveryAlgorithmRespectsStates checks the contract shared by all
// algorithms over random snapshots: usable servers only, each once, every
// available one before any degraded one.
func TestEveryAlgorithmRespectsStates(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	states := []srv{av, deg, un}
	for _, kind := range Kinds {
		for range 200 {
			servers := make([]srv, 1+r.IntN(6))
			for i := range servers {
				servers[i] = states[r.IntN(3)]
				servers[i].outstanding = r.IntN(3)
				servers[i].score = 1 + r.IntN(10)
			}
			snap := snapshot(t, servers...)
			alg, err := New(kind, Flat(seq(len(servers))), seeded(5))
			if err != nil {
				t.Fatal(err)
			}
			checkContract(t, kind, snap, alg.Candidates(snap, nil))
		}
	}
	if _, err := New("random", Flat(nil), nil); err == nil {
		t.Error("New(random) succeeded")
	}
}

func checkContract(t *testing.T, kind string, snap *backend.Snapshot, got []int) {
	t.Helper()
	var want []int
	for i, s := range snap.Servers {
		if s.Usable() {
			want = append(want, i)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Fatalf("%s: candidates %v, usable %v", kind, got, want)
	}
	for i := 1; i < len(got); i++ {
		if snap.Servers[got[i]].Health.State < snap.Servers[got[i-1]].Health.State {
			t.Fatalf("%s: %v puts a degraded server before an available one", kind, got)
		}
	}
}

// firstChoices counts how often each server comes first in n calls.
func firstChoices(snap *backend.Snapshot, alg Algorithm, n int) []int {
	counts := make([]int, len(snap.Servers))
	var buf [8]int
	for range n {
		counts[alg.Candidates(snap, buf[:0])[0]]++
	}
	return counts
}

// checkShares checks observed shares against expected ones within 3 points.
func checkShares(t *testing.T, counts []int, want []float64) {
	t.Helper()
	total := 0
	for _, c := range counts {
		total += c
	}
	for i, c := range counts {
		if got := float64(c) / float64(total); got < want[i]-0.03 || got > want[i]+0.03 {
			t.Errorf("server %d: share %.3f, want %.2f (counts %v)", i, got, want[i], counts)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	snap := snapshot(t, av, av, deg)
	for _, kind := range Kinds {
		alg, _ := New(kind, Flat(seq(3)), nil)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 500 {
					end := snap.Servers[alg.Candidates(snap, nil)[0]].Begin()
					end()
				}
			})
		}
		wg.Wait()
	}
}
