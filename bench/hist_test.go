package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistBuckets(t *testing.T) {
	// Every value falls in a bucket whose upper bound is at least the
	// value and within 1/64 of it, and buckets never go backwards.
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, 1 << 40, 1<<62 + 12345} {
		i := histBucket(v)
		if i < prev {
			t.Errorf("bucket of %d is %d, below the previous value's %d", v, i, prev)
		}
		prev = i
		up := histUpper(i)
		if up < v || float64(up-v) > float64(v)/64+1 {
			t.Errorf("value %d: bucket %d upper bound %d", v, i, up)
		}
		if i > 0 && histUpper(i-1) >= v {
			t.Errorf("value %d: the bucket before, %d, already reaches %d", v, i-1, histUpper(i-1))
		}
	}
}

func TestHistQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h hist
	vals := make([]time.Duration, 100000)
	for i := range vals {
		vals[i] = time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		h.record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		want := vals[int(q*float64(len(vals))+0.9999999)-1]
		got := h.quantile(q)
		if got < want || float64(got-want) > float64(want)/64+1 {
			t.Errorf("quantile %v = %v, want %v (to 1/64)", q, got, want)
		}
	}
	if h.N != int64(len(vals)) || time.Duration(h.Max) != vals[len(vals)-1] {
		t.Errorf("n %d max %v, want %d, %v", h.N, time.Duration(h.Max), len(vals), vals[len(vals)-1])
	}
}

func TestHistAdd(t *testing.T) {
	var a, b, both hist
	for i := range 1000 {
		d := time.Duration(i) * time.Microsecond
		both.record(d)
		if i%3 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	a.add(&b)
	for _, q := range []float64{0.1, 0.5, 0.99} {
		if a.quantile(q) != both.quantile(q) {
			t.Errorf("quantile %v of the sum %v, of all at once %v", q, a.quantile(q), both.quantile(q))
		}
	}
	if a.N != both.N || a.Max != both.Max || a.Sum != both.Sum {
		t.Errorf("sum %+v, want n %d max %d sum %d", a, both.N, both.Max, both.Sum)
	}
	var empty hist
	if empty.quantile(0.5) != 0 || empty.mean() != 0 {
		t.Error("an empty histogram should say 0")
	}
}
