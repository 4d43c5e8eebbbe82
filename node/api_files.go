package node

import (
	"context"
	"net/http"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/consensus"
)

// The shared tree's API, /api/v0/files/..., as Kubo's MFS commands:
//
//	GET  files/ls?arg=PATH                  {"entries": [FilesEntry...]}
//	GET  files/stat?arg=PATH[&hash=true]    FilesEntry (hash: a tree directory's CID too)
//	POST files/mkdir?arg=PATH[&parents=true]
//	POST files/cp?arg=SRC&arg=DST[&parents=true]   SRC: /ipfs/CID[/...] or a tree path
//	POST files/mv?arg=SRC&arg=DST
//	POST files/rm?arg=PATH...[&recursive=true]
//	POST files/write?arg=PATH[&parents=true]  body as for add: one file, stored and linked
//
// Changes answer {"index": N, "cid": ...}: the raft index they committed
// at (this node has applied it when it answers). add takes to-files=PATH
// (PATH/ for "into this directory") to link what it added.

// FilesResult is the answer of a change to the tree.
type FilesResult struct {
	Index uint64 `json:"index"`
	Path  string `json:"path,omitempty"`
	CID   string `json:"cid,omitempty"`
}

func (a *api) handleFiles() {
	a.handle("GET /api/v0/files/ls", a.filesLs)
	a.handle("GET /api/v0/files/stat", a.filesStat)
	a.handle("POST /api/v0/files/mkdir", a.filesMkdir)
	a.handle("POST /api/v0/files/cp", a.filesCp)
	a.handle("POST /api/v0/files/mv", a.filesMv)
	a.handle("POST /api/v0/files/rm", a.filesRm)
	a.handle("POST /api/v0/files/write", a.filesWrite)
	if os.Getenv(DebugAPIEnv) == "1" {
		a.handle("POST /api/v0/debug/tree-fill", a.treeFill)
	}
}

func (a *api) fsm() *consensus.FSM { return a.cluster.node().FSM() }

// pathArgs returns the n tree paths of the request's arg parameters.
func pathArgs(r *http.Request, n int) ([]string, error) {
	args := r.URL.Query()["arg"]
	if len(args) != n {
		if n == 1 {
			return nil, badRequest("argument \"arg\" (a path of the shared tree) is required once")
		}
		return nil, badRequest("want %d paths (arg), got %d", n, len(args))
	}
	out := make([]string, n)
	for i, s := range args {
		p, err := treePath(s)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// queryTrue reads a flag parameter: true, 1 (anything else is off).
func queryTrue(r *http.Request, name string) bool {
	v := r.URL.Query().Get(name)
	return v == "true" || v == "1"
}

// filesLs: the entries of a tree directory, of linked content, or a file
// itself.
func (a *api) filesLs(w http.ResponseWriter, r *http.Request) error {
	ps, err := pathArgs(r, 1)
	if err != nil {
		return err
	}
	out, err := a.repo.filesLs(r.Context(), a.fsm(), ps[0])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string][]FilesEntry{"entries": out})
	return nil
}

