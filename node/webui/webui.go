// Package webui is the node's web console: static pages, embedded in the
// binary and served on the API listener at /webui/, that read the
// node's HTTP API like any other client (no server-side rendering, no
// build step, no script or style from anywhere but the node).
//
// The pages (assets/*.js, loaded in order by index.html; app.js boots)
// are a small hash-routed application: overview, node, cluster, objects
// (and one object's fragment grid), the shared tree and activity. Each
// page polls the API every two
// seconds while it is shown, so a node that dies or an object that
// changes shows without a reload.
package webui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
)

//go:embed assets
var assets embed.FS

// Assets are the console's files (index.html at the root).
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embed is built in
	}
	return sub
}

// policy: scripts, styles and requests only from the node itself; the
// console is never framed (clickjacking) nor sniffed.
const policy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Handler serves the console's files; mount it with the /webui/ prefix
// stripped. Each file carries a strong ETag (its hash), so a browser
// asks again cheaply and never keeps a stale page across an upgrade.
func Handler() http.Handler {
	files := Assets()
	etags := map[string]string{}
	fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := fs.ReadFile(files, p); err == nil {
				sum := sha256.Sum256(b)
				etags[p] = `"` + hex.EncodeToString(sum[:12]) + `"`
			}
		}
		return nil
	})
	fileServer := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", policy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		name := path.Clean("/" + r.URL.Path)[1:]
		if name == "" {
			name = "index.html"
		}
		if tag, ok := etags[name]; ok {
			h.Set("ETag", tag)
		}
		fileServer.ServeHTTP(w, r)
	})
}
