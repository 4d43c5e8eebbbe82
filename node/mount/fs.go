//go:build linux

package mount

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	iofs "io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/ipfs/go-cid"
)

// ipfsName is the hidden directory at the root that resolves any CID.
const ipfsName = ".ipfs"

// contentTimeout is how long the kernel keeps what lies under a CID:
// names, attributes and negative lookups there never change.
const contentTimeout = time.Hour

// blksize is the st_blksize the mount reports: the I/O size tools such as
// cp and cat use for their reads (128 KiB, their own minimum).
const blksize = 128 << 10

// filesystem is the state every inode of one mount shares.
type filesystem struct {
	node     Node
	log      *slog.Logger
	start    time.Time // the mtime of entries without one
	uid, gid uint32
	// treeEntry and treeAttr time out tree entries in the kernel (which
	// Changed invalidates explicitly).
	treeEntry, treeAttr time.Duration
	failures            failureLog
}

// base is embedded by every node type (next to its fusefs.Inode): its
// path (which gives its inode number), its attributes and the operations
// every inode refuses. The mount is mounted read-only, so the kernel
// answers EROFS before asking; these are the second line.
type base struct {
	fsys *filesystem
	path string    // "/a/b" in the tree, "/a/b/sub" under a tree entry's CID, "/.ipfs/<cid>/sub"
	attr fuse.Attr // what Getattr answers (all but tree directories never change)
}

func (b *base) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Attr = b.attr
	out.SetTimeout(contentTimeout)
	return 0
}

func (b *base) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize = 4096
	out.Frsize = 4096
	out.NameLen = 255
	return 0
}

