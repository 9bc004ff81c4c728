package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/server"
)

// Config is every setting of `noticed serve`, each a flag with an env twin.
type Config struct {
	Addr        string
	RedisURL    string
	DataPath    string
	JWTSecret   string
	JWTKeyFile  string
	JWTIssuer   string
	JWTAudience string
	JWTLeeway   time.Duration

	JWKSURLs       urlList
	JWKSRefresh    time.Duration
	JWKSUnknownKID time.Duration
	JWKSMaxAge     time.Duration

	StreamPrefix string
	StreamMaxLen int64
	StreamTTL    time.Duration
	// PublishReplicas is how many replicas must hold an appended entry
	// (WAIT) before POST /notice answers 200; PublishReplicasTimeout how
	// long it waits for them before it answers 503.
	PublishReplicas        int
	PublishReplicasTimeout time.Duration
	Heartbeat              time.Duration
	CORSOrigins            string

	MaxConnsPerUser    int
	MaxConns           int
	MaxPayload         int64
	MaxUsersPerPublish int
	MaxUserLen         int
	MaxEventLen        int
	MaxHeaderBytes     int
	ReadHeaderTimeout  time.Duration
	IdleTimeout        time.Duration
	TrustedProxies     string
	QueueLen           int
	DrainTimeout       time.Duration
	LogLevel           string
	DebugAddr          string
	Presence           bool
	PresenceStream     string
	PresenceLease      time.Duration
}

