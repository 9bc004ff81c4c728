package redisstore

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/presence"
)

// Presence keys. A user's share is a hash on the user's own hash tag, so
// the script that decides a transition touches one slot; an instance's
// lease, its set of users and the registry of instances are keys of
// their own, each used alone.
const (
	presenceUserPrefix  = "noticed:online:"   // + "{<user>}": instance -> streams, "since" -> ms
	presenceLeasePrefix = "noticed:lease:"    // + instance, with the lease as its time to live
	presenceHeldPrefix  = "noticed:held:"     // + instance: its users with streams
	presenceReapPrefix  = "noticed:reaping:"  // + instance: who takes a lapsed one's shares
	presenceRegistry    = "noticed:instances" // every instance that may hold shares
	// presenceMaxLen bounds the presence stream (MAXLEN ~).
	presenceMaxLen = 100000
)

// setPresence writes one instance's count of a user and says whether the
// user's total went from zero (online) or to zero (offline).
var setPresence = redis.NewScript(`
local total = 0
local vals = redis.call('HGETALL', KEYS[1])
for i = 1, #vals, 2 do
  if vals[i] ~= 'since' then total = total + tonumber(vals[i+1]) end
end
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local n = tonumber(ARGV[2])
local after = total - old + n
if n == 0 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], n) end
if total == 0 and after > 0 then redis.call('HSET', KEYS[1], 'since', ARGV[3]); return 'online' end
if total > 0 and after == 0 then redis.call('DEL', KEYS[1]); return 'offline' end
return ''
`)

// Presence is the Redis backend of presence, its transitions appended to
// the stream key.
type Presence struct {
	s   *Store
	key string
}

var _ presence.Backend = (*Presence)(nil)

// Presence returns the presence backend on this store's Redis.
func (s *Store) Presence(key string) *Presence {
	if key == "" {
		key = presence.DefaultKey
	}
	return &Presence{s: s, key: key}
}

func userKey(user string) string { return presenceUserPrefix + "{" + user + "}" }

// Lease starts or renews instance's lease.
func (p *Presence) Lease(ctx context.Context, instance string, ttl time.Duration, renew bool) (bool, error) {
	rdb := p.s.rdb
	if renew {
		err := rdb.SetArgs(ctx, presenceLeasePrefix+instance, "1", redis.SetArgs{Mode: "XX", TTL: ttl}).Err()
		if errors.Is(err, redis.Nil) {
			return false, nil
		}
		return err == nil, p.s.fail("presence lease", err)
	}
	if err := rdb.SAdd(ctx, presenceRegistry, instance).Err(); err != nil {
		return false, p.s.fail("presence lease", err)
	}
	return true, p.s.fail("presence lease", rdb.Set(ctx, presenceLeasePrefix+instance, "1", ttl).Err())
}

// Release gives instance's lease and registration up.
func (p *Presence) Release(ctx context.Context, instance string) error {
	pipe := p.s.rdb.Pipeline()
	pipe.SRem(ctx, presenceRegistry, instance)
	pipe.Del(ctx, presenceLeasePrefix+instance)
	pipe.Del(ctx, presenceHeldPrefix+instance)
	_, err := pipe.Exec(ctx)
	return p.s.fail("presence release", err)
}

// Set writes instance's counts in one pipeline: the instance's set of
// users gains every user with streams first and loses those without
// after (whoever reaps the instance then finds every user it still
// counts), with one script per user, on the user's key, between. The
// script is idempotent (it sets a count), so a pipeline whose scripts
// Redis no longer holds (restarted) is loaded and sent again whole.
func (p *Presence) Set(ctx context.Context, instance string, counts []presence.Count, now time.Time) ([]presence.Transition, error) {
	for try := 0; ; try++ {
		out, err := p.set(ctx, instance, counts, now)
		if err == nil || try > 0 || !redis.HasErrorPrefix(err, "NOSCRIPT") {
			return out, p.s.fail("presence set", err)
		}
		if err := setPresence.Load(ctx, p.s.rdb).Err(); err != nil {
			return nil, p.s.fail("presence set", err)
		}
	}
}

