package main

import (
	"bufio"
	"bytes"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/noticed/noticed/internal/inbox"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/server"
	"github.com/noticed/noticed/internal/sse"
)

// The documentation is the contract a user reads: these tests fail when a
// flag, a route or an event type is added without it, so docs/ cannot fall
// behind the code unnoticed.

const docsDir = "../../docs"

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(docsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// flagRow matches a row of a flags table: | `-name` | default | meaning |.
var flagRow = regexp.MustCompile("(?m)^\\| `-([a-z0-9-]+)` \\|")

// TestFlagsDocumented checks that every flag of `noticed serve` has exactly
// one row in docs/operations.md's flags table, that no other docs page has a
// row for it (one place to keep up to date), and that the table names no flag
// serve does not have.
func TestFlagsDocumented(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var c Config
	serveFlags(fs, &c)

	rows := map[string]map[string]int{} // flag → page → rows
	pages, err := filepath.Glob(filepath.Join(docsDir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range flagRow.FindAllStringSubmatch(string(b), -1) {
			if rows[m[1]] == nil {
				rows[m[1]] = map[string]int{}
			}
			rows[m[1]][filepath.Base(p)]++
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		got := rows[f.Name]
		if got["operations.md"] != 1 || len(got) != 1 {
			t.Errorf("flag -%s: rows in docs/ %v, want exactly one, in operations.md", f.Name, got)
		}
	})
	for name, pages := range rows {
		if fs.Lookup(name) == nil {
			t.Errorf("docs/ has a flag row for -%s (%v), which `noticed serve` does not have", name, pages)
		}
	}
}

// TestRoutesDocumented walks the router the server serves and checks that
// docs/protocol.md names each route with its method, as "`GET /notice`".
func TestRoutesDocumented(t *testing.T) {
	routes, ok := server.New(server.Config{}).(chi.Routes)
	if !ok {
		t.Fatal("server.New no longer returns a chi router; find its routes another way")
	}
	protocol := readDoc(t, "protocol.md")
	n := 0
	err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		n++
		// A table cell may list several routes: "`GET /noticed.js`, `GET /noticed.d.ts`".
		if want := "`" + method + " " + route + "`"; !strings.Contains(protocol, want) {
			t.Errorf("docs/protocol.md does not name %s", want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the router has no routes")
	}
}

// TestEventTypesDocumented checks that every event type noticed itself
// sends on a stream is described in docs/protocol.md as "`event: TYPE`". The
// types are taken from the code that writes them.
func TestEventTypesDocumented(t *testing.T) {
	gap := eventType(t, sse.AppendGap(nil, notice.ID{}))
	protocol := readDoc(t, "protocol.md")
	for _, typ := range []string{gap, inbox.EventRead} {
		if want := "`event: " + typ + "`"; !strings.Contains(protocol, want) {
			t.Errorf("docs/protocol.md does not describe %s", want)
		}
	}
}

func eventType(t *testing.T, frame []byte) string {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(frame))
	for sc.Scan() {
		if typ, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			return typ
		}
	}
	t.Fatalf("no event line in %q", frame)
	return ""
}

// mdLink matches a Markdown link or image target: ](target).
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocLinks checks that every relative link in README.md and docs/*.md
// points at a file that exists and, with a #fragment into a Markdown file,
// at one of its headings (as GitHub makes their anchors).
func TestDocLinks(t *testing.T) {
	pages, err := filepath.Glob(filepath.Join(docsDir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, "../../README.md")
	anchors := map[string]map[string]bool{}
	headingsOf := func(path string) map[string]bool {
		path = filepath.Clean(path)
		if a, ok := anchors[path]; ok {
			return a
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a := map[string]bool{}
		inFence := false
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.HasPrefix(line, "```") {
				inFence = !inFence
			}
			if inFence || !strings.HasPrefix(line, "#") {
				continue
			}
			a[anchor(strings.TrimLeft(line, "# "))] = true
		}
		anchors[path] = a
		return a
	}
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			dest := p
			if file != "" {
				dest = filepath.Join(filepath.Dir(p), file)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: link %s: %v", filepath.Base(p), target, err)
					continue
				}
			}
			if frag != "" && strings.HasSuffix(dest, ".md") && !headingsOf(dest)[frag] {
				t.Errorf("%s: link %s: no such heading in %s", filepath.Base(p), target, filepath.Base(dest))
			}
		}
	}
}

// anchor is GitHub's id for a heading: lower case, punctuation other than
// '-' and '_' dropped, spaces as '-'.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r > 127 && isLetter(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isLetter(r rune) bool { return strings.ToUpper(string(r)) != strings.ToLower(string(r)) }