// serveFlags defines the serve flags on fs, bound to c.
func serveFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Addr, "addr", ":8080", "listen address")
	fs.StringVar(&c.RedisURL, "redis", "", "Redis URL: redis://host:6379/db (one node), redis+sentinel://host:26379?master_name=NAME&addr=… (Sentinel) or redis+cluster://host:7000?addr=… (Cluster); rediss… for TLS; empty: the embedded backend, one instance only (in memory, or in the file -data names)")
	fs.StringVar(&c.DataPath, "data", "", "without -redis: keep users' streams in this file (created if absent; one instance per file), so history survives restarts; empty: in memory")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HMAC secret for tokens (HS256/384/512)")
	fs.StringVar(&c.JWTKeyFile, "jwt-key-file", "", "token keys: PEM public keys or certificates (RSA, ECDSA, Ed25519), or a JWK Set (JSON, also HMAC \"oct\" keys); a token's kid picks the key; re-read on SIGHUP")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", "", "required iss claim, if set")
	fs.StringVar(&c.JWTAudience, "jwt-audience", "", "required aud claim, if set")
	fs.DurationVar(&c.JWTLeeway, "jwt-leeway", 0, "clock skew allowed when checking exp and nbf")
	jwksFlags(fs, c)
	fs.StringVar(&c.StreamPrefix, "stream-prefix", "notice:", "prefix of each user's stream key: <prefix>{<user>}")
	fs.Int64Var(&c.StreamMaxLen, "stream-maxlen", 1000, "entries kept per user (MAXLEN ~)")
	fs.DurationVar(&c.StreamTTL, "stream-ttl", 24*time.Hour, "a user's stream expires this long after its last entry; 0 never")
	fs.IntVar(&c.PublishReplicas, "publish-replicas", 0, "Redis replicas that must hold each published entry (WAIT) before POST /notice answers 200; 503 when they do not in -publish-replicas-timeout. 0: answer once the master has it (a failover may lose it)")
	fs.DurationVar(&c.PublishReplicasTimeout, "publish-replicas-timeout", time.Second, "how long POST /notice waits for -publish-replicas replicas")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 15*time.Second, "comment line sent on idle streams this often")
	fs.StringVar(&c.CORSOrigins, "cors-origins", "", "comma-separated browser origins allowed to subscribe and publish, or *")
	fs.IntVar(&c.MaxConnsPerUser, "max-conns-per-user", 100, "open streams per user on this instance (429 past it); 0 no limit")
	fs.IntVar(&c.MaxConns, "max-conns", 0, "open streams on this instance (503 past it); 0: from the open-files limit")
	fs.Int64Var(&c.MaxPayload, "max-payload", 64<<10, "largest POST /notice body in bytes (413 past it)")
	fs.IntVar(&c.MaxUsersPerPublish, "max-users-per-publish", 1000, "users one POST /notice may name, or events one batch may hold (400 past it)")
	fs.IntVar(&c.MaxUserLen, "max-user-len", notice.MaxUserLen, fmt.Sprintf("longest user id in bytes, 1 to %d: a token's sub (401 past it) and a published user (400)", notice.MaxUserLen))
	fs.IntVar(&c.MaxEventLen, "max-event-len", notice.MaxEventLen, fmt.Sprintf("longest published event type in bytes, 1 to %d (400 past it)", notice.MaxEventLen))
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", 16<<10, "largest request line and headers in bytes (431 past it; Go allows 4 KiB over)")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "time a client has to send its request headers, and a publish its body, before the connection is closed")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 2*time.Minute, "an idle keep-alive connection is closed after this long")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "comma-separated IPs or CIDRs of proxies whose X-Forwarded-For names the client in logs; empty: trust none")
	fs.IntVar(&c.QueueLen, "queue-len", 64, "events a stream may fall behind before it is closed as slow (it reconnects and replays)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 10*time.Second, "longest wait for streams to close on SIGTERM")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.Presence, "presence", true, "keep users' presence (GET /presence, the presence stream); false: off")
	fs.StringVar(&c.PresenceStream, "presence-stream", "noticed:presence", "the stream presence transitions (online, offline) are appended to")
	fs.DurationVar(&c.PresenceLease, "presence-lease", 15*time.Second, "how long a dead instance's streams still count: its users go offline between one and one and a third leases after it died")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "serve Go's profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; empty: off. Never expose it")
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
	if err := checkSecret(c.JWTSecret); err != nil {
		errs = append(errs, err)
	}
	if c.DataPath != "" && c.RedisURL != "" {
		errs = append(errs, errors.New("-data and -redis are exclusive: -data is the embedded backend's file, for one instance without Redis"))
	}
	errs = append(errs, c.checkJWKS()...)
	if c.StreamMaxLen < 1 {
		errs = append(errs, errors.New("-stream-maxlen must be at least 1"))
	}
	if c.StreamTTL < 0 {
		errs = append(errs, errors.New("-stream-ttl must not be negative"))
	}
	if c.PublishReplicas < 0 {
		errs = append(errs, errors.New("-publish-replicas must not be negative"))
	}
	if c.PublishReplicas > 0 && c.RedisURL == "" {
		errs = append(errs, errors.New("-publish-replicas needs -redis: the in-memory backend has no replicas"))
	}
	if c.PublishReplicasTimeout < time.Millisecond {
		errs = append(errs, errors.New("-publish-replicas-timeout must be at least 1ms"))
	}
	if c.PresenceLease < 300*time.Millisecond {
		return fmt.Errorf("-presence-lease %s: at least 300ms", c.PresenceLease)
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
	if c.MaxUserLen < 1 || c.MaxUserLen > notice.MaxUserLen {
		errs = append(errs, fmt.Errorf("-max-user-len must be 1 to %d (the contract's limit)", notice.MaxUserLen))
	}
	if c.MaxEventLen < 1 || c.MaxEventLen > notice.MaxEventLen {
		errs = append(errs, fmt.Errorf("-max-event-len must be 1 to %d (the contract's limit)", notice.MaxEventLen))
	}
	if c.MaxHeaderBytes < 1<<10 {
		errs = append(errs, errors.New("-max-header-bytes must be at least 1024"))
	}
	if c.ReadHeaderTimeout <= 0 {
		errs = append(errs, errors.New("-read-header-timeout must be positive"))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, errors.New("-idle-timeout must be positive"))
	}
	if _, err := server.ParseProxies(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("-trusted-proxies: %v", err))
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

// checkSecret refuses a -jwt-secret shorter than the hash it keys (RFC 7518
// §3.2): one token is enough to guess a short one offline, and whoever
// does can sign tokens for every user. Dev mode's random secret is long
// enough by construction.
func checkSecret(secret string) error {
	if secret != "" && len(secret) < auth.MinSecretLen {
		return fmt.Errorf("-jwt-secret (%s) is %d bytes: an HMAC secret must be at least %d (256 bits); make one with `openssl rand -base64 32`",
			envName("jwt-secret"), len(secret), auth.MinSecretLen)
	}
	return nil
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

// proxies is -trusted-proxies, already checked by check.
func (c *Config) proxies() server.Proxies {
	p, _ := server.ParseProxies(c.TrustedProxies)
	return p
}

// limits are the connection limits the listener applies.
func (c *Config) limits() server.Limits {
	return server.Limits{ReadHeaderTimeout: c.ReadHeaderTimeout, IdleTimeout: c.IdleTimeout, MaxHeaderBytes: c.MaxHeaderBytes}
}