func (b *base) Setattr(context.Context, fusefs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (b *base) Setxattr(context.Context, string, []byte, uint32) syscall.Errno { return syscall.EROFS }
func (b *base) Removexattr(context.Context, string) syscall.Errno              { return syscall.EROFS }

func (b *base) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

func (b *base) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

func (b *base) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (b *base) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (b *base) Link(context.Context, fusefs.InodeEmbedder, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (b *base) Symlink(context.Context, string, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (b *base) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }
func (b *base) Rmdir(context.Context, string) syscall.Errno  { return syscall.EROFS }

func (b *base) Rename(context.Context, string, fusefs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}

var (
	_ fusefs.NodeGetattrer     = (*base)(nil)
	_ fusefs.NodeStatfser      = (*base)(nil)
	_ fusefs.NodeSetattrer     = (*base)(nil)
	_ fusefs.NodeSetxattrer    = (*base)(nil)
	_ fusefs.NodeRemovexattrer = (*base)(nil)
	_ fusefs.NodeCreater       = (*base)(nil)
	_ fusefs.NodeTmpfiler      = (*base)(nil)
	_ fusefs.NodeMkdirer       = (*base)(nil)
	_ fusefs.NodeMknoder       = (*base)(nil)
	_ fusefs.NodeLinker        = (*base)(nil)
	_ fusefs.NodeSymlinker     = (*base)(nil)
	_ fusefs.NodeUnlinker      = (*base)(nil)
	_ fusefs.NodeRmdirer       = (*base)(nil)
	_ fusefs.NodeRenamer       = (*base)(nil)

	_ fusefs.NodeLookuper       = (*treeDir)(nil)
	_ fusefs.NodeOpendirHandler = (*treeDir)(nil)
	_ fusefs.NodeLookuper       = (*cidDir)(nil)
	_ fusefs.NodeOpendirHandler = (*cidDir)(nil)
	_ fusefs.NodeLookuper       = (*ipfsDir)(nil)
	_ fusefs.NodeOpendirHandler = (*ipfsDir)(nil)
	_ fusefs.NodeOpener         = (*file)(nil)
	_ fusefs.NodeWriter         = (*file)(nil)
	_ fusefs.NodeAllocater      = (*file)(nil)
	_ fusefs.NodeReadlinker     = (*symlink)(nil)

	_ fusefs.FileReader   = (*handle)(nil)
	_ fusefs.FileReleaser = (*handle)(nil)

	_ fusefs.FileReaddirenter = (*dirHandle)(nil)
	_ fusefs.FileSeekdirer    = (*dirHandle)(nil)
	_ fusefs.FileLookuper     = (*dirHandle)(nil)
)

// treeDir is a directory of the shared tree itself (an entry without a
// CID). Its children come from TreeStat and TreeList, from memory.
type treeDir struct {
	fusefs.Inode
	base
}

// Getattr asks the tree each time: a tree directory keeps its inode while
// its metadata changes.
func (d *treeDir) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Attr = d.attr
	if e, err := d.fsys.node.TreeStat(d.path); err == nil && e.Kind == Dir && !e.CID.Defined() {
		out.Attr = d.fsys.attrOf(d.path, e)
	}
	out.SetTimeout(d.fsys.treeAttr)
	return 0
}

func (d *treeDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if d.path == "/" && name == ipfsName {
		return d.fsys.ipfsDir(ctx, &d.Inode, out), 0
	}
	p := joinPath(d.path, name)
	e, err := d.fsys.node.TreeStat(p)
	if err != nil {
		return nil, d.fsys.treeErrno(p, err)
	}
	e.Name = name
	return d.fsys.child(ctx, &d.Inode, p, e, true, out)
}

func (d *treeDir) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	list, err := d.fsys.node.TreeList(d.path)
	if err != nil {
		return nil, 0, d.fsys.treeErrno(d.path, err)
	}
	list = d.fsys.listable(list, d.path == "/")
	// The kernel keeps the listing across opens too: a change to the
	// directory drops it (invalidatePath notifies its content).
	return &dirHandle{dir: &d.Inode, fsys: d.fsys, path: d.path, tree: true, list: list}, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// cidDir is a UnixFS directory: its listing is fetched once, on the first
// lookup or readdir, and kept for the inode's life (content is immutable).
type cidDir struct {
	fusefs.Inode
	base
	cid cid.Cid

	mu    sync.Mutex // held while listing, so one List serves every waiter
	list  []Entry    // nil until listed
	index map[string]int
}

func (d *cidDir) listing(ctx context.Context) ([]Entry, map[string]int, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.list != nil {
		return d.list, d.index, 0
	}
	list, err := d.fsys.node.List(ctx, d.cid)
	if err != nil {
		return nil, nil, d.fsys.contentErrno(ctx, "list", d.cid, err)
	}
	list = d.fsys.listable(list, false)
	index := make(map[string]int, len(list))
	for i, e := range list {
		if _, dup := index[e.Name]; !dup {
			index[e.Name] = i
		}
	}
	if list == nil {
		list = []Entry{}
	}
	d.list, d.index = list, index
	return list, index, 0
}

func (d *cidDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	list, index, errno := d.listing(ctx)
	if errno != 0 {
		return nil, errno
	}
	i, ok := index[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	return d.fsys.child(ctx, &d.Inode, joinPath(d.path, name), list[i], false, out)
}

func (d *cidDir) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	list, _, errno := d.listing(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	// The kernel may keep the listing across opens: it never changes.
	return &dirHandle{dir: &d.Inode, fsys: d.fsys, path: d.path, list: list},
		fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// ipfsDir is the hidden /.ipfs: any CID is a name in it, none is listed.
type ipfsDir struct {
	fusefs.Inode
	base
}

func (d *ipfsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	c, err := cid.Decode(name)
	if err != nil {
		return nil, syscall.ENOENT
	}
	e, err := d.fsys.node.Stat(ctx, c)
	if err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			// The CID may be added later: no negative entry. (A timeout
			// of our own keeps go-fuse from setting its negative one.)
			out.SetEntryTimeout(time.Nanosecond)
			return nil, syscall.ENOENT
		}
		return nil, d.fsys.contentErrno(ctx, "stat", c, err)
	}
	e.Name, e.CID = name, c
	return d.fsys.child(ctx, &d.Inode, joinPath(d.path, name), e, false, out)
}

func (d *ipfsDir) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{dir: &d.Inode, fsys: d.fsys, path: d.path}, 0, 0
}

