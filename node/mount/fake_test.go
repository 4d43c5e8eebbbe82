//go:build linux

package mount

import (
	"bytes"
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// fakeNode is an in-memory Node: a tree of paths, and content by CID.
// Every method may be made to fail for one CID (fail).
type fakeNode struct {
	mu      sync.RWMutex
	tree    map[string]Entry   // tree path → entry ("/" included)
	kids    map[string][]Entry // tree dir path → its children, sorted
	files   map[cid.Cid][]byte
	dirs    map[cid.Cid][]Entry
	links   map[cid.Cid]string
	modes   map[cid.Cid]uint32
	failing map[cid.Cid]error
	short   bool // readers return short reads at random

	treeStats, stats atomic.Int64
	lists, opens     atomic.Int64
	maxRead          atomic.Int64 // the largest ReadAt
}

func newFakeNode() *fakeNode {
	f := &fakeNode{
		tree:    map[string]Entry{"/": {Name: "/", Kind: Dir}},
		kids:    map[string][]Entry{"/": nil},
		files:   map[cid.Cid][]byte{},
		dirs:    map[cid.Cid][]Entry{},
		links:   map[cid.Cid]string{},
		modes:   map[cid.Cid]uint32{},
		failing: map[cid.Cid]error{},
	}
	return f
}

var errUnreachable = errors.New("no holder answered")

func sum(codec uint64, data []byte) cid.Cid {
	h, err := mh.Sum(data, mh.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(codec, h)
}

// file stores data and returns its entry (no name).
func (f *fakeNode) file(data []byte, mode uint32) Entry {
	c := sum(cid.Raw, append([]byte{byte(mode), byte(mode >> 8)}, data...))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[c] = data
	f.modes[c] = mode
	return Entry{Kind: File, Size: uint64(len(data)), Mode: mode, CID: c}
}

// dir stores a UnixFS directory of entries (named) and returns its entry.
func (f *fakeNode) dir(entries ...Entry) Entry {
	var b bytes.Buffer
	for _, e := range entries {
		b.WriteString(e.Name)
		b.Write(e.CID.Bytes())
		b.WriteString(e.Target)
	}
	c := sum(cid.DagProtobuf, b.Bytes())
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dirs[c] = entries
	return Entry{Kind: Dir, CID: c}
}

func (f *fakeNode) symlink(target string) Entry {
	c := sum(cid.DagProtobuf, []byte("symlink:"+target))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links[c] = target
	return Entry{Kind: Symlink, Size: uint64(len(target)), CID: c, Target: target}
}

func named(name string, e Entry) Entry {
	e.Name = name
	return e
}

// put sets the tree entry at p, creating its parents as tree directories.
func (f *fakeNode) put(p string, e Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.putLocked(p, e)
}

func (f *fakeNode) putLocked(p string, e Entry) {
	dir, name := path.Split(p)
	dir = path.Clean(dir)
	if _, ok := f.tree[dir]; !ok {
		f.putLocked(dir, Entry{Kind: Dir})
	}
	e.Name = name
	if old, ok := f.tree[p]; ok && old.Kind == Dir && !old.CID.Defined() && !(e.Kind == Dir && !e.CID.Defined()) {
		f.removeLocked(p)
	}
	f.tree[p] = e
	if e.Kind == Dir && !e.CID.Defined() {
		if _, ok := f.kids[p]; !ok {
			f.kids[p] = nil
		}
	}
	kids := f.kids[dir]
	i, found := slices.BinarySearchFunc(kids, name, func(a Entry, n string) int { return strings.Compare(a.Name, n) })
	if found {
		kids[i] = e
	} else {
		f.kids[dir] = slices.Insert(kids, i, e)
	}
}

// putMany adds entries under tree dir p at once (sorted by name).
func (f *fakeNode) putMany(p string, entries []Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tree[p]; !ok {
		f.putLocked(p, Entry{Kind: Dir})
	}
	for _, e := range entries {
		f.tree[joinPath(p, e.Name)] = e
	}
	kids := append(f.kids[p], entries...)
	slices.SortFunc(kids, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	f.kids[p] = kids
}

func (f *fakeNode) remove(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removeLocked(p)
}

func (f *fakeNode) removeLocked(p string) {
	for q := range f.tree {
		if strings.HasPrefix(q, p+"/") {
			delete(f.tree, q)
			delete(f.kids, q)
		}
	}
	delete(f.tree, p)
	delete(f.kids, p)
	dir, name := path.Split(p)
	dir = path.Clean(dir)
	f.kids[dir] = slices.DeleteFunc(f.kids[dir], func(e Entry) bool { return e.Name == name })
}

// fail makes every content method fail for c (err nil: heal it).
func (f *fakeNode) fail(c cid.Cid, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.failing, c)
	} else {
		f.failing[c] = err
	}
}

func (f *fakeNode) failure(c cid.Cid) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.failing[c]
}

