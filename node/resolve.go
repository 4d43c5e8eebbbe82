package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
)

// ParsePath splits what a user gives for content: a CID, CID/a/b, or
// /ipfs/CID/a/b (as Kubo's commands and the gateway take them).
func ParsePath(s string) (cid.Cid, []string, error) {
	rest := strings.TrimPrefix(s, "/ipfs/")
	root, tail, _ := strings.Cut(rest, "/")
	c, err := ParseCID(root)
	if err != nil {
		return cid.Undef, nil, err
	}
	var segs []string
	for _, seg := range strings.Split(tail, "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	return c, segs, nil
}

// ErrNoLink: a path names an entry its directory does not have.
var ErrNoLink = errors.New("no such entry")

// Resolve returns the CID a path names, walking UnixFS directories
// (HAMT-sharded ones too) from its root. A path that is a bare CID is
// that CID.
func (r *Repo) Resolve(ctx context.Context, p string) (cid.Cid, error) {
	c, segs, err := ParsePath(p)
	if err != nil || len(segs) == 0 {
		return c, err
	}
	nd, dag, _, err := r.object(ctx, c)
	if err != nil {
		return cid.Undef, err
	}
	walked := c.String()
	for _, seg := range segs {
		if !isDir(nd) {
			return cid.Undef, fmt.Errorf("%s is not a directory (paths go through UnixFS directories; use the gateway for other DAGs): %w", walked, ErrNoLink)
		}
		dir, err := uio.NewDirectoryFromNode(dag, nd)
		if err != nil {
			return cid.Undef, err
		}
		child, err := dir.Find(ctx, seg)
		if errors.Is(err, os.ErrNotExist) {
			return cid.Undef, fmt.Errorf("%s has no entry %q: %w", walked, seg, ErrNoLink)
		}
		if err != nil {
			return cid.Undef, err
		}
		nd, walked = child, walked+"/"+seg
	}
	return nd.Cid(), nil
}

// resolve: GET /api/v0/resolve?arg=PATH answers {"Path": "/ipfs/CID"}, as
// Kubo's.
func (a *api) resolve(w http.ResponseWriter, r *http.Request) error {
	p := r.URL.Query().Get("arg")
	if p == "" {
		return badRequest("argument \"arg\" (a path) is required")
	}
	if _, _, err := ParsePath(p); err != nil {
		return httpError{http.StatusBadRequest, err}
	}
	c, err := a.repo.Resolve(r.Context(), p)
	if errors.Is(err, ErrNoLink) {
		return httpError{http.StatusNotFound, err}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"Path": "/ipfs/" + c.String()})
	return nil
}

// Resolve asks the daemon what a path names.
func (a *APIClient) Resolve(ctx context.Context, p string) (cid.Cid, error) {
	if c, segs, err := ParsePath(p); err != nil || len(segs) == 0 {
		return c, err
	}
	var out struct{ Path string }
	if err := a.doJSON(ctx, "GET", "resolve", url.Values{"arg": {p}}, &out); err != nil {
		return cid.Undef, err
	}
	return cid.Decode(strings.TrimPrefix(out.Path, "/ipfs/"))
}
