// Package e2e proves noticed end to end with the parts a user deploys: a
// real redis-server, two noticed binaries, nginx running deploy/nginx.conf
// (and deploy/nginx-tls.conf), a real browser running noticed.js, and the
// producer examples of examples/producers. It holds tests only, in a Go
// module of its own (replacing the product with ../) so that what only
// these tests need, the browser driver, is no dependency of the product;
// run them from this directory with
//
//	go test -race ./...
//
// They need redis-server, nginx and chromium (Debian's packages), and for
// the producer examples python3-redis, node with the example's npm
// packages, redis-cli and curl (scripts/test.sh installs them all).
// Without one of them the tests fail, saying what to install, unless
// NOTICED_ALLOW_SKIP=1, where they are skipped.
package e2e
