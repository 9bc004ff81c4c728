package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Algorithms are pinned to the key's family, never read from the token alone:
// a verifier that let the token choose could be fooled into checking an HS256
// MAC with the public key's bytes as the secret, which anyone can compute.
var (
	hmacMethods    = []string{"HS256", "HS384", "HS512"}
	rsaMethods     = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ed25519Methods = []string{"EdDSA"}
)

// parsePublicKey reads the first key or certificate in a PEM file and returns
// the key with the algorithms it may verify. Other blocks before it (such as
// the "EC PARAMETERS" openssl writes) are skipped, and blocks after it are
// ignored so that a certificate chain file works: its leaf comes first.
func parsePublicKey(data []byte) (any, []string, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, nil, errors.New("no PEM public key or certificate found")
		}
		switch {
		case block.Type == "PUBLIC KEY":
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM public key: %w", err)
			}
			return pinMethods(pub)
		case block.Type == "RSA PUBLIC KEY":
			pub, err := x509.ParsePKCS1PublicKey(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM RSA public key: %w", err)
			}
			return pinMethods(pub)
		case block.Type == "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM certificate: %w", err)
			}
			return pinMethods(cert.PublicKey)
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			// Said plainly because it is an easy slip, and a private key has
			// no business on a server that only verifies.
			return nil, nil, fmt.Errorf("PEM block %q is a private key; give the public key", block.Type)
		}
	}
}

// pinMethods returns the algorithms a public key may verify. For ECDSA that is
// only the one defined for the key's curve (RFC 7518 §3.4), which keeps a
// P-256 key from being used with SHA-512 and the like.
func pinMethods(pub any) (any, []string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return k, rsaMethods, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return k, []string{"ES256"}, nil
		case elliptic.P384():
			return k, []string{"ES384"}, nil
		case elliptic.P521():
			return k, []string{"ES512"}, nil
		}
		return nil, nil, fmt.Errorf("ECDSA curve %s has no JWT algorithm", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return k, ed25519Methods, nil
	}
	return nil, nil, fmt.Errorf("unsupported public key type %T (want RSA, ECDSA or Ed25519)", pub)
}
