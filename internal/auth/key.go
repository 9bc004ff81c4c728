package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// Algorithms are pinned to the key's family, never read from the token alone:
// a verifier that let the token choose could be fooled into checking an HS256
// MAC with the public key's bytes as the secret, which anyone can compute.
var (
	hmacMethods    = []string{"HS256", "HS384", "HS512"}
	rsaMethods     = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ed25519Methods = []string{"EdDSA"}
)

// key is one verification key with the algorithms it may check.
type key struct {
	// id is what a token's kid header must say to pick this key: the
	// JWK's kid or a PEM block's "kid" header; for a public key the file
	// does not name, its RFC 7638 thumbprint (which some issuers use as
	// kid, and which the start-up log shows); "" for an unnamed secret,
	// whose thumbprint would be a hash of the secret.
	id      string
	named   bool // the file gave the id
	key     any  // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	methods []string
}

func (k *key) fits(alg string) bool { return slices.Contains(k.methods, alg) }

// parseKeyFile reads the keys of -jwt-key-file: a JWK Set (JSON, as
// identity providers publish it) or PEM with one or more public keys or
// certificates.
func parseKeyFile(data []byte) ([]key, error) {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		return parseJWKS(t)
	}
	return parsePEM(data)
}

// parsePEM reads every public key and certificate in a PEM file. Other
// blocks (such as the "EC PARAMETERS" openssl writes) are skipped. A
// certificate that signed the one before it is that one's chain, not a key
// of its own, so a certificate chain file gives its leaf only. A block may
// name its key with a "kid" header line.
func parsePEM(data []byte) ([]key, error) {
	var keys []key
	var prevCert *x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var pub any
		var cert *x509.Certificate
		var err error
		switch {
		case block.Type == "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case block.Type == "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case block.Type == "CERTIFICATE":
			cert, err = x509.ParseCertificate(block.Bytes)
			if err == nil {
				pub = cert.PublicKey
			}
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			// Said plainly because it is an easy slip, and a private key has
			// no business on a server that only verifies.
			return nil, fmt.Errorf("PEM block %d (%q) is a private key; give the public key", n, block.Type)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%q): %w", n, block.Type, err)
		}
		if cert != nil && prevCert != nil && prevCert.CheckSignatureFrom(cert) == nil {
			prevCert = cert
			continue
		}
		prevCert = cert
		k, err := newPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		if kid := strings.TrimSpace(block.Headers["kid"]); kid != "" {
			k.id, k.named = kid, true
		} else if k.id, err = thumbprint(k.key); err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key or certificate found")
	}
	return keys, checkIDs(keys)
}

// parseJWKS reads a JWK Set. As RFC 7517 §5 asks, keys noticed cannot use
// are passed over: a "kty" it does not know, and keys marked "use":"enc".
// A key of a known type that does not parse is an error: the file is the
// operator's own, and a broken key in it should not go unnoticed.
func parseJWKS(data []byte) ([]key, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("JWK Set: %w", err)
	}
	var keys []key
	for i, raw := range set.Keys {
		var head struct {
			Kty string `json:"kty"`
			Use string `json:"use"`
			Kid string `json:"kid"`
			Alg string `json:"alg"`
			D   string `json:"d"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("JWK Set key %d: %w", i, err)
		}
		if head.Use == "enc" || !slices.Contains([]string{"RSA", "EC", "OKP", "oct"}, head.Kty) {
			continue
		}
		where := fmt.Sprintf("JWK Set key %d", i)
		if head.Kid != "" {
			where += fmt.Sprintf(" (kid %q)", head.Kid)
		}
		if head.D != "" {
			return nil, fmt.Errorf("%s is a private key; give the public key", where)
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		var k key
		if secret, ok := jwk.Key.([]byte); ok {
			if len(secret) < MinSecretLen {
				return nil, fmt.Errorf("%s: %w", where, shortSecret(len(secret)))
			}
			k = key{key: secret, methods: hmacMethods}
		} else {
			var err error
			if k, err = newPublicKey(jwk.Key); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
		}
		if head.Alg != "" {
			if !k.fits(head.Alg) {
				return nil, fmt.Errorf("%s: alg %q does not suit a %s key", where, head.Alg, head.Kty)
			}
			k.methods = []string{head.Alg}
		}
		if head.Kid != "" {
			k.id, k.named = head.Kid, true
		} else if _, secret := k.key.([]byte); !secret {
			var err error
			if k.id, err = thumbprint(k.key); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New(`JWK Set has no signature verification key (kty RSA, EC, OKP or oct, "use" not "enc")`)
	}
	return keys, checkIDs(keys)
}

// checkIDs refuses two keys that one token could select alike: the same id
// and an algorithm in common.
func checkIDs(keys []key) error {
	for i := range keys {
		for j := range i {
			if keys[i].id != keys[j].id {
				continue
			}
			for _, m := range keys[i].methods {
				if keys[j].fits(m) {
					return fmt.Errorf("two keys have the id %q and both verify %s: give each its own kid", keys[i].id, m)
				}
			}
		}
	}
	return nil
}

// newPublicKey pins a public key to the algorithms it may verify. For ECDSA
// that is only the one defined for the key's curve (RFC 7518 §3.4), which
// keeps a P-256 key from being used with SHA-512 and the like.
func newPublicKey(pub any) (key, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return key{key: k, methods: rsaMethods}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return key{key: k, methods: []string{"ES256"}}, nil
		case elliptic.P384():
			return key{key: k, methods: []string{"ES384"}}, nil
		case elliptic.P521():
			return key{key: k, methods: []string{"ES512"}}, nil
		}
		return key{}, fmt.Errorf("ECDSA curve %s has no JWT algorithm", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return key{key: k, methods: ed25519Methods}, nil
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return key{}, errors.New("a private key; give the public key")
	}
	return key{}, fmt.Errorf("unsupported public key type %T (want RSA, ECDSA or Ed25519)", pub)
}

// thumbprint is a public key's RFC 7638 SHA-256 thumbprint, base64url.
func thumbprint(pub any) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// SigningSecret returns the first HMAC secret of a JWK Set and its kid, for
// `noticed token` when the keys rotate through a key file. A PEM file holds
// public keys only, so it has none.
func SigningSecret(keyFile []byte) (secret []byte, kid string, err error) {
	keys, err := parseKeyFile(keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("auth: %w", err)
	}
	for _, k := range keys {
		if s, ok := k.key.([]byte); ok {
			return s, k.id, nil
		}
	}
	return nil, "", errors.New("auth: the key file holds no HMAC (kty oct) secret to sign with")
}
