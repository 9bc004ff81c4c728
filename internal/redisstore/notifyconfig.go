package redisstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

const notifyParam = "notify-keyspace-events"

// missingFlags returns the notify-keyspace-events flags that have lacks of
// the two noticed needs: K (publish on the key's own channel) and t
// (stream commands, XADD among them; "A" includes it).
func missingFlags(have string) string {
	var add string
	if !strings.Contains(have, "K") {
		add += "K"
	}
	if !strings.ContainsAny(have, "tA") {
		add += "t"
	}
	return add
}

// ensureNotifyFlags adds the flags noticed needs to those Redis already
// has, never removing any, on the one node c talks to (configuration is per
// node, not replicated). It runs at start, for each master found later, and
// again whenever a Pub/Sub connection comes back, since a restarted Redis
// forgets a CONFIG SET that is not in its configuration file.
func (s *Store) ensureNotifyFlags(ctx context.Context, c redis.Cmdable) error {
	got, err := c.ConfigGet(ctx, notifyParam).Result()
	if err != nil {
		if !isRefusal(err) {
			return s.fail("read "+notifyParam, err)
		}
		return fmt.Errorf("redisstore: %w: CONFIG GET %s was refused (%v); add this line to the Redis configuration, keeping any flags it already has: %s Kt",
			ErrNotifyConfig, notifyParam, err, notifyParam)
	}
	have, ok := got[notifyParam]
	if !ok {
		return fmt.Errorf("redisstore: %w: Redis does not report %s; add this line to its configuration: %s Kt",
			ErrNotifyConfig, notifyParam, notifyParam)
	}
	add := missingFlags(have)
	if add == "" {
		return nil
	}
	want := have + add
	if err := c.ConfigSet(ctx, notifyParam, want).Err(); err != nil {
		if !isRefusal(err) {
			return s.fail("set "+notifyParam, err)
		}
		return fmt.Errorf("redisstore: %w: CONFIG SET %s was refused (%v); add this line to the Redis configuration: %s %s",
			ErrNotifyConfig, notifyParam, err, notifyParam, want)
	}
	s.log.Info("turned on Redis keyspace notifications", "param", notifyParam, "was", have, "now", want)
	return nil
}
