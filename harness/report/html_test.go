package report

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// demoDir returns where to keep rendered demo reports: $AGENTTLS_REPORT_DEMO when set (to look
// at them), else a test temp dir.
func demoDir(t *testing.T) string {
	if d := os.Getenv("AGENTTLS_REPORT_DEMO"); d != "" {
		d = filepath.Join(d, t.Name())
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// parseHTML parses a page and returns its nodes in document order.
func parseHTML(t *testing.T, data []byte) []*html.Node {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		nodes = append(nodes, n)
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return nodes
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func hasClass(n *html.Node, c string) bool {
	v, _ := attr(n, "class")
	for _, f := range strings.Fields(v) {
		if f == c {
			return true
		}
	}
	return false
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// checkSelfContained fails on anything that would fetch a resource when the page opens.
func checkSelfContained(t *testing.T, nodes []*html.Node) {
	t.Helper()
	for _, n := range nodes {
		if n.Type != html.ElementNode {
			continue
		}
		switch n.Data {
		case "link", "iframe", "img", "object", "embed":
			t.Errorf("page has a <%s> element", n.Data)
		case "script":
			if _, ok := attr(n, "src"); ok {
				t.Error("page loads an external script")
			}
		case "style":
			css := textOf(n)
			if strings.Contains(css, "@import") || strings.Contains(css, "url(") {
				t.Error("inline CSS refers to an external resource")
			}
		}
		if v, ok := attr(n, "src"); ok {
			t.Errorf("<%s src=%q>", n.Data, v)
		}
		if v, ok := attr(n, "href"); ok && (strings.Contains(v, "://") || strings.HasPrefix(v, "//")) {
			t.Errorf("<%s href=%q> points off the page's directory", n.Data, v)
		}
	}
}

func TestHTMLReport(t *testing.T) {
	dir := demoDir(t)
	r := synthRun(t, dir, "v0.15.0")
	r.Cells = append(r.Cells, extraCells()...)
	// A transcript with markup in it must be escaped, and one outside dir must not be read.
	esc := findCell(t, r, "private/strict/cs-absent/sv-unset/direct")
	if err := os.WriteFile(filepath.Join(dir, esc.Transcript), []byte("<script>alert(1)</script>\n\x1b[32mok\x1b[0m & done\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "outside.txt"), []byte("SECRET-OUTSIDE"), 0o644); err != nil {
		t.Fatal(err)
	}
	findCell(t, r, "public/strict/cs-absent/sv-unset/direct").Transcript = "../outside.txt"
	if err := WriteAll(dir, r, WithTranscripts(dir)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	nodes := parseHTML(t, data)
	checkSelfContained(t, nodes)

	tiles := map[string]*html.Node{}
	inGrid := 0
	details := map[string]*html.Node{}
	var gridTable *html.Node
	for _, n := range nodes {
		if n.Type != html.ElementNode {
			continue
		}
		if n.Data == "table" && hasClass(n, "grid") {
			gridTable = n
		}
		if n.Data == "a" && hasClass(n, "tile") {
			id, _ := attr(n, "data-cell")
			tiles[id] = n
			for p := n.Parent; p != nil; p = p.Parent {
				if p == gridTable && gridTable != nil {
					inGrid++
					break
				}
			}
		}
		if n.Data == "details" && hasClass(n, "cell") {
			id, _ := attr(n, "data-id")
			details[id] = n
		}
	}
	if inGrid != 144 {
		t.Errorf("%d tiles in the grid, want 144", inGrid)
	}
	if len(tiles) != len(r.Cells) || len(details) != len(r.Cells) {
		t.Errorf("%d tiles and %d cell entries for %d cells", len(tiles), len(details), len(r.Cells))
	}
	for _, c := range r.Cells {
		tile := tiles["c-"+slug(c.ID)]
		if tile == nil {
			t.Errorf("no tile for %s", c.ID)
			continue
		}
		if details[c.ID] == nil {
			t.Errorf("no entry for %s", c.ID)
		}
		if href, _ := attr(tile, "href"); href != "#c-"+slug(c.ID) {
			t.Errorf("%s: embedded report tile links to %q", c.ID, href)
		}
		if got, want := hasClass(tile, "m-differs"), c.Differs(); got != want {
			t.Errorf("%s: differs mark %v, want %v", c.ID, got, want)
		}
		if got, want := hasClass(tile, "m-exposed"), c.IsExposed(); got != want {
			t.Errorf("%s: exposed mark %v, want %v", c.ID, got, want)
		}
		if c.Differs() && !strings.Contains(textOf(tile), "≠") {
			t.Errorf("%s: differing tile has no ≠ badge", c.ID)
		}
		if c.IsExposed() && !strings.Contains(textOf(tile), "⚠") {
			t.Errorf("%s: exposed tile has no warning sign", c.ID)
		}
		wantV := "v-" + string(c.Observed)
		if c.Status == StatusSkipped {
			wantV = "v-skipped"
		}
		if !hasClass(tile, wantV) {
			t.Errorf("%s: tile lacks verdict class %s", c.ID, wantV)
		}
	}
	// Extra cells appear in their own section, not in the grid.
	page := string(data)
	if !strings.Contains(page, "Cells outside the standard matrix (5)") {
		t.Error("no section for the cells outside the standard axes")
	}
	// Transcripts: embedded and escaped; the one outside dir not read.
	d := textOf(details["private/strict/cs-absent/sv-unset/direct"])
	if !strings.Contains(d, "<script>alert(1)</script>\nok & done") {
		t.Errorf("embedded transcript missing or not cleaned: %q", d)
	}
	if strings.Contains(page, "<script>alert(1)") {
		t.Error("transcript markup reached the page unescaped")
	}
	if strings.Contains(page, "SECRET-OUTSIDE") || !strings.Contains(page, "leaves the results directory") {
		t.Error("a transcript path outside the results directory was read")
	}
	if !strings.Contains(textOf(details["private/strict/cs-wrong/sv-false/mitm"]), "[ERROR]  Configured cacerts checksum") {
		t.Error("a regular transcript is not embedded")
	}
	for _, want := range []string{
		"Failures (3)", "⚠ 19 cells EXPOSED", "18 expected by the oracle", "1 not expected, and failing", "Exposed (19)",
		"system-agent <b>v0.15.0</b>", "make e2e FOCUS=&#39;private/system-store/cs-absent/sv-false/mitm&#39;",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// The exposing variable is the one sh reads; the legacy STRICT_VERIFY is overwritten by the
	// served preamble and exposes nothing.
	if !strings.Contains(page, "the documented cost of <code>system-store</code> or <code>CATTLE_AGENT_STRICT_VERIFY=false</code>") ||
		strings.Contains(page, "<code>STRICT_VERIFY=false</code>") {
		t.Error("the EXPOSED banner does not name CATTLE_AGENT_STRICT_VERIFY=false as the exposing setting")
	}
	if strings.Index(page, "Failures (3)") > strings.Index(page, `class="grid"`) {
		t.Error("failures are not above the grid")
	}
	screenshot(t, filepath.Join(dir, HTMLFile))
}

func TestHTMLLinksTranscriptFilesWithoutEmbedding(t *testing.T) {
	r := synthRun(t, "", "v0.15.0")
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	nodes := parseHTML(t, b.Bytes())
	checkSelfContained(t, nodes)
	c := findCell(t, r, "private/strict/cs-absent/sv-unset/mitm")
	found := false
	for _, n := range nodes {
		if n.Type == html.ElementNode && n.Data == "a" && hasClass(n, "tile") {
			if id, _ := attr(n, "data-cell"); id == "c-"+slug(c.ID) {
				href, _ := attr(n, "href")
				if href != c.Transcript {
					t.Errorf("tile links to %q, want the transcript %q", href, c.Transcript)
				}
				found = true
			}
		}
	}
	if !found {
		t.Fatal("tile not found")
	}
	if strings.Contains(b.String(), `<pre class="tr">`) {
		t.Error("transcripts embedded without WithTranscripts")
	}
}

func TestHTMLSubsetAndOnlyExtraCells(t *testing.T) {
	// A smoke subset shows a small grid; a field-case run with no standard cell shows no grid.
	full := synthRun(t, "", "v0.15.0")
	smoke := *full
	smoke.Cells = nil
	for _, c := range full.Cells {
		if c.Params.CA == "private" && c.Params.Mode == "strict" && c.Params.StrictVerify == "unset" {
			smoke.Cells = append(smoke.Cells, c)
		}
	}
	var b bytes.Buffer
	if err := WriteHTML(&b, &smoke); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), `<th class="ax">sv-`); n != 3 {
		t.Errorf("smoke grid has %d strict-verify columns, want 3", n)
	}
	if strings.Contains(b.String(), "ca <b>public</b>") {
		t.Error("smoke grid shows a row with no cell")
	}
	field := *full
	field.Cells = extraCells()
	b.Reset()
	if err := WriteHTML(&b, &field); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), `class="grid"`) || !strings.Contains(b.String(), "Cells outside the standard matrix (5)") {
		t.Error("a run of field cases should show only the extra section")
	}
	if err := WriteHTML(&b, &field, WithTranscripts("")); err == nil {
		t.Error("WithTranscripts(\"\") accepted")
	}
}

// screenshot renders the page in headless Chromium when it is installed: a page with a script
// must run it to its end (the script marks <body data-ready>), and a PNG is taken for a person
// to look at (kept when AGENTTLS_REPORT_DEMO is set).
func screenshot(t *testing.T, page string) {
	t.Helper()
	if testing.Short() {
		return
	}
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Log("chromium not installed (apt-get install chromium): render check skipped")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	profile := t.TempDir()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + profile}
	dom, err := exec.CommandContext(ctx, bin, append(args, "--dump-dom", "file://"+page)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	if bytes.Contains(dom, []byte("<script>")) && !bytes.Contains(dom, []byte(`data-ready="1"`)) {
		t.Error("the page's script did not run to its end in Chromium")
	}
	png := strings.TrimSuffix(page, ".html") + ".png"
	out, err := exec.CommandContext(ctx, bin, append(args, "--hide-scrollbars", "--screenshot="+png, "--window-size=1600,1200", "file://"+page)...).CombinedOutput()
	if err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 10000 {
		t.Errorf("screenshot %s missing or blank: %v", png, err)
	}
}
