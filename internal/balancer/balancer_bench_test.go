package balancer

import (
	"testing"

	"github.com/ldapmux/ldapmux/internal/backend"
)

func benchSnapshot(n int) *backend.Snapshot {
	servers := make([]*backend.Server, n)
	for i := range servers {
		servers[i] = &backend.Server{Name: string(rune('a' + i)), Weight: 1}
	}
	return backend.NewRegistry(servers, nil).Snapshot()
}

// BenchmarkCandidates orders three servers, as every operation does.
func BenchmarkCandidates(b *testing.B) {
	snap := benchSnapshot(3)
	tiers := Flat([]int{0, 1, 2})
	for _, kind := range Kinds {
		alg, err := New(kind, tiers, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(kind, func(b *testing.B) {
			var buf [16]int
			b.ReportAllocs()
			for b.Loop() {
				if got := alg.Candidates(snap, buf[:0]); len(got) != 3 {
					b.Fatalf("%d candidates", len(got))
				}
			}
		})
	}
}