func (p *Presence) set(ctx context.Context, instance string, counts []presence.Count, now time.Time) ([]presence.Transition, error) {
	var on, off []any
	for _, c := range counts {
		if c.Streams > 0 {
			on = append(on, c.User)
		} else {
			off = append(off, c.User)
		}
	}
	pipe := p.s.rdb.Pipeline()
	if len(on) > 0 {
		pipe.SAdd(ctx, presenceHeldPrefix+instance, on...)
	}
	scripts := make([]*redis.Cmd, len(counts))
	for i, c := range counts {
		scripts[i] = setPresence.EvalSha(ctx, pipe, []string{userKey(c.User)}, instance, c.Streams, now.UnixMilli())
	}
	if len(off) > 0 {
		pipe.SRem(ctx, presenceHeldPrefix+instance, off...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([]presence.Transition, len(counts))
	for i, c := range counts {
		v, err := scripts[i].Text()
		if err != nil {
			return nil, err
		}
		out[i] = presence.Transition{User: c.User, State: v}
	}
	return out, nil
}

// Announce appends each transition as an entry with fields user and
// state, in one pipeline.
func (p *Presence) Announce(ctx context.Context, ts []presence.Transition) error {
	pipe := p.s.rdb.Pipeline()
	for _, t := range ts {
		pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: p.key, MaxLen: presenceMaxLen, Approx: true, ID: "*",
			Values: []any{"user", t.User, "state", t.State},
		})
	}
	_, err := pipe.Exec(ctx)
	return p.s.fail("presence announce", err)
}

// Lapsed returns the registered instances without a lease, each claimed
// for ttl by self.
func (p *Presence) Lapsed(ctx context.Context, self string, ttl time.Duration) ([]string, error) {
	rdb := p.s.rdb
	all, err := rdb.SMembers(ctx, presenceRegistry).Result()
	if err != nil {
		return nil, p.s.fail("presence lapsed", err)
	}
	pipe := rdb.Pipeline()
	exists := make([]*redis.IntCmd, len(all))
	for i, inst := range all {
		exists[i] = pipe.Exists(ctx, presenceLeasePrefix+inst)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, p.s.fail("presence lapsed", err)
	}
	var out []string
	for i, inst := range all {
		if inst == self || exists[i].Val() > 0 {
			continue
		}
		ok, err := rdb.SetNX(ctx, presenceReapPrefix+inst, self, ttl).Result()
		if err != nil {
			return out, p.s.fail("presence lapsed", err)
		}
		if ok {
			out = append(out, inst)
		}
	}
	return out, nil
}

// Held returns instance's users.
func (p *Presence) Held(ctx context.Context, instance string) ([]string, error) {
	users, err := p.s.rdb.SMembers(ctx, presenceHeldPrefix+instance).Result()
	return users, p.s.fail("presence held", err)
}

// Forget drops a reaped instance.
func (p *Presence) Forget(ctx context.Context, instance string) error {
	pipe := p.s.rdb.Pipeline()
	pipe.SRem(ctx, presenceRegistry, instance)
	pipe.Del(ctx, presenceHeldPrefix+instance)
	_, err := pipe.Exec(ctx)
	return p.s.fail("presence forget", err)
}

// Counts reads every user's hash in one pipeline.
func (p *Presence) Counts(ctx context.Context, users []string) ([]presence.Info, error) {
	pipe := p.s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(users))
	for i, u := range users {
		cmds[i] = pipe.HGetAll(ctx, userKey(u))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, p.s.fail("presence counts", err)
	}
	out := make([]presence.Info, len(users))
	for i, u := range users {
		out[i].User = u
		for f, v := range cmds[i].Val() {
			if f == "since" {
				if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
					out[i].Since = time.UnixMilli(ms).UTC()
				}
				continue
			}
			n, _ := strconv.Atoi(v)
			out[i].Streams += n
		}
		if out[i].Streams == 0 {
			out[i].Since = time.Time{}
		}
	}
	return out, nil
}
