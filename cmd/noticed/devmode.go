package main

import (
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/noticed/noticed/internal/demo"
)

// devPage serves the demo page at / in dev mode only: it is for trying
// noticed out, not for production.
func devPage(dev *devMode) func(chi.Router) {
	if dev == nil {
		return nil
	}
	return demo.Mount
}

// devMode holds the tokens printed when no key is configured, and the file
// the random secret was written to for `noticed token`.
type devMode struct {
	subscriber, publisher string
	secretFile            string
	removeSecret          func()
}

// close removes the dev secret's file.
func (d *devMode) close() {
	if d != nil && d.removeSecret != nil {
		d.removeSecret()
	}
}

func (d *devMode) print(w io.Writer, addr net.Addr) {
	base := "http://" + hostPort(addr)
	bar := strings.Repeat("=", 78)
	fmt.Fprintf(w, `%s
 demo page (open in a browser):
   %s/?token=%s&pub=%s

 DEV MODE: no -jwt-secret or -jwt-key-file, so tokens are signed with a random
 secret made at start-up. These tokens work until this process stops (24h at most):

 subscriber (user "alice"):
   %s
 publisher (scope "publish"):
   %s

 watch alice's notifications:
   curl -N '%s/notice?token=%s'
 publish one (in another terminal):
   curl -H 'Authorization: Bearer %s' -d user=alice -d event=greeting -d data='hello alice' %s/notice
%s%s
`, bar, base, d.subscriber, d.publisher, d.subscriber, d.publisher, base, d.subscriber, d.publisher, base, d.mintHint(), bar)
}

// mintHint tells how to get a token for another user, when the secret
// could be kept for `noticed token`.
func (d *devMode) mintHint() string {
	if d.secretFile == "" {
		return ""
	}
	return fmt.Sprintf(` a token for any other user (signed with this server's secret, kept in %s):
   go run ./cmd/noticed token -sub 42
`, d.secretFile)
}

// hostPort names the listen address the way a local client reaches it.
func hostPort(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		return fmt.Sprintf("localhost:%d", tcp.Port)
	}
	return net.JoinHostPort(tcp.IP.String(), fmt.Sprint(tcp.Port))
}
