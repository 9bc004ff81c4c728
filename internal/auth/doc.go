// Package auth turns a request's JWT into a user and the scopes that user
// holds, and signs the tokens that the `noticed token` command and dev mode
// hand out.
//
// Every check is done by github.com/golang-jwt/jwt/v5; this package only pins
// the algorithms to the configured key, maps the library's errors onto the
// few reasons noticed reports, and applies noticed's own rule for `sub`.
package auth
