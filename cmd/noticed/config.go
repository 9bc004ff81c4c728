package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// Config is every setting of `noticed serve`, each a flag with an env twin.
type Config struct {
	Addr        string
	RedisURL    string
	JWTSecret   string
	JWTKeyFile  string
	JWTIssuer   string
	JWTAudience string
	JWTLeeway   time.Duration

	StreamPrefix string
	StreamMaxLen int64
	StreamTTL    time.Duration
	Heartbeat    time.Duration
	CORSOrigins  string

	MaxConnsPerUser    int
	MaxConns           int
	MaxPayload         int64
	MaxUsersPerPublish int
	QueueLen           int
	DrainTimeout       time.Duration
	LogLevel           string
}

// serveFlags defines the serve flags on fs, bound to c.
func serveFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Addr, "addr", ":8080", "listen address")
	fs.StringVar(&c.RedisURL, "redis", "", "Redis URL (redis:// or rediss://); empty: the embedded in-memory backend, one instance only")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HMAC secret for tokens (HS256/384/512)")
	fs.StringVar(&c.JWTKeyFile, "jwt-key-file", "", "PEM public key for tokens (RSA, ECDSA or Ed25519)")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", "", "required iss claim, if set")
	fs.StringVar(&c.JWTAudience, "jwt-audience", "", "required aud claim, if set")
	fs.DurationVar(&c.JWTLeeway, "jwt-leeway", 0, "clock skew allowed when checking exp and nbf")
	fs.StringVar(&c.StreamPrefix, "stream-prefix", "notice:", "prefix of each user's stream key: <prefix>{<user>}")
	fs.Int64Var(&c.StreamMaxLen, "stream-maxlen", 1000, "entries kept per user (MAXLEN ~)")
	fs.DurationVar(&c.StreamTTL, "stream-ttl", 24*time.Hour, "a user's stream expires this long after its last entry; 0 never")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 15*time.Second, "comment line sent on idle streams this often")
	fs.StringVar(&c.CORSOrigins, "cors-origins", "", "comma-separated browser origins allowed to subscribe and publish, or *")
	fs.IntVar(&c.MaxConnsPerUser, "max-conns-per-user", 100, "open streams per user on this instance (429 past it); 0 no limit")
	fs.IntVar(&c.MaxConns, "max-conns", 0, "open streams on this instance (503 past it); 0: from the open-files limit")
	fs.Int64Var(&c.MaxPayload, "max-payload", 64<<10, "largest POST /notice body in bytes (413 past it)")
	fs.IntVar(&c.MaxUsersPerPublish, "max-users-per-publish", 1000, "users one POST /notice may name")
	fs.IntVar(&c.QueueLen, "queue-len", 64, "events a stream may fall behind before it is closed as slow (it reconnects and replays)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 10*time.Second, "longest wait for streams to close on SIGTERM")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
}

// envName is a flag's env twin: NOTICED_ and the name in upper case, with
// '-' as '_'.
func envName(flagName string) string {
	return "NOTICED_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseWithEnv parses args; a flag not given takes its env twin's value.
func parseWithEnv(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", envName(f.Name), v, err))
			}
		}
	})
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	return errors.Join(errs...)
}

// check refuses settings that cannot work, saying which and why.
func (c *Config) check() error {
	var errs []error
	if c.JWTSecret != "" && c.JWTKeyFile != "" {
		errs = append(errs, errors.New("-jwt-secret and -jwt-key-file are exclusive: give one"))
	}
	if c.StreamMaxLen < 1 {
		errs = append(errs, errors.New("-stream-maxlen must be at least 1"))
	}
	if c.StreamTTL < 0 {
		errs = append(errs, errors.New("-stream-ttl must not be negative"))
	}
	if c.Heartbeat < 100*time.Millisecond {
		errs = append(errs, errors.New("-heartbeat must be at least 100ms"))
	}
	if c.MaxPayload < 1 {
		errs = append(errs, errors.New("-max-payload must be positive"))
	}
	if c.MaxUsersPerPublish < 1 {
		errs = append(errs, errors.New("-max-users-per-publish must be at least 1"))
	}
	if c.MaxConnsPerUser < 0 || c.MaxConns < 0 {
		errs = append(errs, errors.New("connection limits must not be negative"))
	}
	if c.QueueLen < 1 {
		errs = append(errs, errors.New("-queue-len must be at least 1"))
	}
	if strings.ContainsAny(c.StreamPrefix, "{}") {
		errs = append(errs, errors.New("-stream-prefix must not contain { or }: the braces around the user id are the Redis Cluster hash tag"))
	}
	return errors.Join(errs...)
}

func (c *Config) origins() []string {
	var out []string
	for _, o := range strings.Split(c.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}