// file is a UnixFS file. Every open gets its own Reader (its own
// sequential-read prefetch); the kernel keeps the pages across opens.
type file struct {
	fusefs.Inode
	base
	cid  cid.Cid
	size uint64
}

func (f *file) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	const keep = fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH
	if f.size == 0 {
		return &handle{f: f}, keep, 0
	}
	r, err := f.fsys.node.Open(ctx, f.cid)
	if err != nil {
		return nil, 0, f.fsys.contentErrno(ctx, "open", f.cid, err)
	}
	if r.Size() != f.size {
		r.Close()
		f.fsys.failures.report(f.fsys.log, "open", f.cid,
			fmt.Errorf("the file's size (%d) is not its entry's (%d)", r.Size(), f.size))
		return nil, 0, syscall.EIO
	}
	return &handle{f: f, r: r}, keep, 0
}

func (f *file) Write(context.Context, fusefs.FileHandle, []byte, int64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}

func (f *file) Allocate(context.Context, fusefs.FileHandle, uint64, uint64, uint32) syscall.Errno {
	return syscall.EROFS
}

// handle is an open file.
type handle struct {
	f *file
	r Reader // nil for an empty file
}

// Read fills dest (up to the end of the file) or fails: a Reader that
// cannot deliver every byte asked for gives EIO, never a short read, which
// the kernel would take for the end of the file.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	size := int64(h.f.size)
	if off < 0 {
		return nil, syscall.EINVAL
	}
	if off >= size || h.r == nil {
		return fuse.ReadResultData(nil), 0
	}
	buf := dest[:min(int64(len(dest)), size-off)]
	n := 0
	for n < len(buf) {
		k, err := h.r.ReadAt(buf[n:], off+int64(n))
		n += k
		if n >= len(buf) {
			break
		}
		switch {
		case err == io.EOF:
			err = fmt.Errorf("the file ends at %d, before its size %d", off+int64(n), size)
		case err == nil && k == 0:
			err = errors.New("ReadAt returned no bytes and no error")
		}
		if err != nil {
			return nil, h.f.fsys.contentErrno(ctx, "read", h.f.cid, err)
		}
	}
	return fuse.ReadResultData(buf), 0
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	if h.r != nil {
		h.r.Close()
	}
	return 0
}

// symlink is a symbolic link; the kernel caches its text.
type symlink struct {
	fusefs.Inode
	base
	target string
}

func (s *symlink) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	return []byte(s.target), 0
}

// dirHandle is an open directory: a snapshot of its listing, read by
// position (offset i+1 follows the i-th entry, "." and ".." first).
type dirHandle struct {
	dir  *fusefs.Inode
	fsys *filesystem
	path string
	tree bool    // entries come from the tree (tree timeouts)
	list []Entry // the children
	next int     // position of the next entry
}

func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	pos := h.next
	switch {
	case pos == 0:
		h.next++
		return &fuse.DirEntry{Name: ".", Mode: fuse.S_IFDIR, Ino: h.dir.StableAttr().Ino, Off: 1}, 0
	case pos == 1:
		h.next++
		ino := h.dir.StableAttr().Ino
		if _, p := h.dir.Parent(); p != nil {
			ino = p.StableAttr().Ino
		}
		return &fuse.DirEntry{Name: "..", Mode: fuse.S_IFDIR, Ino: ino, Off: 2}, 0
	case pos-2 < len(h.list):
		h.next++
		e := &h.list[pos-2]
		return &fuse.DirEntry{
			Name: e.Name,
			Mode: typeBits(e.Kind), // 0 (DT_UNKNOWN) for an entry not described yet
			Ino:  inoOf(joinPath(h.path, e.Name)),
			Off:  uint64(pos + 1),
		}, 0
	}
	return nil, 0
}

func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off > uint64(len(h.list)+2) {
		return syscall.EINVAL
	}
	h.next = int(off)
	return 0
}

