package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"
)

// Tokens are ID.SECRET: the id finds the stored record, which holds only
// the secret's SHA-256. A join token appends the CA's fingerprint, so that
// one string lets a new host both prove itself and trust the server.

// ErrBadToken means a string is not a token of the expected form.
var ErrBadToken = errors.New("pki: malformed token")

// Token is a parsed bearer or join token.
type Token struct {
	ID, Secret string
	// CAFingerprint is set in join tokens.
	CAFingerprint string
}

// NewToken makes a token with a fresh id and secret.
func NewToken() Token { return Token{ID: randomHex(6), Secret: randomHex(16)} }

// String is the token as users pass it.
func (t Token) String() string {
	s := t.ID + "." + t.Secret
	if t.CAFingerprint != "" {
		s += "." + t.CAFingerprint
	}
	return s
}

// Hash is what the store keeps of the secret.
func (t Token) Hash() string { return HashSecret(t.Secret) }

// HashSecret hashes a token secret for storage.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Matches reports, in constant time, whether the token's secret has hash.
func (t Token) Matches(hash string) bool {
	return subtle.ConstantTimeCompare([]byte(t.Hash()), []byte(hash)) == 1
}

// ParseToken reads an admin (ID.SECRET) or join (ID.SECRET.FINGERPRINT)
// token.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 || len(parts) > 3 || !isHex(parts[0], 12) || !isHex(parts[1], 32) {
		return Token{}, ErrBadToken
	}
	t := Token{ID: parts[0], Secret: parts[1]}
	if len(parts) == 3 {
		if !isHex(parts[2], 64) {
			return Token{}, ErrBadToken
		}
		t.CAFingerprint = parts[2]
	}
	return t, nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand does not fail
	return hex.EncodeToString(b)
}
