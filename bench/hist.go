package main

import (
	"math/bits"
	"time"
)

// histSubBits sets the histogram's precision: each power of two is cut
// into 2^(histSubBits-1) buckets, so a value is known to within 1/64
// (1.6%), from one nanosecond to hours, in about 2,000 buckets.
const histSubBits = 7

// hist is a log-linear histogram of durations in nanoseconds, in the
// manner of HdrHistogram: fixed relative precision, constant memory, and
// histograms from several processes add up exactly. Not safe for
// concurrent use.
type hist struct {
	Counts []int64 `json:"c"`
	N      int64   `json:"n"`
	Max    int64   `json:"max"`
	Sum    int64   `json:"sum"`
}

// histBucket is the bucket of v (v >= 0).
func histBucket(v int64) int {
	const sub = 1 << histSubBits
	if v < sub {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - histSubBits
	return e<<(histSubBits-1) + int(v>>e)
}

// histUpper is the largest value in bucket i.
func histUpper(i int) int64 {
	const sub = 1 << histSubBits
	if i < sub {
		return int64(i)
	}
	half := 1 << (histSubBits - 1)
	e := i/half - 1
	m := int64(i%half + half)
	return (m+1)<<e - 1
}

func (h *hist) record(d time.Duration) {
	v := max(int64(d), 0)
	i := histBucket(v)
	if i >= len(h.Counts) {
		grown := make([]int64, i+1+i/4)
		copy(grown, h.Counts)
		h.Counts = grown
	}
	h.Counts[i]++
	h.N++
	h.Sum += v
	h.Max = max(h.Max, v)
}

// add merges o into h.
func (h *hist) add(o *hist) {
	if len(o.Counts) > len(h.Counts) {
		grown := make([]int64, len(o.Counts))
		copy(grown, h.Counts)
		h.Counts = grown
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.N += o.N
	h.Sum += o.Sum
	h.Max = max(h.Max, o.Max)
}

// quantile is the value at quantile q (0..1) by nearest rank, to the
// histogram's precision (a bucket's upper bound, never above the maximum
// seen); 0 when empty.
func (h *hist) quantile(q float64) time.Duration {
	if h.N == 0 {
		return 0
	}
	rank := int64(q*float64(h.N) + 0.9999999)
	rank = min(max(rank, 1), h.N)
	var seen int64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histUpper(i), h.Max))
		}
	}
	return time.Duration(h.Max)
}

func (h *hist) mean() time.Duration {
	if h.N == 0 {
		return 0
	}
	return time.Duration(h.Sum / h.N)
}
