package node

import (
	"path"
	"strings"
	"testing"
)

func TestTreePath(t *testing.T) {
	for in, want := range map[string]string{
		"/": "/", "/a/b/": "/a/b", "//a//b": "/a/b", "/a/./b": "/a/b", "/naïve café/日本": "/naïve café/日本",
	} {
		if got, err := treePath(in); err != nil || got != want {
			t.Errorf("treePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a/b", "/a/../b", "/a\x00b", "/" + strings.Repeat("x", 256)} {
		if got, err := treePath(in); err == nil {
			t.Errorf("treePath(%q) = %q; want an error", in, got)
		}
	}
}

// FuzzTreePath: any user path is refused or becomes an absolute, clean
// path with no "..", no NUL and no name over 255 bytes.
func FuzzTreePath(f *testing.F) {
	for _, s := range []string{"/", "/a/b/", "a", "/a/../b", "/\x00", "//x//./y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := treePath(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("two-line error %q", err)
			}
			return
		}
		if p == "" || p[0] != '/' || path.Clean(p) != p || strings.ContainsRune(p, 0) {
			t.Fatalf("treePath(%q) = %q: not absolute and clean", s, p)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == ".." || len(seg) > 255 {
				t.Fatalf("treePath(%q) = %q: segment %q", s, p, seg)
			}
		}
	})
}
