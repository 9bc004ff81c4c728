package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/presence"
)

// Presence keys. A user's share is a hash on the user's own hash tag, so
// the script that decides a transition touches one slot; an instance's
// lease, its set of users and the registry of instances are keys of
// their own, each used alone; the presence stream and its hash of each
// user's last entry (toldKey) share the stream's slot.
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
// user's total went from zero (online) or to zero (offline), with the
// server's clock in microseconds when it did: that stamp orders the
// user's transitions, which instances announce in their own time. TIME
// comes after the writes, which any Redis allows in a script.
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
local state = ''
if total == 0 and after > 0 then redis.call('HSET', KEYS[1], 'since', ARGV[3]); state = 'online' end
if total > 0 and after == 0 then redis.call('DEL', KEYS[1]); state = 'offline' end
if state == '' then return {'', 0} end
local t = redis.call('TIME')
return {state, tonumber(t[1]) * 1000000 + tonumber(t[2])}
`)

// announcePresence appends transitions (ARGV: MAXLEN, then user, state,
// stamp for each) to the presence stream KEYS[1], keeping in KEYS[2], a
// hash on the stream's slot, each user's last entry as "<stamp> <state>".
// Instances decide a user's transitions in one order (the user's
// script) and announce them in another (each its own round trip), so a
// transition decided before the last entry was appended is dropped (it
// is late, or sent again after a lost reply), and one in the same state
// as the last entry is preceded by the opposite one, decided between
// the two but not appended yet (late, or lost with its instance): each
// user's entries alternate in the order they were decided.
var announcePresence = redis.NewScript(`
local n = 0
for i = 2, #ARGV, 3 do
  local user, state, stamp = ARGV[i], ARGV[i+1], tonumber(ARGV[i+2])
  local last = redis.call('HGET', KEYS[2], user)
  local lstamp, lstate = -1, nil
  if last then
    local sep = string.find(last, ' ', 1, true)
    lstamp = tonumber(string.sub(last, 1, sep - 1))
    lstate = string.sub(last, sep + 1)
  end
  if stamp > lstamp then
    if state == lstate then
      local other = 'online'
      if state == 'online' then other = 'offline' end
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'user', user, 'state', other)
      n = n + 1
    end
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'user', user, 'state', state)
    redis.call('HSET', KEYS[2], user, ARGV[i+2] .. ' ' .. state)
    n = n + 1
  end
end
return n
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
		v, err := scripts[i].Slice()
		if err != nil {
			return nil, err
		}
		state, _ := v[0].(string)
		stamp, _ := v[1].(int64)
		out[i] = presence.Transition{User: c.User, State: state, Stamp: stamp}
	}
	return out, nil
}

// Announce appends each transition as an entry with fields user and
// state, in one script on the stream's slot that keeps each user's
// entries in the order the transitions were decided (announcePresence).
func (p *Presence) Announce(ctx context.Context, ts []presence.Transition) error {
	if len(ts) == 0 {
		return nil
	}
	args := make([]any, 0, 1+3*len(ts))
	args = append(args, presenceMaxLen)
	for _, t := range ts {
		args = append(args, t.User, t.State, t.Stamp)
	}
	err := announcePresence.Run(ctx, p.s.rdb, []string{p.key, toldKey(p.key)}, args...).Err()
	return p.s.fail("presence announce", err)
}

// toldKey names the hash of each user's last entry of the presence
// stream key, on key's Cluster slot: key's own hash tag if it has one,
// else key as the tag ("noticed:presence" -> "{noticed:presence}:told").
func toldKey(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key + ":told"
		}
	}
	return "{" + key + "}:told"
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