// Lookup answers READDIRPLUS for the entry just listed, from the listing:
// no TreeStat, and never the network. An entry the node has not described
// yet (Kind 0) is left for a later LOOKUP: the kernel lists it without
// attributes (nodeid 0 in the READDIRPLUS reply).
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	var e *Entry
	if i := h.next - 3; i >= 0 && i < len(h.list) && h.list[i].Name == name {
		e = &h.list[i]
	} else if i := slices.IndexFunc(h.list, func(e Entry) bool { return e.Name == name }); i >= 0 {
		e = &h.list[i] // after a seek or an interrupted readdir
	}
	if e == nil || e.Kind == 0 {
		return nil, syscall.EAGAIN
	}
	return h.fsys.child(ctx, h.dir, joinPath(h.path, name), *e, h.tree, out)
}

// ipfsDir returns the /.ipfs inode.
func (f *filesystem) ipfsDir(ctx context.Context, root *fusefs.Inode, out *fuse.EntryOut) *fusefs.Inode {
	p := "/" + ipfsName
	d := &ipfsDir{base: base{fsys: f, path: p}}
	d.attr = f.attrOf(p, Entry{Kind: Dir})
	out.Attr = d.attr
	out.SetEntryTimeout(contentTimeout)
	out.SetAttrTimeout(contentTimeout)
	return root.NewInode(ctx, d, fusefs.StableAttr{Mode: fuse.S_IFDIR, Ino: d.attr.Ino})
}

// child makes the inode for entry e at path p under parent and fills out.
// tree says e is a tree entry: its name may be replaced (tree entry
// timeout); every other name lies under a CID and never changes.
//
// An inode's identity for go-fuse is (type, inode number, generation): the
// number comes from the path, the generation from what the entry is, so a
// replaced entry gets a new inode under the same number, and a lookup of
// an unchanged one finds the inode the kernel already has.
func (f *filesystem) child(ctx context.Context, parent *fusefs.Inode, p string, e Entry, tree bool, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if e.Kind == 0 {
		if !e.CID.Defined() {
			f.log.Warn("mount: an entry without a kind nor a CID", "path", p)
			return nil, syscall.EIO
		}
		st, err := f.node.Stat(ctx, e.CID)
		if err != nil {
			return nil, f.contentErrno(ctx, "stat", e.CID, err)
		}
		st.Name, st.CID = e.Name, e.CID
		e = st
	}
	b := base{fsys: f, path: p, attr: f.attrOf(p, e)}
	var ops fusefs.InodeEmbedder
	gen := genOf(e)
	switch {
	case e.Kind == Dir && !e.CID.Defined() && tree:
		ops, gen = &treeDir{base: b}, 0 // a tree directory is its path
	case e.Kind == Dir && e.CID.Defined():
		ops = &cidDir{base: b, cid: e.CID}
	case e.Kind == File && e.CID.Defined():
		ops = &file{base: b, cid: e.CID, size: e.Size}
	case e.Kind == Symlink:
		ops = &symlink{base: b, target: e.Target}
	default:
		f.log.Warn("mount: an entry the mount cannot show", "path", p, "kind", e.Kind.String(), "cid", e.CID)
		return nil, syscall.EIO
	}
	out.Attr = b.attr
	entryTimeout, attrTimeout := contentTimeout, contentTimeout
	if tree {
		entryTimeout = f.treeEntry
	}
	if _, isTreeDir := ops.(*treeDir); isTreeDir {
		attrTimeout = f.treeAttr
	}
	out.SetEntryTimeout(entryTimeout)
	out.SetAttrTimeout(attrTimeout)
	return parent.NewInode(ctx, ops, fusefs.StableAttr{Mode: typeBits(e.Kind), Ino: b.attr.Ino, Gen: gen}), 0
}

// attrOf is the attributes of entry e at path p: read-only permissions,
// the mounting user as owner.
func (f *filesystem) attrOf(p string, e Entry) fuse.Attr {
	a := fuse.Attr{Ino: inoOf(p), Nlink: 1, Blksize: blksize}
	a.Uid, a.Gid = f.uid, f.gid
	perm := uint32(0o555) // unknown: executables must run from the mount
	if e.Mode&0o7777 != 0 {
		perm = e.Mode & 0o555
	}
	switch e.Kind {
	case File:
		a.Size = e.Size
	case Symlink:
		a.Size = uint64(len(e.Target))
		perm = 0o777 // as every Linux symlink; its target decides access
	}
	a.Mode = typeBits(e.Kind) | perm
	a.Blocks = (a.Size + 511) / 512
	t := e.Mtime
	if t.IsZero() {
		t = f.start
	}
	a.SetTimes(&t, &t, &t)
	return a
}

