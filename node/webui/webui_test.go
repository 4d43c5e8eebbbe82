package webui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandler(t *testing.T) {
	h := Handler()
	w := get(t, h, "/")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "<html") {
		t.Fatalf("/: %d %.80q", w.Code, w.Body.String())
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("no content security policy: %q", csp)
	}
	tag := w.Header().Get("ETag")
	if tag == "" {
		t.Fatal("no ETag on the index")
	}
	if w = get(t, h, "/", "If-None-Match", tag); w.Code != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d, want 304", w.Code)
	}
	for _, p := range []string{"/app.js", "/style.css"} {
		if w = get(t, h, p); w.Code != http.StatusOK || w.Header().Get("ETag") == "" {
			t.Fatalf("%s: %d", p, w.Code)
		}
	}
	if w = get(t, h, "/app.js"); !strings.Contains(w.Header().Get("Content-Type"), "javascript") {
		t.Fatalf("app.js served as %q", w.Header().Get("Content-Type"))
	}
	if w = get(t, h, "/nothing.js"); w.Code != http.StatusNotFound {
		t.Fatalf("/nothing.js: %d", w.Code)
	}
}

// The console works with no network beyond the node: every script,
// style and image the index names is one of the embedded files.
func TestIndexSelfContained(t *testing.T) {
	index, err := fs.ReadFile(Assets(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?i)(?:src|href)\s*=\s*"([^"#]*)"`).FindAllStringSubmatch(string(index), -1)
	if len(refs) == 0 {
		t.Fatal("the index names no script or style")
	}
	for _, m := range refs {
		ref := m[1]
		if ref == "" || strings.HasPrefix(ref, "data:") {
			continue
		}
		if strings.Contains(ref, "//") {
			t.Errorf("index.html loads %q from elsewhere", ref)
			continue
		}
		if _, err := fs.Stat(Assets(), strings.TrimPrefix(ref, "./")); err != nil {
			t.Errorf("index.html names %q: %v", ref, err)
		}
	}
}
