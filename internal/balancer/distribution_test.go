package balancer

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ldapmux/ldapmux/internal/backend"
)

// The distribution tests simulate clients that each send one operation at a
// time, with no network: the proxy's outstanding counters are the Server
// counters, and each server takes a random service time that grows with
// the operations it has in flight (a fake processor-sharing server).

// completion is an operation in flight in the simulation.
type completion struct {
	at     float64 // simulated time, in milliseconds
	server int
	client int
	end    func()
}

type events []completion

func (e events) Len() int           { return len(e) }
func (e events) Less(i, j int) bool { return e[i].at < e[j].at }
func (e events) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)        { *e = append(*e, x.(completion)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

// simulate runs clients against alg until ops operations completed and
// returns how many each server handled.
func simulate(snap *backend.Snapshot, alg Algorithm, clients, ops int, rnd *rand.Rand) []int {
	counts := make([]int, len(snap.Servers))
	var q events
	now := 0.0
	send := func(client int) {
		s := alg.Candidates(snap, nil)[0]
		service := (0.5 + rnd.Float64()) * float64(1+snap.Servers[s].Outstanding())
		heap.Push(&q, completion{at: now + service, server: s, client: client, end: snap.Servers[s].Begin()})
	}
	for c := range clients {
		send(c)
	}
	for done := 0; done < ops; done++ {
		ev := heap.Pop(&q).(completion)
		now = ev.at
		ev.end()
		counts[ev.server]++
		send(ev.client)
	}
	for q.Len() > 0 {
		heap.Pop(&q).(completion).end()
	}
	return counts
}

// TestFewestOpsDistribution: over three equal servers with 1, 8 and 64
// concurrent clients, no server gets more than 1.5 times its fair share.
func TestFewestOpsDistribution(t *testing.T) {
	const ops = 30000
	for _, clients := range []int{1, 8, 64} {
		snap := snapshot(t, av, av, av)
		rnd := rand.New(rand.NewPCG(uint64(clients), 7))
		f := &FewestOps{Tiers: Flat(seq(3)), Rand: func(n int) int { return rnd.IntN(n) }}
		counts := simulate(snap, f, clients, ops, rnd)
		t.Logf("fewest-operations, %2d clients: %v of %d (%s)", clients, counts, ops, shares(counts))
		for i, c := range counts {
			if fair := ops / 3; c > fair*3/2 {
				t.Errorf("%d clients: server %d got %d operations, more than 1.5 × its fair share %d", clients, i, c, fair)
			}
		}
	}
}

// firstListed is fewest-operations without random tie-breaking: it shows
// what the distribution test guards against.
type firstListed struct{ Tiers }

func (firstListed) Name() string { return "first-listed" }

func (f firstListed) Candidates(snap *backend.Snapshot, dst []int) []int {
	return f.order(snap, dst, func(g []int) {
		slices.SortStableFunc(g, func(a, b int) int {
			return int(snap.Servers[a].Outstanding() - snap.Servers[b].Outstanding())
		})
	})
}

func TestNaiveTieBreakingPilesOntoFirstServer(t *testing.T) {
	snap := snapshot(t, av, av, av)
	counts := simulate(snap, firstListed{Flat(seq(3))}, 1, 3000, rand.New(rand.NewPCG(1, 1)))
	if counts[0] != 3000 {
		t.Errorf("first-listed tie-breaking with one client: %v; the simulation no longer shows the imbalance", counts)
	}
}

func shares(counts []int) string {
	total := 0
	for _, c := range counts {
		total += c
	}
	parts := make([]string, len(counts))
	for i, c := range counts {
		parts[i] = fmt.Sprintf("%.1f%%", 100*float64(c)/float64(total))
	}
	return strings.Join(parts, " / ")
}
