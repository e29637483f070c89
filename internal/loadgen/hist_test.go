package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverValues(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 123456, 1 << 30, maxValue} {
		i := bucketOf(v)
		if i < 0 || i >= nBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, i)
		}
		if hi := bucketHigh(i); hi < v || (i > 0 && bucketHigh(i-1) >= v) {
			t.Errorf("value %d in bucket %d whose range ends at %d (previous ends at %d)", v, i, hi, bucketHigh(i-1))
		}
	}
	if got := bucketOf(maxValue + 12345); got != nBuckets-1 {
		t.Errorf("value above the range: bucket %d, want the last (%d)", got, nBuckets-1)
	}
}

func TestQuantilesWithinPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]time.Duration, 100000)
	for i := range vals {
		vals[i] = time.Duration(rng.ExpFloat64() * float64(300*time.Microsecond))
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))-1]
		got := h.Quantile(q)
		if diff := float64(got-want) / float64(want); diff < -0.01 || diff > 0.01 {
			t.Errorf("q%.3f = %v, exact %v (off by %.2f%%)", q, got, want, diff*100)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
		t.Errorf("min/max %v/%v, want %v/%v", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
	}
}

func TestMergeAndReset(t *testing.T) {
	var a, b Histogram
	for i := range 10 {
		a.Record(time.Duration(i) * time.Millisecond)
		b.Record(time.Duration(i+10) * time.Millisecond)
	}
	a.Merge(&b)
	if a.Count() != 20 || a.Max() != 19*time.Millisecond || a.Min() != 0 {
		t.Fatalf("merged: count %d min %v max %v", a.Count(), a.Min(), a.Max())
	}
	if got := a.Quantile(0.5); got < 9*time.Millisecond || got > 10*time.Millisecond {
		t.Errorf("median %v, want about 9.5ms", got)
	}
	a.Reset()
	if a.Count() != 0 || a.Quantile(0.99) != 0 || a.Mean() != 0 {
		t.Errorf("reset histogram not empty")
	}
}
