package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// manyPage opens n streams of one user with noticed.js, shared: false:
// n native EventSources in one page.
const manyPage = `<!doctype html>
<meta charset="utf-8">
<title>many EventSources</title>
<script type="module">
const p = new URLSearchParams(location.search);
const server = p.get("server"), n = Number(p.get("n"));
window.opens = new Array(n).fill(0);
window.got = Array.from({length: n}, () => []);
window.openCount = () => window.opens.filter((x) => x > 0).length;
window.gotAll = (id) => window.got.every((g) => g.includes(id));
const { connect } = await import(server + "/noticed.js");
window.srcs = [];
for (let i = 0; i < n; i++) {
  const s = connect({url: server + "/notice", token: p.get("token"), shared: false});
  s.onopen = () => { window.opens[i]++; };
  const rec = (e) => { window.got[i].push(e.lastEventId); };
  s.onmessage = rec;
  for (const t of ["order.shipped", "invoice.paid"]) s.addEventListener(t, rec);
  window.srcs.push(s);
}
</script>
`

// testCert is a self-signed certificate for 127.0.0.1, written as PEM
// files into dir (for nginx), with a pool that trusts it (for Go) and its
// SPKI hash (for Chromium).
type testCert struct {
	certFile, keyFile string
	pool              *x509.CertPool
	spki              string
}

func makeCert(t *testing.T, dir string) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "noticed e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := testCert{certFile: filepath.Join(dir, "noticed.crt"), keyFile: filepath.Join(dir, "noticed.key"), pool: x509.NewCertPool()}
	if err := os.WriteFile(c.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	// Readable by nginx's workers, which run as nobody under a root master
	// (the directory is the test's own, under /tmp).
	if err := os.WriteFile(c.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	c.pool.AddCert(cert)
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	c.spki = base64.StdEncoding.EncodeToString(sum[:])
	return c
}

// startNginxTLS runs deploy/nginx-tls.conf in front of the cluster's
// instances with a certificate the test makes.
func startNginxTLS(t *testing.T, c *cluster) (*nginxProc, testCert) {
	t.Helper()
	var cert testCert
	client := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{}}}
	n := startNginxConf(t, "nginx-tls.conf", "listen 8443 ssl http2;", "https://", client, [2]string{c.inst[0].addr, c.inst[1].addr},
		func(conf, dir string) string {
			cert = makeCert(t, dir)
			client.Transport.(*http.Transport).TLSClientConfig.RootCAs = cert.pool
			return strings.ReplaceAll(conf, "/etc/nginx/tls/", dir+"/")
		})
	return n, cert
}

// TestBrowserHTTP2: through deploy/nginx-tls.conf, twenty EventSources of
// one page (noticed.js with shared: false) are all open at once and all
// get an event, over one HTTP/2 connection (as Chromium reports it). Over
// HTTP/1.1 (deploy/nginx.conf), the same page gets 6 open and the others
// wait.
func TestBrowserHTTP2(t *testing.T) {
	// The browser must trust the certificate nginx is given, which is made
	// when nginx starts: nginx first, the browser after.
	c := newCluster(t, "-cors-origins", "*")
	n, cert := startNginxTLS(t, c)

	resp, err := n.client.Get(n.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("GET /healthz over TLS: %s, HSTS %q; want HTTP/2.0 and Strict-Transport-Security", resp.Proto, resp.Header.Get("Strict-Transport-Security"))
	}

	b := startBrowser(t, manyPage, chromedp.Flag("ignore-certificate-errors-spki-list", cert.spki))
	const user, many = "h2-1", 20
	var mu sync.Mutex
	type seen struct {
		protocol string
		conn     float64
	}
	var streams []seen
	ctx, closeTab := chromedp.NewContext(b.root, chromedp.WithListener(func(ev any) {
		if r, ok := ev.(*network.EventResponseReceived); ok && r.Type == network.ResourceTypeEventSource {
			mu.Lock()
			streams = append(streams, seen{r.Response.Protocol, r.Response.ConnectionID})
			mu.Unlock()
		}
	}))
	defer closeTab()
	q := url.Values{"server": {n.url}, "token": {c.token(user)}, "n": {fmt.Sprint(many)}}
	if err := chromedp.Do(ctx, chromedp.Navigate(b.pages+"/page.html?"+q.Encode())); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "20 EventSources open over HTTP/2", fmt.Sprintf(`window.openCount() === %d`, many))
	open := func() int { return c.inst[0].streamsOpen(t) + c.inst[1].streamsOpen(t) }
	if got := open(); got != many {
		t.Errorf("streams open on the instances: %d; want %d", got, many)
	}
	publishOne(t, c, user, 0)
	waitJS(t, ctx, "every EventSource to get the event", fmt.Sprintf(`window.gotAll(%q)`, c.lastSent(user)))
	publishOne(t, c, user, 1)
	waitJS(t, ctx, "every EventSource to get the second event", fmt.Sprintf(`window.gotAll(%q)`, c.lastSent(user)))

	mu.Lock()
	conns := map[float64]bool{}
	protocols := map[string]int{}
	for _, s := range streams {
		conns[s.conn] = true
		protocols[s.protocol]++
	}
	mu.Unlock()
	if len(streams) != many || protocols["h2"] != many || len(conns) != 1 {
		t.Errorf("Chromium saw %d EventSource responses, protocols %v, on %d connections; want %d, all h2, on 1", len(streams), protocols, len(conns), many)
	}
	t.Logf("over TLS + HTTP/2: %d of %d EventSources open at once, protocols %v, %d connection(s)", many, many, protocols, len(conns))
	fmt.Printf("e2e http2: eventsources=%d open=%d protocol_h2=%d connections=%d\n", many, many, protocols["h2"], len(conns))

	// The same page over HTTP/1.1: 6 connections per host, so 6 open.
	ctx1, closeTab1 := chromedp.NewContext(b.root)
	defer closeTab1()
	q.Set("server", c.url)
	if err := chromedp.Do(ctx1, chromedp.Navigate(b.pages+"/page.html?"+q.Encode())); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx1, "6 EventSources open over HTTP/1.1", `window.openCount() === 6`)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := poll(pctx, func() bool { return open() == many+6 }); err != nil {
		t.Errorf("streams open: %d; want %d", open(), many+6)
	}
	publishOne(t, c, user, 2)
	waitJS(t, ctx1, "the 6 open over HTTP/1.1 to get it", fmt.Sprintf(`window.got.filter((g) => g.includes(%q)).length === 6`, c.lastSent(user)))
	got1 := evalJS[int](t, ctx1, `window.openCount()`)
	if got1 != 6 {
		t.Errorf("over HTTP/1.1: %d of %d open; want 6", got1, many)
	}
	t.Logf("over HTTP/1.1: %d of %d EventSources open, the rest waiting for a connection", got1, many)
	fmt.Printf("e2e http1.1: eventsources=%d open=%d\n", many, got1)
}
