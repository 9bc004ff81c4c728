package main

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxBurst bounds one pipelined round trip when the publisher is behind.
const maxBurst = 64

// publisher XADDs as a producer would, through its own connection,
// stamping each entry with the time it is sent.
type publisher struct {
	rdb  *redis.Client
	keys []string // the followed users' stream keys
	rate int
}

// run publishes to random keys at p.rate for d and returns how many
// entries Redis took. When it falls behind it sends what is due in one
// pipeline, each entry stamped as it is written, so the latency measured
// is that of the entries, not of the publisher's lag.
func (p *publisher) run(ctx context.Context, d time.Duration) (int64, error) {
	start := time.Now()
	var sent int64
	for {
		elapsed := time.Since(start)
		if elapsed >= d {
			return sent, nil
		}
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		due := int64(elapsed.Seconds()*float64(p.rate)) + 1
		if sent >= due {
			next := start.Add(time.Duration(float64(sent) / float64(p.rate) * float64(time.Second)))
			time.Sleep(time.Until(next))
			continue
		}
		n := min(due-sent, maxBurst)
		pipe := p.rdb.Pipeline()
		for range n {
			key := p.keys[rand.N(len(p.keys))]
			stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
			pipe.Do(ctx, "XADD", key, "MAXLEN", "~", 1000, "*", "data", stamp)
		}
		cmds, err := pipe.Exec(ctx)
		if err != nil {
			for _, c := range cmds {
				if c.Err() == nil {
					sent++
				}
			}
			return sent, err
		}
		sent += n
	}
}
