package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// JWKSOptions says where an identity provider publishes its keys and how
// noticed keeps its copy of them (-jwks-url and the flags beside it).
type JWKSOptions struct {
	URLs []string
	// Refresh is how often each set is fetched again on a schedule;
	// default 1h.
	Refresh time.Duration
	// UnknownKID is the least time between two fetches caused by a token
	// whose kid no key has (a key the provider has just started using);
	// default 1m. It is what keeps a stream of made-up kids from turning
	// noticed into a request flood against the provider.
	UnknownKID time.Duration
	// MaxAge is how long a set is used without a successful fetch (the
	// provider down or answering garbage); past it its keys are dropped and
	// their tokens refused. Default 24h.
	MaxAge time.Duration
	// Timeout bounds one fetch; default 10s.
	Timeout time.Duration
	Client  *http.Client
	Logger  *slog.Logger
}

// JWKS is the keys of one or more JWK Set URLs, fetched by keyfunc (over
// jwkset) and kept fresh by it. Close stops its refreshes.
type JWKS struct {
	kf      keyfunc.Keyfunc
	sources []*jwksSource
	maxAge  time.Duration
	refresh time.Duration
	cancel  context.CancelFunc
	// changed is called after any set was replaced, so that the verifier
	// forgets the tokens it verified with the old keys (a revoked key).
	changed atomic.Pointer[func()]
}

// ErrKeysUnavailable is why a JWKS cannot start, or why /readyz says no:
// a set that could not be fetched, or that has not been for longer than
// MaxAge.
var ErrKeysUnavailable = errors.New("token keys unavailable")

// NewJWKS fetches every set once (an error names the URL that failed, so
// a typo shows at start) and starts refreshing them.
func NewJWKS(opts JWKSOptions) (*JWKS, error) {
	if len(opts.URLs) == 0 {
		return nil, errors.New("auth: no JWKS URL")
	}
	opts.Refresh = orDefault(opts.Refresh, time.Hour)
	opts.UnknownKID = orDefault(opts.UnknownKID, time.Minute)
	opts.MaxAge = orDefault(opts.MaxAge, 24*time.Hour)
	opts.Timeout = orDefault(opts.Timeout, 10*time.Second)
	if opts.Client == nil {
		// Not http.DefaultClient: a provider that redirects for ever or a
		// transport another package changed are not our business.
		opts.Client = &http.Client{Timeout: opts.Timeout}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	j := &JWKS{maxAge: opts.MaxAge, refresh: opts.Refresh, cancel: cancel}
	client := jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{},
		// Longer than the rate allows: a request with an unknown kid is
		// refused at once rather than queued behind the limiter, since
		// Wait gives up when the next token is further away than this.
		// It also bounds the fetch the one lucky request makes.
		RateLimitWaitMax:  opts.Timeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(opts.UnknownKID), 1),
	}
	for _, u := range opts.URLs {
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			cancel()
			return nil, fmt.Errorf("auth: JWKS URL %q: want http:// or https://", u)
		}
		src := &jwksSource{url: u, Storage: jwkset.NewMemoryStorage(), set: j}
		j.sources = append(j.sources, src)
		store, err := jwkset.NewStorageFromHTTP(u, jwkset.HTTPClientStorageOptions{
			Client:          opts.Client,
			Ctx:             ctx,
			HTTPTimeout:     opts.Timeout,
			RefreshInterval: opts.Refresh,
			RefreshErrorHandler: func(ctx context.Context, err error) {
				src.failedAt.Store(time.Now().UnixNano())
				log.Warn("token keys not refreshed; the last good set stays in use", "url", u, "err", err,
					"fetched", src.fetched(), "expires", src.expires())
			},
			Storage: src,
		})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("auth: %w: %s: %w", ErrKeysUnavailable, u, err)
		}
		client.HTTPURLs[u] = store
	}
	storage, err := jwkset.NewHTTPClient(client)
	if err == nil {
		j.kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: storage, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: %w", err)
	}
	return j, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Close stops the scheduled refreshes.
func (j *JWKS) Close() { j.cancel() }

// KeyIDs lists the kids of the keys in force, for the start-up log.
func (j *JWKS) KeyIDs() []string {
	var ids []string
	for _, s := range j.sources {
		all, _ := s.KeyReadAll(context.Background())
		for _, k := range all {
			ids = append(ids, k.Marshal().KID)
		}
	}
	return ids
}

// Health says whether every set was fetched at its last try. err is set
// when a set has expired (MaxAge without a fetch): tokens signed with its
// keys are refused then.
func (j *JWKS) Health() (fresh bool, err error) {
	fresh = true
	for _, s := range j.sources {
		if s.expired() {
			return false, fmt.Errorf("%w: %s not fetched since %s", ErrKeysUnavailable, s.url, s.fetched().Format(time.RFC3339))
		}
		if s.failedAt.Load() > s.okAt.Load() {
			fresh = false
		}
	}
	return fresh, nil
}