func (r *Repo) filesLs(ctx context.Context, f *consensus.FSM, p string) ([]FilesEntry, error) {
	at, err := lookupTree(f, p)
	if err != nil {
		return nil, err
	}
	out := []FilesEntry{}
	if at.entry.Dir {
		kids, err := f.TreeList(p)
		if err != nil {
			return nil, treeStatus(err)
		}
		for _, k := range kids {
			out = append(out, r.treeEntry(ctx, k))
		}
		return out, nil
	}
	c, err := at.content(ctx, r)
	if err != nil {
		return nil, err
	}
	ents, err := r.Ls(ctx, c)
	if err != nil {
		return nil, err
	}
	nd, _, _, err := r.object(ctx, c)
	if err != nil {
		return nil, err
	}
	if !isDir(nd) {
		e := r.treeEntry(ctx, at.entry)
		if len(at.rest) > 0 {
			e = FilesEntry{Name: path.Base(p), Type: ents[0].Type, CID: ents[0].CID, Size: ents[0].Size}
		}
		return []FilesEntry{e}, nil
	}
	for _, e := range ents {
		out = append(out, FilesEntry{Name: e.Name, Type: e.Type, CID: e.CID, Size: e.Size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// filesStat describes one path; hash=true computes a tree directory's CID.
func (a *api) filesStat(w http.ResponseWriter, r *http.Request) error {
	ps, err := pathArgs(r, 1)
	if err != nil {
		return err
	}
	e, err := a.repo.filesStat(r.Context(), a.fsm(), a.tree, ps[0], queryTrue(r, "hash"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, e)
	return nil
}

func (r *Repo) filesStat(ctx context.Context, f *consensus.FSM, h *treeHasher, p string, hash bool) (FilesEntry, error) {
	at, err := lookupTree(f, p)
	if err != nil {
		return FilesEntry{}, err
	}
	if at.entry.Dir {
		e := r.treeEntry(ctx, at.entry)
		e.Name = path.Base(p)
		if hash {
			c, tsize, err := h.Hash(ctx, p)
			if err != nil {
				return FilesEntry{}, err
			}
			e.CID, e.CumulativeSize = c.String(), tsize
		}
		return e, nil
	}
	if len(at.rest) == 0 {
		e := r.treeEntry(ctx, at.entry)
		e.Name = path.Base(p)
		return e, nil
	}
	c, err := at.content(ctx, r)
	if err != nil {
		return FilesEntry{}, err
	}
	ni, err := r.describeCID(ctx, c)
	if err != nil {
		return FilesEntry{}, err
	}
	return FilesEntry{Name: path.Base(p), Type: typeName(ni), CID: c.String(), Size: ni.Size, CumulativeSize: ni.Tsize}, nil
}

// commitTree applies one change to the tree and answers its index.
func (a *api) commitTree(w http.ResponseWriter, r *http.Request, cmd consensus.Command, res FilesResult) error {
	if err := a.cluster.ready(); err != nil {
		return err
	}
	out, err := a.cluster.node().Apply(r.Context(), cmd)
	if err != nil {
		return treeStatus(err)
	}
	res.Index = out.Index
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (a *api) filesMkdir(w http.ResponseWriter, r *http.Request) error {
	ps, err := pathArgs(r, 1)
	if err != nil {
		return err
	}
	return a.commitTree(w, r, consensus.Mkdir(ps[0], queryTrue(r, "parents")), FilesResult{Path: ps[0]})
}

func (a *api) filesMv(w http.ResponseWriter, r *http.Request) error {
	ps, err := pathArgs(r, 2)
	if err != nil {
		return err
	}
	return a.commitTree(w, r, consensus.FilesMove(ps[0], ps[1]), FilesResult{Path: ps[1]})
}

func (a *api) filesRm(w http.ResponseWriter, r *http.Request) error {
	args := r.URL.Query()["arg"]
	if len(args) == 0 {
		return badRequest("argument \"arg\" (a path of the shared tree) is required")
	}
	var last FilesResult
	for _, s := range args {
		p, err := treePath(s)
		if err != nil {
			return err
		}
		if err := a.cluster.ready(); err != nil {
			return err
		}
		out, err := a.cluster.node().Apply(r.Context(), consensus.FilesRemove(p, queryTrue(r, "recursive")))
		if err != nil {
			return treeStatus(err)
		}
		last = FilesResult{Index: out.Index, Path: p}
	}
	writeJSON(w, http.StatusOK, last)
	return nil
}

// filesCp links content at a path: SRC is /ipfs/CID[/path] or a path of
// the tree naming linked content. A DST ending in / means "into that
// directory, under SRC's last name".
func (a *api) filesCp(w http.ResponseWriter, r *http.Request) error {
	args := r.URL.Query()["arg"]
	if len(args) != 2 {
		return badRequest("files cp takes a source (/ipfs/CID/... or a tree path) and a destination")
	}
	src, dstArg := args[0], args[1]
	dst, err := treePath(dstArg)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var c cid.Cid
	if strings.HasPrefix(src, "/ipfs/") || !strings.HasPrefix(src, "/") {
		if c, err = a.repo.Resolve(ctx, src); err != nil {
			return err
		}
	} else {
		sp, err := treePath(src)
		if err != nil {
			return err
		}
		at, err := lookupTree(a.fsm(), sp)
		if err != nil {
			return err
		}
		if len(at.rest) == 0 {
			// an entry of the tree (a directory with all it holds, or a
			// link): copied in the replicated tree itself
			if strings.HasSuffix(dstArg, "/") {
				dst = path.Join(dst, path.Base(sp))
			}
			return a.commitTree(w, r, consensus.FilesCopy(sp, dst, queryTrue(r, "parents")), FilesResult{Path: dst, CID: at.entry.Target})
		}
		if c, err = at.content(ctx, a.repo); err != nil {
			return err
		}
	}
	if strings.HasSuffix(dstArg, "/") {
		name := path.Base(strings.TrimRight(src, "/"))
		dst = path.Join(dst, name)
	}
	ni, err := a.repo.describeCID(ctx, c)
	if err != nil {
		return err
	}
	li, err := linkInfo(c, ni)
	if err != nil {
		return err
	}
	return a.commitTree(w, r, consensus.FilesLink(dst, c.String(), li, queryTrue(r, "parents"), false), FilesResult{Path: dst, CID: c.String()})
}

// filesWrite stores one file and links it at PATH, replacing a file there.
func (a *api) filesWrite(w http.ResponseWriter, r *http.Request) error {
	ps, err := pathArgs(r, 1)
	if err != nil {
		return err
	}
	if ps[0] == "/" {
		return badRequest("/: cannot write the root")
	}
	q := r.URL.Query()
	q.Set("to-files", ps[0])
	q.Set("to-files-replace", "true")
	q.Del("arg")
	r.URL.RawQuery = q.Encode()
	return a.add(w, r)
}

// toFiles is where an add links what it stored, from its to-files
// parameter ("" for nowhere), checked before anything is stored.
func (a *api) toFiles(r *http.Request, name string) (dst string, replace bool, err error) {
	q := r.URL.Query()
	arg := q.Get("to-files")
	if arg == "" {
		return "", false, nil
	}
	dst, err = treePath(arg)
	if err != nil {
		return "", false, err
	}
	if strings.HasSuffix(arg, "/") {
		if name == "" {
			return "", false, badRequest("to-files %s: the content has no name to link it under; name the path", arg)
		}
		dst = path.Join(dst, path.Base(name))
	}
	if dst == "/" {
		return "", false, badRequest("to-files: cannot link at the root")
	}
	replace = queryTrue(r, "to-files-replace")
	if e, ok := a.fsm().TreeStat(dst); ok {
		if replace && (e.Dir || e.Type == linkDir) {
			return "", false, httpError{http.StatusConflict, &filesError{dst + ": is a directory (write replaces files only)", consensus.ErrTreeExists}}
		}
		if !replace {
			return "", false, httpError{http.StatusConflict, treeExists(dst)}
		}
	}
	return dst, replace, nil
}

func treeExists(p string) error {
	return &filesError{p + ": already exists in the shared tree", consensus.ErrTreeExists}
}

type filesError struct {
	msg string
	err error
}

func (e *filesError) Error() string { return e.msg }
func (e *filesError) Unwrap() error { return e.err }

// linkAdded links the root an add stored at dst (parents made as
// needed); the index of the link is what the add answers.
func (a *api) linkAdded(ctx context.Context, res *AddResult, dst string, replace bool) error {
	c, err := cid.Decode(res.Root)
	if err != nil {
		return err
	}
	ni, err := a.repo.describeCID(ctx, c)
	if err != nil {
		return err
	}
	li, err := linkInfo(c, ni)
	if err != nil {
		return err
	}
	out, err := a.cluster.node().Apply(ctx, consensus.FilesLink(dst, res.Root, li, true, replace))
	if err != nil {
		return err
	}
	res.Index, res.Files = out.Index, dst
	return nil
}
