package main

import (
	"slices"
	"testing"
)

func TestRoundsAlternate(t *testing.T) {
	got := rounds([]string{"a", "b", "c"}, 3)
	want := []string{"a", "b", "c", "c", "b", "a", "a", "b", "c"}
	if !slices.Equal(got, want) {
		t.Errorf("rounds: %v, want %v", got, want)
	}
}

func TestSpread(t *testing.T) {
	for _, tt := range []struct {
		vs     []float64
		format string
		want   string
	}{
		{nil, "", "-"},
		{[]float64{0, -1}, "", "-"},
		{[]float64{2.5}, "%.2f×", "2.50×"},
		{[]float64{3, 1, 2}, "%.2f×", "2.00× (1.00×–3.00×)"},
		{[]float64{4, 1, 2, 3}, "", "2.5 (1–4)"},
		{[]float64{12345.6, 999.4}, "", "6672 (999–12346)"},
	} {
		if got := spread(tt.vs, tt.format); got != tt.want {
			t.Errorf("spread(%v, %q) = %q, want %q", tt.vs, tt.format, got, tt.want)
		}
	}
}

func TestTargetKind(t *testing.T) {
	cfg := config{publish: "xadd", postBatch: 1}
	for _, tt := range []struct {
		spec, kind, publish string
		batch               int
	}{
		{"noticed", "noticed", "xadd", 1},
		{"noticed/post", "noticed", "post", 1},
		{"noticed/batch", "noticed", "post", 100},
		{"nchan", "nchan", "post", 1},
		{"centrifugo", "centrifugo", "post", 1},
	} {
		kind, how := targetKind(cfg, tt.spec)
		if kind != tt.kind || how.publish != tt.publish || how.batch != tt.batch {
			t.Errorf("%s: %s %+v", tt.spec, kind, how)
		}
	}
	if _, err := parseFlags([]string{"-target", "nchan/xadd"}, nil); err == nil {
		t.Error("nchan/xadd accepted")
	}
}
