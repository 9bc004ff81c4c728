// Package e2e proves noticed end to end with the parts a user deploys: a
// real redis-server, two noticed binaries, nginx running deploy/nginx.conf
// and a real browser. It holds tests only; run them with
//
//	go test -race ./e2e
//
// They need redis-server, nginx and chromium (Debian's packages). Without
// one of them the tests fail, saying what to install, unless
// NOTICED_ALLOW_SKIP=1, where they are skipped.
package e2e
