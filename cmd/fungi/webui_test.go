package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/fungistor/fungistor/node"
)

// The web console in a real headless Chromium against a real 5-node
// testnet: every page loads with no JavaScript error, the cluster page
// names every member and the leader, an added object shows full, its
// grid turns its holder's fragments unreachable after a SIGKILL without a
// reload, and an upload from the page gives the CID `fungi add
// --only-hash` gives. $FUNGI_WEBUI_SHOTS=DIR also writes the screenshots
// there (docs/ has them for the README).
func TestWebUI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 5 daemons and a browser")
	}
	chrome := chromium(t)
	c := upCluster(t, 5, nil)
	b := newBrowser(t, chrome)
	base := "http://" + c.st.Nodes[0].API + "/webui/"
	shots := t.TempDir()

	st, err := c.status(1)
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor("a healthy cluster of 5", 30*time.Second, func() error {
		if st, err = c.status(1); err != nil {
			return err
		}
		if !st.Healthy || len(st.Members) != 5 {
			return fmt.Errorf("healthy %v, %d members", st.Healthy, len(st.Members))
		}
		return nil
	})

	// every page, from a fresh load of its address
	for _, p := range []string{"overview", "node", "cluster", "objects", "files", "activity"} {
		route := map[string]string{"overview": "#/", "files": "#/files/"}[p]
		if route == "" {
			route = "#/" + p
		}
		b.load(base+route, p)
	}

	// the cluster page: the five members, the leader
	b.load(base+"#/cluster", "cluster")
	for _, m := range st.Members {
		b.wait(fmt.Sprintf(`#members tr[data-peer=%q]`, m.ID))
	}
	b.wait(fmt.Sprintf(`#members tr[data-peer=%q][data-leader="1"]`, st.Leader))
	if got := b.text("#leader"); !strings.Contains(got, st.Leader) {
		t.Fatalf("#leader says %q, the leader is %s", got, st.Leader)
	}

	// an object of 3 blocks, linked into the shared tree
	rng := rand.New(rand.NewPCG(14, 1))
	dir := t.TempDir()
	data := randomBytes(rng, 2<<20+12345)
	path := filepath.Join(dir, "console.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := c.api(1).Add(ctx, path, node.AddOptions{ToFiles: "/shared/"})
	if err != nil {
		t.Fatal(err)
	}
	root := res.Root
	b.load(base+"#/objects", "objects")
	b.wait(fmt.Sprintf(`#objects tr[data-cid=%q][data-health="full"]`, root))
	b.do(chromedp.SendKeys(chromedp.CSS("#search"), root[len(root)-12:]))
	b.waitCount(`#objects tr[data-cid]`, 1)
	b.load(base+"#/files/", "files")
	b.wait(`#tree tr[data-name="shared"]`)
	b.load(base+"#/files/shared", "files")
	b.wait(`#tree tr[data-name="console.bin"]`)
	b.load(base+"#/cluster", "cluster")
	b.screenshot(filepath.Join(shots, "cluster.png"))

	// the object's grid: blocks × fragments, all present
	sst := c.statJSON(1, root)
	n := len(sst.Layout[0].Holders)
	b.load(base+"#/object/"+root, "object")
	b.waitCount(`#grid .cell[data-state="present"]`, len(sst.Layout)*n)
	if got := b.text("#get-cmd"); got != "fungi get "+root {
		t.Fatalf("#get-cmd says %q", got)
	}
	b.screenshot(filepath.Join(shots, "object.png"))

	// a small object is kept in the replicated metadata: its grid is one
	// inline row, no fragment cell, and it is full
	tiny := filepath.Join(dir, "tiny.txt")
	if err := os.WriteFile(tiny, []byte("a small object\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr, err := c.api(1).Add(ctx, tiny, node.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.load(base+"#/object/"+tr.Root, "object")
	b.waitCount(`#grid .cell[data-state="inline"]`, 1)
	b.waitCount(`#grid .cell[data-state="present"], #grid .cell[data-state="missing"]`, 0)
	b.waitCount(`#obj-health .h-full`, 1)
	b.load(base+"#/object/"+root, "object")
	b.waitCount(`#grid .cell[data-state="present"]`, len(sst.Layout)*n)

	// SIGKILL a holder that is not a voter; the open page, not reloaded,
	// turns its fragments unreachable
	nonvoters := st.Nonvoters
	victim := ""
	for _, h := range sst.Layout[0].Holders {
		if slices.Contains(nonvoters, h) {
			victim = h
			break
		}
	}
	if victim == "" {
		t.Fatalf("no non-voter among the holders %v (non-voters %v)", sst.Layout[0].Holders, nonvoters)
	}
	held := 0
	for _, l := range sst.Layout {
		for _, h := range l.Holders {
			if h == victim {
				held++
			}
		}
	}
	b.eval(`window.__sameDocument = true`)
	vi, _ := strconv.Atoi(strings.TrimPrefix(c.nodeOf(victim), "node "))
	c.must(0, "testnet", "stop", "--dir", c.dir, "--kill", strconv.Itoa(vi))
	killed := time.Now()
	b.waitCount(fmt.Sprintf(`#grid .cell[data-holder=%q][data-state="unreachable"]`, victim), held)
	t.Logf("the grid marked %d fragments of %s unreachable %v after the SIGKILL", held, c.nodeOf(victim), time.Since(killed).Round(100*time.Millisecond))
	if b.eval(`window.__sameDocument === true`) != true {
		t.Fatal("the page was reloaded")
	}
	b.screenshot(filepath.Join(shots, "object-killed.png"))

	// an upload from the page: the CID of fungi add --only-hash
	up := filepath.Join(dir, "upload.bin")
	if err := os.WriteFile(up, randomBytes(rng, 1<<20+777), 0o644); err != nil {
		t.Fatal(err)
	}
	want := c.must(0, "add", "--only-hash", "-q", up)
	b.load(base+"#/objects", "objects")
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#upload"), []string{up}))
	b.wait(fmt.Sprintf(`#upload-result[data-cid=%q]`, want))
	b.wait(fmt.Sprintf(`#objects tr[data-cid=%q]`, want))

	// the README shows the cluster and the grid after the kill
	docs := map[string]string{"cluster.png": "webui-cluster.png", "object-killed.png": "webui-object.png"}
	for _, s := range []string{"cluster.png", "object.png", "object-killed.png"} {
		checkNotBlank(t, filepath.Join(shots, s))
		if out := os.Getenv("FUNGI_WEBUI_SHOTS"); out != "" && docs[s] != "" {
			img, _ := os.ReadFile(filepath.Join(shots, s))
			if err := os.WriteFile(filepath.Join(out, docs[s]), img, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.checkErrors()
}

// chromium finds Debian's Chromium (scripts/deps.sh installs it).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: run scripts/deps.sh (it installs Debian's chromium)")
	return ""
}

// browser is one headless Chromium tab and what its pages logged.
type browser struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	// errs are JavaScript exceptions, console.error calls and error log
	// entries (a failed request, a refused script): any fails the test.
	errs []string
}

func newBrowser(t *testing.T, chrome string) *browser {
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	// Listen starts the browser; chromedp enables the runtime and log
	// domains of every tab
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.errs = append(b.errs, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.errs = append(b.errs, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				b.errs = append(b.errs, fmt.Sprintf("log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("starting %s: %v", chrome, err)
	}
	return b
}

// do runs steps in the tab, with a limit.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v\n%s", err, b.report())
	}
}

// eval evaluates a JavaScript expression in the page.
func (b *browser) eval(js string) any {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
	if err != nil {
		b.t.Fatalf("browser: %s: %v\n%s", js, err, b.report())
	}
	return v
}

// load opens url and waits until page has rendered its first data.
func (b *browser) load(url, page string) {
	b.t.Helper()
	b.do(chromedp.Navigate(url))
	b.wait(fmt.Sprintf(`#page[data-page=%q][data-ready="1"]`, page))
	b.checkErrors()
}

// wait waits for an element matching sel.
func (b *browser) wait(sel string) {
	b.t.Helper()
	b.do(chromedp.WaitReady(chromedp.CSS(sel)))
}

// waitCount waits until exactly n elements match sel.
func (b *browser) waitCount(sel string, n int) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got int
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		var err error
		got, err = chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
		cancel()
		if err == nil && got == n {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: %d elements, want %d (err %v)\n%s", sel, got, n, err, b.report())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v\n%s", sel, err, b.report())
	}
	return strings.TrimSpace(s)
}

func (b *browser) screenshot(path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	img, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("browser: screenshot: %v", err)
	}
	if err := os.WriteFile(path, img, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) report() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("#page")))
	if len(html) > 4000 {
		html = html[:4000] + "..."
	}
	return fmt.Sprintf("errors logged: %q\n#page: %s", b.errs, html)
}

func (b *browser) checkErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errs) > 0 {
		b.t.Fatalf("the console logged errors:\n%s", strings.Join(b.errs, "\n"))
	}
}

// checkNotBlank fails unless the PNG at path shows something: many
// colours, and no one colour covering nearly all of it.
func checkNotBlank(t *testing.T, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	bounds := img.Bounds()
	counts := map[[4]uint32]int{}
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 2 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			counts[[4]uint32{r >> 8, g >> 8, bl >> 8, a >> 8}]++
		}
	}
	total, most := 0, 0
	for _, n := range counts {
		total += n
		most = max(most, n)
	}
	if bounds.Dx() < 800 || len(counts) < 16 || most > total*97/100 {
		t.Fatalf("%s looks blank: %v, %d colours, the commonest on %d of %d pixels", path, bounds.Size(), len(counts), most, total)
	}
}
