package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/golang-jwt/jwt/v5"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/strictjson"
)

// maxTokenLen bounds the work one request can ask of the parser. Real tokens
// are well under 4 KiB; anything this long is not one of ours.
const maxTokenLen = 16 << 10

// Config says which tokens a Verifier accepts.
type Config struct {
	Secret []byte // HMAC secret (-jwt-secret)
	// KeyFile is the contents of -jwt-key-file: PEM with one or more RSA,
	// ECDSA or Ed25519 public keys or certificates, or a JWK Set.
	KeyFile    []byte
	JWKS       *JWKS         // keys from identity providers' JWKS URLs (jwks.go)
	Issuer     string        // when set, iss must equal it (-jwt-issuer)
	Audience   string        // when set, aud must contain it (-jwt-audience)
	Leeway     time.Duration // clock skew allowed on exp and nbf
	MaxUserLen int           // longest sub in bytes (-max-user-len); 0 or over notice.MaxUserLen: notice.MaxUserLen
}

// Verifier checks tokens against a set of keys, which ReloadKeys may
// replace while it is in use. It is safe for concurrent use.
type Verifier struct {
	fromFile   bool
	issuer     string
	maxUserLen int
	leeway     time.Duration
	opts       []jwt.ParserOption // without the algorithms, which come with the keys
	keys       atomic.Pointer[keySet]
	remote     *JWKS
}

// keySet is the keys in force and a parser limited to their algorithms.
// It is never changed once made (but for its cache): a reload makes a new
// one, and so starts with an empty cache.
type keySet struct {
	keys    []key
	methods []string
	parser  *jwt.Parser
	cache   verified
	remote  *JWKS // keys come from a provider instead
}

// verified remembers the claims of tokens recently verified with a key
// set, so that the same token presented again (a producer's every POST, a
// browser's reconnect) skips decoding and the signature check. Only
// tokens that passed are kept; their exp is checked again on every use.
// Bounded: past maxCached, an arbitrary entry makes room.
type verified struct {
	mu sync.Mutex
	m  map[string]Claims
}

const (
	maxCached      = 4096
	maxCachedToken = 2048 // longer tokens are verified every time
)

func (c *verified) get(token string) (Claims, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.m[token]
	return cl, ok
}

func (c *verified) put(token string, cl Claims) {
	if len(token) > maxCachedToken {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]Claims)
	}
	if len(c.m) >= maxCached {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[token] = cl
}

