package redisstore

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The three forms of -redis, as docs/operations.md and the contract give them:
//
//	redis://[user:password@]host:6379[/db]           one node (rediss:// for TLS)
//	redis+sentinel://[user:password@]host:26379[/db]?master_name=NAME[&addr=host2:26379…]
//	redis+cluster://[user:password@]host:7000[?addr=host2:7001…]
//
// Each is read by go-redis' own parser once its "+sentinel" or "+cluster"
// is taken off the scheme, so every go-redis query option works as
// documented there.

// topologyKind says which of the three forms a URL has.
type topologyKind int

const (
	single topologyKind = iota
	sentinel
	cluster
)

func (k topologyKind) String() string {
	return [...]string{"single", "sentinel", "cluster"}[k]
}

// ErrBadURL wraps every reason a -redis URL is refused.
var ErrBadURL = errors.New("bad Redis URL")

// parsedURL is a -redis URL read.
type parsedURL struct {
	raw      string
	kind     topologyKind
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// parseURL reads raw. Its errors name the part that is wrong and never
// repeat the URL, which may hold a password.
func parseURL(raw string) (parsedURL, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return parsedURL{}, fmt.Errorf("%w: no scheme: want redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://", ErrBadURL)
	}
	base, form, _ := strings.Cut(strings.ToLower(scheme), "+")
	if base != "redis" && base != "rediss" {
		return parsedURL{}, fmt.Errorf("%w: scheme %q: want redis or rediss, optionally with +sentinel or +cluster", ErrBadURL, scheme)
	}
	plain := base + "://" + rest
	p, err := parseForm(form, scheme, plain)
	p.raw = plain
	return p, err
}

// rawQuery is the URL's query text.
func (p parsedURL) rawQuery() string {
	_, q, _ := strings.Cut(p.raw, "?")
	return q
}

func parseForm(form, scheme, plain string) (parsedURL, error) {
	switch form {
	case "":
		o, err := redis.ParseURL(plain)
		if err != nil {
			return parsedURL{}, fmt.Errorf("%w: %w", ErrBadURL, withoutURL(err))
		}
		return parsedURL{kind: single, single: o}, nil
	case "sentinel":
		o, err := redis.ParseFailoverURL(plain)
		if err != nil {
			return parsedURL{}, fmt.Errorf("%w: %s: %w", ErrBadURL, scheme, withoutURL(err))
		}
		if o.MasterName == "" {
			return parsedURL{}, fmt.Errorf("%w: %s: the query parameter master_name is missing: name the master the sentinels watch", ErrBadURL, scheme)
		}
		return parsedURL{kind: sentinel, failover: o}, nil
	case "cluster":
		u, err := url.Parse(plain)
		if err != nil {
			return parsedURL{}, fmt.Errorf("%w: %s: %w", ErrBadURL, scheme, withoutURL(err))
		}
		if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
			return parsedURL{}, fmt.Errorf("%w: %s: path %q: a Redis Cluster has database 0 only", ErrBadURL, scheme, u.Path)
		}
		u.Path = ""
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return parsedURL{}, fmt.Errorf("%w: %s: %w", ErrBadURL, scheme, withoutURL(err))
		}
		return parsedURL{kind: cluster, cluster: o}, nil
	default:
		return parsedURL{}, fmt.Errorf("%w: scheme %q: %q is neither +sentinel nor +cluster", ErrBadURL, scheme, "+"+form)
	}
}

// withoutURL drops the URL a *url.Error carries, keeping what was wrong.
func withoutURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}