// listable returns the entries that can be names in a directory, sorted by
// name if they were not (readdir must be deterministic). At the root the
// tree's own ".ipfs", which the hidden directory shadows, is left out.
func (f *filesystem) listable(list []Entry, root bool) []Entry {
	bad := func(e Entry) bool {
		return e.Name == "" || e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\x00") ||
			root && e.Name == ipfsName
	}
	if slices.ContainsFunc(list, bad) {
		list = slices.DeleteFunc(slices.Clone(list), bad)
	}
	byName := func(a, b Entry) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(list, byName) {
		list = slices.Clone(list)
		slices.SortStableFunc(list, byName)
	}
	return list
}

// treeErrno maps a tree method's error: the tree answers from memory, so
// anything but "missing" is a bug in the node, logged.
func (f *filesystem) treeErrno(p string, err error) syscall.Errno {
	if errors.Is(err, iofs.ErrNotExist) {
		return syscall.ENOENT
	}
	f.log.Warn("mount: the shared tree failed", "path", p, "err", err)
	return syscall.EIO
}

// contentErrno maps a content method's error: an interrupted request is
// EINTR, an unknown CID ENOENT, anything else (holders unreachable) EIO.
// Both of the latter are logged, once a minute at most per CID.
func (f *filesystem) contentErrno(ctx context.Context, op string, c cid.Cid, err error) syscall.Errno {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	f.failures.report(f.log, op, c, err)
	if errors.Is(err, iofs.ErrNotExist) {
		return syscall.ENOENT
	}
	return syscall.EIO
}

// failureLog rate-limits the log lines of failing content: one line per
// CID per failureLogEvery, however many reads fail meanwhile.
type failureLog struct {
	mu   sync.Mutex
	last map[cid.Cid]time.Time
}

const failureLogEvery = time.Minute

func (l *failureLog) report(log *slog.Logger, op string, c cid.Cid, err error) {
	now := time.Now()
	l.mu.Lock()
	if l.last == nil {
		l.last = make(map[cid.Cid]time.Time)
	}
	if t, ok := l.last[c]; ok && now.Sub(t) < failureLogEvery {
		l.mu.Unlock()
		return
	}
	if len(l.last) >= 4096 {
		for k, t := range l.last {
			if now.Sub(t) >= failureLogEvery {
				delete(l.last, k)
			}
		}
	}
	l.last[c] = now
	l.mu.Unlock()
	log.Warn("mount: content unavailable", "cid", c.String(), "op", op, "err", err)
}

func typeBits(k Kind) uint32 {
	switch k {
	case File:
		return fuse.S_IFREG
	case Dir:
		return fuse.S_IFDIR
	case Symlink:
		return fuse.S_IFLNK
	}
	return 0
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// inoOf is the inode number of path p: stable across lookups, mounts and
// processes. 0, 1 (the root) and ^0 (go-fuse's) are reserved.
func inoOf(p string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(p))
	ino := h.Sum64()
	if ino <= 1 || ino == ^uint64(0) {
		ino ^= 0x5bd1e995
	}
	return ino
}

// genOf is the generation of an inode showing e: what changes when an
// entry is replaced.
func genOf(e Entry) uint64 {
	h := fnv.New64a()
	var b [8]byte
	put := func(v uint64) {
		for i := range b {
			b[i] = byte(v >> (8 * i))
		}
		h.Write(b[:])
	}
	put(uint64(e.Kind))
	put(uint64(e.Mode))
	put(e.Size)
	if !e.Mtime.IsZero() {
		put(uint64(e.Mtime.UnixNano()))
	}
	h.Write(e.CID.Bytes())
	h.Write([]byte(e.Target))
	return h.Sum64()
}