// NewVerifier returns a Verifier for cfg. Exactly one of Secret, KeyFile
// and JWKS must be set: a server that silently preferred one would leave an
// operator unsure which key is live.
func NewVerifier(cfg Config) (*Verifier, error) {
	hasSecret, hasKey := len(cfg.Secret) > 0, len(cfg.KeyFile) > 0
	if n := btoi(hasSecret) + btoi(hasKey) + btoi(cfg.JWKS != nil); n != 1 {
		return nil, errors.New("auth: set exactly one of a JWT secret, a JWT key file and JWKS URLs")
	}
	if hasSecret && len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("auth: %w", shortSecret(len(cfg.Secret)))
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("auth: JWT leeway must not be negative")
	}
	if cfg.MaxUserLen < 0 {
		return nil, errors.New("auth: the longest user id must not be negative")
	}
	v := &Verifier{fromFile: hasKey, issuer: cfg.Issuer, maxUserLen: cfg.MaxUserLen, leeway: cfg.Leeway}
	// exp is deliberately not required: long-lived service tokens are a
	// choice the issuer makes. jwt still enforces exp and nbf when present.
	v.opts = []jwt.ParserOption{jwt.WithLeeway(cfg.Leeway)}
	if cfg.Issuer != "" {
		v.opts = append(v.opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		v.opts = append(v.opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.JWKS != nil {
		v.remote = cfg.JWKS
		v.keys.Store(v.newRemoteKeySet())
		renew := func() { v.keys.Store(v.newRemoteKeySet()) }
		cfg.JWKS.changed.Store(&renew)
		return v, nil
	}
	if hasSecret {
		// A copy, so a caller reusing its buffer cannot change the key.
		v.keys.Store(v.newKeySet([]key{{key: bytes.Clone(cfg.Secret), methods: hmacMethods}}))
		return v, nil
	}
	if err := v.ReloadKeys(cfg.KeyFile); err != nil {
		return nil, err
	}
	return v, nil
}

// ReloadKeys replaces the keys with those of keyFile, the key file's new
// contents: every Verify that starts after it returns uses them. Tokens
// already verified are not looked at again. On error the keys in force
// stay.
func (v *Verifier) ReloadKeys(keyFile []byte) error {
	if !v.fromFile {
		return errors.New("auth: keys come from a secret, not a key file: nothing to reload")
	}
	keys, err := parseKeyFile(keyFile)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	v.keys.Store(v.newKeySet(keys))
	return nil
}

func (v *Verifier) newKeySet(keys []key) *keySet {
	ks := &keySet{keys: keys}
	// In a fixed order, whatever the order of the keys.
	for _, family := range [][]string{hmacMethods, rsaMethods, {"ES256", "ES384", "ES512"}, ed25519Methods} {
		for _, m := range family {
			if slices.ContainsFunc(keys, func(k key) bool { return k.fits(m) }) {
				ks.methods = append(ks.methods, m)
			}
		}
	}
	ks.parser = jwt.NewParser(append(slices.Clone(v.opts), jwt.WithValidMethods(ks.methods))...)
	return ks
}

// Algorithms returns the JWT algorithms the keys in force accept, for the
// start-up log line.
func (v *Verifier) Algorithms() []string {
	return slices.Clone(v.keys.Load().methods)
}

// KeyIDs returns the id of each key in force, in the file's order, for the
// log: "" for an unnamed secret.
func (v *Verifier) KeyIDs() []string {
	ks := v.keys.Load()
	ids := make([]string, len(ks.keys))
	for i, k := range ks.keys {
		ids[i] = k.id
	}
	return ids
}

// Verify checks token and returns its claims. Every error wraps exactly one of
// the package's sentinels.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxTokenLen)
	}
	ks := v.keys.Load()
	if c, ok := ks.cache.get(token); ok && (c.ExpiresAt.IsZero() || time.Now().Before(c.ExpiresAt.Add(v.leeway))) && ks.usable() {
		return &c, nil
	}
	if err := checkHeader(token); err != nil {
		return nil, err
	}
	var tc tokenClaims
	parsed, err := ks.parser.ParseWithClaims(token, &tc, ks.keyFunc)
	if err != nil {
		return nil, v.classify(err, ks, parsed, &tc)
	}
	// Only now is the payload trusted enough to judge. It is valid UTF-8
	// (UnmarshalJSON refused anything else, which encoding/json would have
	// turned into U+FFFD, so that two different subs could name one user).
	var sub string
	if json.Unmarshal(tc.Subject, &sub) != nil || notice.ValidUserLen(sub, v.maxUserLen) != nil {
		return nil, fmt.Errorf("%w: sub must be a string of 1 to %d bytes of UTF-8 without control characters, white space, { or }",
			ErrSubject, v.userLen())
	}
	scopes, err := parseScope(tc.Scope)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	c := &Claims{Subject: sub, Scopes: scopes}
	if tc.ExpiresAt != nil {
		c.ExpiresAt = tc.ExpiresAt.Time
	}
	ks.cache.put(token, *c)
	return c, nil
}

func (v *Verifier) userLen() int {
	if v.maxUserLen < 1 || v.maxUserLen > notice.MaxUserLen {
		return notice.MaxUserLen
	}
	return v.maxUserLen
}

