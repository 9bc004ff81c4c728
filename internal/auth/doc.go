// Package auth turns a request's JWT into a user and the scopes that user
// holds, and signs the tokens that the `noticed token` command and dev mode
// hand out.
//
// Every check is done by github.com/golang-jwt/jwt/v5; this package only
// picks the one key a token is checked with (by its kid, from a PEM file or
// a JWK Set that can be reloaded while serving), pins the algorithms to that
// key, maps the library's errors onto the few reasons noticed reports, and
// applies noticed's own rule for `sub`.
package auth