// keyFunc finds the key a token names. Tokens checked against a provider's
// keys must carry a kid: a provider always sets one, and it is what
// lets a new key be fetched when it first appears. The key is pinned to
// its family as a key file's is, so a JWK without "alg" cannot be used
// with another algorithm than its type allows.
func (j *JWKS) keyFunc(t *jwt.Token) (any, error) {
	rawKid, ok := t.Header["kid"]
	if !ok {
		return nil, &reasonError{fmt.Errorf("%w: keys come from a JWKS URL, so the token must name one", ErrNeedKid)}
	}
	if _, ok := rawKid.(string); !ok {
		return nil, &reasonError{fmt.Errorf("%w: kid is not a string", ErrMalformed)}
	}
	raw, err := j.kf.Keyfunc(t)
	if err != nil {
		if errors.Is(err, jwkset.ErrKeyNotFound) || strings.Contains(err.Error(), "rate limiter") {
			if _, herr := j.Health(); herr != nil {
				return nil, &reasonError{fmt.Errorf("%w: %w", ErrUnknownKey, herr)}
			}
			return nil, &reasonError{fmt.Errorf("%w: no key of the provider has the token's kid", ErrUnknownKey)}
		}
		return nil, &reasonError{fmt.Errorf("%w: the key the kid names does not verify the token's alg", ErrSignature)}
	}
	k, err := newPublicKey(raw)
	if err != nil || !k.fits(t.Method.Alg()) {
		return nil, &reasonError{fmt.Errorf("%w: the key the kid names does not verify the token's alg", ErrSignature)}
	}
	return k.key, nil
}

// remoteMethods are the algorithms a provider's keys may verify: never
// HMAC, since a secret published at a URL is no secret.
var remoteMethods = slices.Concat(rsaMethods, []string{"ES256", "ES384", "ES512"}, ed25519Methods)

// jwksSource is the storage of one URL's keys. It notes when jwkset
// replaced them (a successful fetch: jwkset replaces only then), and
// hides them once they are older than MaxAge.
type jwksSource struct {
	url string
	jwkset.Storage
	set      *JWKS
	okAt     atomic.Int64 // unix nanoseconds of the last successful fetch
	failedAt atomic.Int64 // and of the last failed one
}

func (s *jwksSource) KeyReplaceAll(ctx context.Context, keys []jwkset.JWK) error {
	if err := s.Storage.KeyReplaceAll(ctx, keys); err != nil {
		return err
	}
	s.okAt.Store(time.Now().UnixNano())
	if f := s.set.changed.Load(); f != nil {
		(*f)()
	}
	return nil
}

func (s *jwksSource) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	if s.expired() {
		return jwkset.JWK{}, jwkset.ErrKeyNotFound
	}
	return s.Storage.KeyRead(ctx, kid)
}

func (s *jwksSource) KeyReadAll(ctx context.Context) ([]jwkset.JWK, error) {
	if s.expired() {
		return nil, nil
	}
	return s.Storage.KeyReadAll(ctx)
}

func (s *jwksSource) fetched() time.Time { return time.Unix(0, s.okAt.Load()) }
func (s *jwksSource) expires() time.Time { return s.fetched().Add(s.set.maxAge) }
func (s *jwksSource) expired() bool      { return !time.Now().Before(s.expires()) }

// KeysHealth is what /readyz reports about the keys.
type KeysHealth struct {
	Remote bool  // keys come from JWKS URLs; nothing else is set otherwise
	Fresh  bool  // every set was fetched at its last try
	Err    error // a set expired: its tokens are refused
}

// KeysHealth reports on keys taken from JWKS URLs.
func (v *Verifier) KeysHealth() KeysHealth {
	if v.remote == nil {
		return KeysHealth{}
	}
	fresh, err := v.remote.Health()
	return KeysHealth{Remote: true, Fresh: fresh, Err: err}
}

// newRemoteKeySet is a key set that asks the provider's keys, with a
// cache of its own: made again whenever a set is replaced.
func (v *Verifier) newRemoteKeySet() *keySet {
	return &keySet{
		remote:  v.remote,
		methods: remoteMethods,
		parser:  jwt.NewParser(append(slices.Clone(v.opts), jwt.WithValidMethods(remoteMethods))...),
	}
}

// usable is false when the keys a cached token was checked with have
// expired: the cache must not outlive them.
func (ks *keySet) usable() bool {
	if ks.remote == nil {
		return true
	}
	_, err := ks.remote.Health()
	return err == nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Close stops what the Verifier runs in the background: the refreshes of
// keys from JWKS URLs.
func (v *Verifier) Close() {
	if v.remote != nil {
		v.remote.Close()
	}
}
