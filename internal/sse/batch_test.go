package sse

import (
	"bytes"
	"math/rand/v2"
	"net"
	"testing"
)

// A batch sends its frames whole and in order, however small and large
// ones mix and however often its buffer grows; large ones are not copied.
func TestBatchKeepsOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		b := getBatch()
		var want []byte
		var large [][]byte
		for i := range 1 + rng.IntN(64) {
			n := rng.IntN(3 * copyBelow)
			if rng.IntN(4) == 0 {
				n = rng.IntN(16)
			}
			p := bytes.Repeat([]byte{byte('a' + (round+i)%26)}, n)
			b.add(p)
			if len(p) >= copyBelow {
				large = append(large, p)
			}
			want = append(want, p...)
		}
		v := b.buffers()
		for _, p := range large {
			if !referenced(v, p) {
				t.Fatalf("round %d: a %d-byte frame was copied, not referenced", round, len(p))
			}
		}
		var got bytes.Buffer
		if _, err := v.WriteTo(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("round %d: batch wrote %d bytes that differ from the %d added", round, got.Len(), len(want))
		}
		putBatch(b)
	}
}

func referenced(v net.Buffers, p []byte) bool {
	for _, q := range v {
		if len(q) == len(p) && &q[0] == &p[0] {
			return true
		}
	}
	return false
}
