package auth

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkVerify is the token check of every stream that opens: fresh
// tokens (a browser's first connection) and a remembered one (a producer's
// next POST, a browser's reconnect).
func BenchmarkVerify(b *testing.B) {
	v, err := NewVerifier(Config{Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	tokens := make([]string, 1<<16)
	for i := range tokens {
		if tokens[i], err = Sign(testSecret, fmt.Sprint("user-", i), time.Hour, nil, "", ""); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c := &v.keys.Load().cache // forget, so each is checked anew
			c.mu.Lock()
			clear(c.m)
			c.mu.Unlock()
			if _, err := v.Verify(tokens[i%len(tokens)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("remembered", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(tokens[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
