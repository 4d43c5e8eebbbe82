package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/fungistor/fungistor/consensus"
	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/node/mount"
)

// The daemon's FUSE mounts of the shared tree (node/mount does the
// filesystem; this file gives it the node and keeps the mounts).

// mountNode is the node as the mount sees it: the replicated tree from
// memory, content through the reader.
type mountNode struct {
	r   *Repo
	fsm func() *consensus.FSM
	ctx context.Context // the daemon's: open files read until it ends
}

var _ mount.Node = mountNode{}

func notExist(err error) error {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNoLink) || errors.Is(err, ipld.ErrNotFound{}) {
		return fmt.Errorf("%w: %v", fs.ErrNotExist, err)
	}
	return err
}

func treeMountEntry(e consensus.TreeEntry) mount.Entry {
	if e.Dir {
		return mount.Entry{Name: e.Name, Kind: mount.Dir}
	}
	c, _ := cid.Decode(e.Target)
	me := mount.Entry{Name: e.Name, CID: c, Size: e.Size}
	switch e.Type {
	case linkFile:
		me.Kind = mount.File
	case linkDir:
		me.Kind = mount.Dir
	}
	// symlinks (their text is in the block) and links of unknown type:
	// Kind 0, the mount asks Stat
	return me
}

func (n mountNode) TreeStat(p string) (mount.Entry, error) {
	e, ok := n.fsm().TreeStat(p)
	if !ok {
		return mount.Entry{}, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	return treeMountEntry(e), nil
}

func (n mountNode) TreeList(p string) ([]mount.Entry, error) {
	kids, err := n.fsm().TreeList(p)
	if errors.Is(err, consensus.ErrTreeNotFound) {
		return nil, fmt.Errorf("%w: %v", fs.ErrNotExist, err)
	}
	if err != nil {
		return nil, err
	}
	out := make([]mount.Entry, len(kids))
	for i, k := range kids {
		out[i] = treeMountEntry(k)
	}
	return out, nil
}

func mountEntry(name string, c cid.Cid, ni fungi.NodeInfo) mount.Entry {
	e := mount.Entry{Name: name, CID: c, Size: ni.Size, Mode: ni.Mode, Mtime: ni.Mtime, Kind: mount.File}
	switch ni.Kind {
	case fungi.NodeDir, fungi.NodeHAMT:
		e.Kind, e.Size = mount.Dir, 0
	case fungi.NodeSymlink:
		e.Kind, e.Target = mount.Symlink, ni.Target
	}
	return e
}

func (n mountNode) Stat(ctx context.Context, c cid.Cid) (mount.Entry, error) {
	ni, err := n.r.describeCID(ctx, c)
	if err != nil {
		return mount.Entry{}, notExist(err)
	}
	if ni.Kind == fungi.NodeOther {
		return mount.Entry{}, fmt.Errorf("%s is not UnixFS: %w", c, fs.ErrNotExist)
	}
	return mountEntry("", c, ni), nil
}

// listParallel bounds the children of one directory described at once.
const listParallel = 16

func (n mountNode) List(ctx context.Context, c cid.Cid) ([]mount.Entry, error) {
	nd, dag, _, err := n.r.object(ctx, c)
	if err != nil {
		return nil, notExist(err)
	}
	if !isDir(nd) {
		return nil, fmt.Errorf("%s is not a directory", c)
	}
	dir, err := uio.NewDirectoryFromNode(dag, nd)
	if err != nil {
		return nil, err
	}
	var links []*ipld.Link
	if err := dir.ForEachLink(ctx, func(l *ipld.Link) error { links = append(links, l); return nil }); err != nil {
		return nil, err
	}
	out := make([]mount.Entry, len(links))
	errs := make([]error, len(links))
	sem := make(chan struct{}, listParallel)
	var wg sync.WaitGroup
	for i, l := range links {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ni, err := n.r.describeCID(ctx, l.Cid)
			out[i], errs[i] = mountEntry(l.Name, l.Cid, ni), err
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// mount reads: prefetch as far ahead as the kernel's readahead asks, and
// keep a few leaves per open file for the reads that straddle them
const (
	mountPrefetch = 16
	mountParallel = 8
)

func (n mountNode) Open(ctx context.Context, c cid.Cid) (mount.Reader, error) {
	nd, dag, _, err := n.r.object(ctx, c)
	if err != nil {
		return nil, notExist(err)
	}
	if isDir(nd) {
		return nil, fmt.Errorf("%s %w", c, ErrIsDirectory)
	}
	get := func(ctx context.Context, c cid.Cid) ([]byte, error) {
		b, err := n.r.GetBlock(ctx, c)
		if err != nil {
			return nil, err
		}
		return b.RawData(), nil
	}
	return fungi.NewReaderAt(n.ctx, dag, nd, get, fungi.ReaderAtOptions{Prefetch: mountPrefetch, Parallel: mountParallel})
}

// mounts are the daemon's live mounts, by directory.
type mounts struct {
	node    mountNode
	cluster *clusterRunner
	log     *slog.Logger

	mu sync.Mutex
	m  map[string]*mount.Mount
}

// mountsFile lists, in the repo, the directories the daemon has mounted:
// what a killed daemon left mounted is found there at the next start.
const mountsFile = "mounts"

func newMounts(ctx context.Context, r *Repo, c *clusterRunner, log *slog.Logger) *mounts {
	ms := &mounts{node: mountNode{r: r, fsm: func() *consensus.FSM { return c.node().FSM() }, ctx: ctx}, cluster: c, log: log, m: map[string]*mount.Mount{}}
	ms.clearLeft()
	go ms.watch(ctx)
	return ms
}

// clearLeft unmounts what the daemon's last run left mounted (it was
// killed: such a mount only answers ENOTCONN) and forgets the list.
func (ms *mounts) clearLeft() {
	b, err := os.ReadFile(filepath.Join(ms.node.r.Path, mountsFile))
	if err != nil {
		return
	}
	for _, dir := range strings.Fields(string(b)) {
		cleared, err := mount.ClearStale(dir)
		switch {
		case err != nil:
			ms.log.Warn("fungi daemon: clearing the mount the last run left", "dir", dir, "err", err)
		case cleared:
			ms.log.Info("fungi daemon: cleared the mount the last run left (it was killed)", "dir", dir)
		}
	}
	ms.record()
}

// record writes the live mounts to the repo's mounts file; ms.mu held or
// no mount can change.
func (ms *mounts) record() {
	dirs := make([]string, 0, len(ms.m))
	for d := range ms.m {
		dirs = append(dirs, d+"\n")
	}
	p := filepath.Join(ms.node.r.Path, mountsFile)
	if len(dirs) == 0 {
		os.Remove(p)
		return
	}
	if err := os.WriteFile(p, []byte(strings.Join(dirs, "")), 0o644); err != nil {
		ms.log.Warn("fungi daemon: recording the mounts", "err", err)
	}
}

// Mount mounts the shared tree at dir and returns once it is live.
func (ms *mounts) Mount(dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", badRequest("%s: the mount point must be an absolute path", dir)
	}
	dir = filepath.Clean(dir)
	ms.caughtUp()
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if _, ok := ms.m[dir]; ok {
		return "", httpError{http.StatusConflict, fmt.Errorf("%s: already mounted by this node", dir)}
	}
	m, err := mount.New(dir, ms.node, mount.Options{Logger: ms.log})
	if err != nil {
		// the command names itself: "fungi mount: DIR: not empty"
		return "", httpError{http.StatusBadRequest, errors.New(strings.TrimPrefix(err.Error(), "mount: "))}
	}
	ms.m[dir] = m
	ms.record()
	go func() {
		m.Wait() // also when unmounted from outside (fusermount3 -u)
		ms.mu.Lock()
		if ms.m[dir] == m {
			delete(ms.m, dir)
			ms.record()
		}
		ms.mu.Unlock()
		ms.log.Info("fungi daemon: unmounted", "dir", dir)
	}()
	ms.log.Info("fungi daemon: mounted the shared tree", "dir", dir)
	return dir, nil
}

// caughtUp waits (up to 10 s) until this node has applied what the
// cluster committed, so a mount made right after the daemon started (or
// on a node catching up) shows the whole tree at once, not a tree that
// fills in over the first seconds. Past the wait it mounts anyway: the
// rest shows as it is applied.
func (ms *mounts) caughtUp() {
	ctx, cancel := context.WithTimeout(ms.node.ctx, 10*time.Second)
	defer cancel()
	for {
		cn := ms.cluster.node()
		st := cn.Status()
		if st.Leader != "" && st.CommitIndex > 0 && st.AppliedIndex >= st.CommitIndex &&
			(st.Role != consensus.RoleLeader || st.AppliedIndex >= st.LastIndex) {
			if st.Role == consensus.RoleLeader || ms.node.r.cluster == nil || !ms.node.r.cluster.catchUp(ctx) {
				return
			}
		}
		select {
		case <-ctx.Done():
			ms.log.Warn("fungi daemon: mounting before this node caught up with the cluster; the tree fills in as it applies", "applied", st.AppliedIndex, "commit", st.CommitIndex)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Unmount ends the mount at dir.
func (ms *mounts) Unmount(dir string) error {
	dir = filepath.Clean(dir)
	ms.mu.Lock()
	m, ok := ms.m[dir]
	ms.mu.Unlock()
	if !ok {
		return httpError{http.StatusNotFound, fmt.Errorf("%s: not mounted by this node", dir)}
	}
	if err := m.Unmount(); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	m.Wait()
	return nil
}

// List returns the mounted directories.
func (ms *mounts) List() []string {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	out := make([]string, 0, len(ms.m))
	for d := range ms.m {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// Close unmounts everything (daemon shutdown).
func (ms *mounts) Close() {
	for _, d := range ms.List() {
		if err := ms.Unmount(d); err != nil {
			ms.log.Warn("fungi daemon: unmount at shutdown", "dir", d, "err", err)
		}
	}
}

func (ms *mounts) each(fn func(m *mount.Mount)) {
	ms.mu.Lock()
	live := make([]*mount.Mount, 0, len(ms.m))
	for _, m := range ms.m {
		live = append(live, m)
	}
	ms.mu.Unlock()
	for _, m := range live {
		fn(m)
	}
}

// watch feeds the tree's changes, as raft applies them, to the mounts:
// the kernel forgets what it cached of those names.
func (ms *mounts) watch(ctx context.Context) {
	var f *consensus.FSM
	var rev uint64
	for ctx.Err() == nil {
		if cur := ms.node.fsm(); cur != f {
			// a new FSM (the node joined a cluster): forget everything
			f, rev = cur, cur.TreeRev()
			ms.each(func(m *mount.Mount) { m.ChangedAll() })
		}
		changed := f.TreeWatch()
		chs, now, complete := f.TreeChanges(rev)
		rev = now
		if !complete {
			ms.each(func(m *mount.Mount) { m.ChangedAll() })
		} else if len(chs) > 0 {
			paths := make([]string, len(chs))
			for i, c := range chs {
				paths[i] = c.Path
			}
			ms.each(func(m *mount.Mount) { m.Changed(paths) })
		}
		select {
		case <-changed:
		case <-time.After(time.Second): // the FSM may be replaced
		case <-ctx.Done():
		}
	}
}

// MountConfig configures the FUSE mount of the shared tree.
type MountConfig struct {
	// Dir, if set, is mounted when the daemon starts (as `fungi mount
	// DIR` does): the shared tree, read-only, with any CID under
	// DIR/.ipfs/<cid>.
	Dir string `json:"dir"`
}

func (c MountConfig) validate() error {
	if c.Dir != "" && !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("mount.dir %q: must be an absolute path", c.Dir)
	}
	return nil
}

// mount API: POST /api/v0/mount?arg=DIR, POST /api/v0/unmount?arg=DIR,
// GET /api/v0/mount/ls.
func (a *api) handleMounts() {
	a.handle("POST /api/v0/mount", func(w http.ResponseWriter, r *http.Request) error {
		dir := r.URL.Query().Get("arg")
		if dir == "" {
			return badRequest("argument \"arg\" (the mount point) is required")
		}
		d, err := a.mounts.Mount(dir)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"dir": d})
		return nil
	})
	a.handle("POST /api/v0/unmount", func(w http.ResponseWriter, r *http.Request) error {
		dir := r.URL.Query().Get("arg")
		if dir == "" {
			return badRequest("argument \"arg\" (the mount point) is required")
		}
		if err := a.mounts.Unmount(dir); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"dir": filepath.Clean(dir)})
		return nil
	})
	a.handle("GET /api/v0/mount/ls", func(w http.ResponseWriter, _ *http.Request) error {
		writeJSON(w, http.StatusOK, a.mounts.List())
		return nil
	})
}