// v1 is c as the fake keys it: a CIDv0 names the same dag-pb content.
func v1(c cid.Cid) cid.Cid {
	if c.Defined() && c.Version() == 0 {
		return cid.NewCidV1(cid.DagProtobuf, c.Hash())
	}
	return c
}

func (f *fakeNode) TreeStat(p string) (Entry, error) {
	f.treeStats.Add(1)
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, ok := f.tree[p]
	if !ok {
		return Entry{}, iofs.ErrNotExist
	}
	return e, nil
}

func (f *fakeNode) TreeList(p string) ([]Entry, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	kids, ok := f.kids[p]
	if !ok {
		return nil, iofs.ErrNotExist
	}
	return slices.Clone(kids), nil
}

func (f *fakeNode) Stat(ctx context.Context, c cid.Cid) (Entry, error) {
	f.stats.Add(1)
	c = v1(c)
	if err := f.failure(c); err != nil {
		return Entry{}, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if data, ok := f.files[c]; ok {
		return Entry{Kind: File, Size: uint64(len(data)), Mode: f.modes[c], CID: c}, nil
	}
	if _, ok := f.dirs[c]; ok {
		return Entry{Kind: Dir, CID: c}, nil
	}
	if t, ok := f.links[c]; ok {
		return Entry{Kind: Symlink, Size: uint64(len(t)), CID: c, Target: t}, nil
	}
	return Entry{}, iofs.ErrNotExist
}

func (f *fakeNode) List(ctx context.Context, c cid.Cid) ([]Entry, error) {
	f.lists.Add(1)
	c = v1(c)
	if err := f.failure(c); err != nil {
		return nil, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	entries, ok := f.dirs[c]
	if !ok {
		return nil, iofs.ErrNotExist
	}
	return slices.Clone(entries), nil
}

func (f *fakeNode) Open(ctx context.Context, c cid.Cid) (Reader, error) {
	f.opens.Add(1)
	c = v1(c)
	if err := f.failure(c); err != nil {
		return nil, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	data, ok := f.files[c]
	if !ok {
		return nil, iofs.ErrNotExist
	}
	return &fakeReader{node: f, cid: c, data: data, short: f.short}, nil
}

type fakeReader struct {
	node  *fakeNode
	cid   cid.Cid
	data  []byte
	short bool
}

func (r *fakeReader) ReadAt(p []byte, off int64) (int, error) {
	if err := r.node.failure(r.cid); err != nil {
		return 0, err
	}
	for {
		m := r.node.maxRead.Load()
		if int64(len(p)) <= m || r.node.maxRead.CompareAndSwap(m, int64(len(p))) {
			break
		}
	}
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	if r.short && len(p) > 1 && rand.IntN(2) == 0 {
		p = p[:1+rand.IntN(len(p)-1)] // short, without an error
	}
	n := copy(p, r.data[off:])
	if off+int64(n) == int64(len(r.data)) {
		return n, io.EOF
	}
	return n, nil
}

func (r *fakeReader) Size() uint64 { return uint64(len(r.data)) }
func (r *fakeReader) Close() error { return nil }

// logBuffer collects log lines from many goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// needFUSE skips the test without root and /dev/fuse (fails it on CI).
func needFUSE(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "not root"
	} else if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		why = err.Error()
	} else {
		f.Close()
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("the mount's tests need root and /dev/fuse: %s", why)
	}
	t.Skipf("the mount's tests need root and /dev/fuse: %s", why)
}

// mountFake mounts n on a new directory until the test ends.
func mountFake(t testing.TB, n Node, o Options) (*Mount, string, *logBuffer) {
	t.Helper()
	needFUSE(t)
	logs := &logBuffer{}
	if o.Logger == nil {
		o.Logger = logs.logger()
	}
	dir := t.TempDir()
	m, err := New(dir, n, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		if t.Failed() || os.Getenv("FUNGI_MOUNT_TEST_LOGS") != "" {
			t.Logf("the mount's log:\n%s", logs)
		}
	})
	return m, dir, logs
}