// checkHeader refuses two things the jwt library lets through in a
// token's header: a name given twice (the library keeps the last one, so
// two readers of one token could see different algorithms or kids), and
// crit (RFC 7515 §4.1.11), which names extensions the verifier must
// understand or else refuse the token: noticed understands none. What else
// is wrong with the token the parser says after this.
func checkHeader(token string) error {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return nil
	}
	err = strictjson.Object(raw, func(name string, _ jsontext.Value) error {
		if name == "crit" {
			return fmt.Errorf("%w: the crit header names an extension noticed does not understand", ErrMalformed)
		}
		return nil
	})
	switch {
	case errors.Is(err, strictjson.ErrDuplicate):
		return fmt.Errorf("%w: the header names a parameter twice", ErrMalformed)
	case errors.Is(err, strictjson.ErrInvalid):
		return fmt.Errorf("%w: the header is not a JSON object in UTF-8", ErrMalformed)
	}
	return err
}

// keyFunc picks the one key a token is checked with; a token is never
// tried against several. With a kid, the key of that id; failing that, the
// only key that fits the algorithm if the file did not name it (a plain
// PEM file, or -jwt-secret: the token's kid has nothing to match then).
// Without a kid, the only key that fits the algorithm. The algorithm check
// repeats what WithValidMethods already did, because this is the one place
// a key is handed out and must not depend on a parser option staying in
// place.
func (ks *keySet) keyFunc(t *jwt.Token) (any, error) {
	if ks.remote != nil {
		return ks.remote.keyFunc(t)
	}
	alg := t.Method.Alg()
	if !slices.Contains(ks.methods, alg) {
		return nil, errAlgorithm
	}
	var only *key // the one key that fits alg, if there is just one
	fitting := 0
	for i := range ks.keys {
		if ks.keys[i].fits(alg) {
			only = &ks.keys[i]
			fitting++
		}
	}
	if fitting != 1 {
		only = nil
	}
	rawKid, hasKid := t.Header["kid"]
	if !hasKid {
		if only == nil {
			return nil, &reasonError{fmt.Errorf("%w: %d keys verify %s, so the token must name one", ErrNeedKid, fitting, alg)}
		}
		return only.key, nil
	}
	kid, ok := rawKid.(string)
	if !ok {
		return nil, &reasonError{fmt.Errorf("%w: kid is not a string", ErrMalformed)}
	}
	named := false
	for i := range ks.keys {
		if ks.keys[i].id == kid {
			if ks.keys[i].fits(alg) {
				return ks.keys[i].key, nil
			}
			named = true
		}
	}
	if named {
		return nil, &reasonError{fmt.Errorf("%w: the key the kid names does not verify %s", ErrSignature, alg)}
	}
	if only != nil && !only.named {
		return only.key, nil
	}
	return nil, &reasonError{fmt.Errorf("%w: no key has the token's kid", ErrUnknownKey)}
}

// reasonError carries a reason of our own (from keyFunc or the claims'
// UnmarshalJSON) through the jwt library's error.
type reasonError struct{ err error }

func (e *reasonError) Error() string { return e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

var errAlgorithm = errors.New("algorithm not allowed for the configured key")

// classify maps a jwt error onto our sentinels. The jwt error itself is not
// wrapped: its text can quote the token's header (the alg name, say), and our
// messages must not carry token text.
func (v *Verifier) classify(err error, ks *keySet, t *jwt.Token, tc *tokenClaims) error {
	// Our own refusals come back inside jwt's; they carry no token text, so
	// they are passed on as they are.
	var ke *reasonError
	if errors.As(err, &ke) {
		return ke.err
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: not a well-formed JWT", ErrMalformed)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		if t == nil || t.Method == nil || !slices.Contains(ks.methods, t.Method.Alg()) {
			return fmt.Errorf("%w: %w", ErrSignature, errAlgorithm)
		}
		return fmt.Errorf("%w: signature does not match the configured key", ErrSignature)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: exp is in the past", ErrExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Errorf("%w: nbf is in the future", ErrNotYetValid)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fmt.Errorf("%w: iss does not match", ErrIssuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("%w: aud does not match", ErrAudience)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// jwt says only that some claim is missing; only iss and aud can be
		// required here, so the payload tells which.
		if v.issuer != "" && tc.Issuer == "" {
			return fmt.Errorf("%w: iss is missing", ErrIssuer)
		}
		return fmt.Errorf("%w: aud is missing", ErrAudience)
	}
	return fmt.Errorf("%w: claims could not be checked", ErrMalformed)
}
