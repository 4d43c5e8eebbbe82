package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ipfs/boxo/files"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/store"
	"github.com/fungistor/fungistor/store/zdb"
)

// kvFragments adapts a ZDB namespace (embedded or remote) to the fragment
// store the dispersal engine uses. Puts are buffered by the engine; Sync
// makes them durable.
type kvFragments struct{ kv store.KV }

var _ fungi.FragmentStore = kvFragments{}

func (s kvFragments) PutFragment(ctx context.Context, key, data []byte) error {
	_, _, err := s.kv.Set(ctx, key, data)
	return err
}

// PutFragments writes every fragment, then waits once for durability.
func (s kvFragments) PutFragments(ctx context.Context, keys, values [][]byte) error {
	ns, ok := s.kv.(*zdb.Namespace)
	if !ok { // a remote ZDB: one SET each
		for i, k := range keys {
			if err := s.PutFragment(ctx, k, values[i]); err != nil {
				return err
			}
		}
		return nil
	}
	var last uint64
	for i, k := range keys {
		_, changed, commit, err := ns.Write(k, values[i])
		if err != nil {
			return err
		}
		if changed {
			last = commit
		}
	}
	if last == 0 {
		return nil
	}
	return ns.Flush(last)
}

func (s kvFragments) GetFragment(ctx context.Context, key []byte) ([]byte, error) {
	v, err := s.kv.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fungi.ErrFragmentNotFound
	}
	return v, err
}

// GetFragmentPooled reads a fragment of the embedded ZDB into a pooled
// buffer (fungi.PooledFragmentGetter): a local read then costs no
// allocation (zeroing 64 KiB a fragment was a sixth of a node's cat).
func (s kvFragments) GetFragmentPooled(ctx context.Context, key []byte) ([]byte, func(), error) {
	ns, ok := s.kv.(*zdb.Namespace)
	if !ok {
		v, err := s.GetFragment(ctx, key)
		return v, nil, err
	}
	m, err := ns.Stat(key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = fungi.ErrFragmentNotFound
		}
		return nil, nil, err
	}
	// room for the record: its header, the key and the value
	buf := fungi.FragmentBuffer(int(m.Size) + len(key) + 64)
	v, got, err := ns.GetBuf(key, buf[:0])
	if errors.Is(err, store.ErrNotFound) {
		err = fungi.ErrFragmentNotFound
	}
	if err != nil || unsafe.SliceData(got) != unsafe.SliceData(buf) {
		// failed, or the record outgrew the buffer (rewritten meanwhile)
		fungi.ReleaseFragment(buf)
		return v, nil, err
	}
	return v, func() { fungi.ReleaseFragment(buf) }, nil
}

func (s kvFragments) HasFragment(ctx context.Context, key []byte) (bool, error) {
	return s.kv.Exists(ctx, key)
}

func (s kvFragments) DeleteFragment(ctx context.Context, key []byte) error {
	err := s.kv.Del(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// zdbFragments is the embedded ZDB as a fragment store. Puts are buffered
// by the engine and written out in 1 MiB batches, not one write per
// fragment; the add syncs the namespace before it commits the manifest.
type zdbFragments struct {
	kvFragments
	ns *zdb.Namespace
}

// PutFragments buffers too (the add syncs at its end).
func (s zdbFragments) PutFragments(_ context.Context, keys, values [][]byte) error {
	for i, k := range keys {
		if _, _, _, err := s.ns.Write(k, values[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s zdbFragments) PutFragment(_ context.Context, key, data []byte) error {
	_, _, _, err := s.ns.Write(key, data)
	return err
}

// placement is where the repo's fragments live: all n on the local ZDB
// until the node joins a cluster.
func (r *Repo) placement() fungi.Spread {
	return fungi.Spread{Pool: []fungi.Target{{ID: "local", Store: r.local()}}}
}

func (r *Repo) local() fungi.FragmentStore { return zdbFragments{kvFragments{r.frags}, r.frags} }

// AddOptions configure Repo.Add.
type AddOptions struct {
	Profile  string // default: the config's
	Coding   string // default: the config's
	Hidden   bool
	Progress func(done int64)
	// ToFiles links what was added at this path of the shared tree (a
	// path ending in / links it under its name in that directory);
	// FilesReplace lets it replace a file there. Adds through the daemon
	// only.
	ToFiles      string
	FilesReplace bool
}

// AddResult is what an add stored.
type AddResult struct {
	Root      string `json:"root"`
	Name      string `json:"name,omitempty"`
	Size      uint64 `json:"size"`
	Blocks    uint64 `json:"blocks"`
	Stored    uint64 `json:"stored"`
	Coding    string `json:"coding"`
	Tolerance string `json:"tolerance"`
	// Nodes is how many nodes the fragments went to; Left names members
	// the pool left out (down, full, no_store).
	Nodes int    `json:"nodes"`
	Left  string `json:"left_out,omitempty"`
	// Index is the raft log index the manifest was committed at (a node
	// that forwarded the add waits for it before answering).
	Index uint64 `json:"index,omitempty"`
	// Files is the path of the shared tree the add linked it at (to-files).
	Files string `json:"files,omitempty"`
	// Manifest is the object's manifest (local adds only).
	Manifest *fungi.Manifest `json:"-"`
}

// Add imports a file or directory, disperses its leaves as fragments and
// records its manifest. It returns once everything is durable; an add that
// fails leaves no manifest (its fragments are orphans, collected later).
func (r *Repo) Add(ctx context.Context, path string, o AddOptions) (*AddResult, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPathErr(err))
	}
	if !fi.IsDir() && !fi.Mode().IsRegular() && fi.Mode()&os.ModeSymlink == 0 {
		return nil, fmt.Errorf("%s: %w", path, fungi.ErrUnsupportedFile)
	}
	n, err := files.NewSerialFile(path, o.Hidden, fi)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	res, err := r.AddNode(ctx, n, o, nil)
	if err != nil {
		return nil, err
	}
	res.Name = filepath.Base(filepath.Clean(path))
	return res, nil
}

// AddNode is Add of a boxo files.Node (a local tree or an upload). step,
// if set, is called on the calling goroutine after each block is imported
// (the API streams progress from it).
func (r *Repo) AddNode(ctx context.Context, n files.Node, o AddOptions, step func()) (*AddResult, error) {
	p, err := fungi.ParseProfile(or(o.Profile, r.Config.Profile))
	if err != nil {
		return nil, httpError{400, err}
	}
	coding, err := fungi.ParseCoding(or(o.Coding, r.Config.Coding))
	if err != nil {
		return nil, httpError{400, err}
	}
	codec, err := r.codec(coding)
	if err != nil {
		return nil, err
	}
	w, err := r.disperse(ctx, codec, coding)
	if err != nil {
		return nil, err
	}
	w.Progress = o.Progress
	dag := fungi.ImportTarget(w.Writer) // chunk buffers are reused
	if step != nil {
		dag = stepDAG{dag, step}
	}
	m, idx, err := r.store(ctx, n, p, w.Writer, dag)
	if err := w.end(ctx, err); err != nil {
		return nil, err
	}
	res := &AddResult{Root: m.Root.String(), Size: m.Size, Blocks: m.Leaves, Stored: m.Stored,
		Coding: coding.String(), Tolerance: w.place.DescribeTolerance(coding), Nodes: min(len(w.place.Pool), coding.N),
		Left: describeLeft(w.left), Index: idx, Manifest: m}
	if leaves, err := m.LeafCIDs(); err == nil && len(leaves) == 0 { // all inline: no fragment anywhere
		res.Nodes, res.Tolerance = 0, "kept in the replicated metadata: every member holds it"
	}
	return res, nil
}

// dispersal is one add's or import's writing of fragments: a Writer over
// the pool of the moment (the cluster's, else the repo's own ZDB).
type dispersal struct {
	*fungi.Writer
	cc     *clusterContent // nil: the repo alone
	place  fungi.Spread
	coding fungi.Coding
	left   []string     // members the pool left out, and why
	failed atomic.Int32 // puts that failed: the pool changed
}

// disperse starts a dispersal of blocks coded with coding (codec is its
// codec). The caller ends it with end.
func (r *Repo) disperse(ctx context.Context, codec *fungi.Codec, coding fungi.Coding) (*dispersal, error) {
	d := &dispersal{cc: r.cluster, place: r.placement(), coding: coding}
	parallel := 0
	if r.cluster != nil {
		var err error
		if d.place, d.left, err = r.cluster.placeNew(&d.failed); err != nil {
			return nil, httpError{503, err}
		}
		parallel = 8 // puts wait on the network: keep more leaves in flight
	}
	d.Writer = fungi.NewWriter(ctx, codec, d.coding, d.place, parallel)
	if r.cluster != nil {
		d.Admit = r.cluster.admit
	}
	return d, nil
}

// end ends the dispersal with the outcome err of what used it, after
// Finish or Wait. On a failure the cluster deletes the fragments it
// stored that no committed object and no other write uses, else it
// releases its blocks; a failure while puts failed (the pool changed) is
// ErrPoolChanged, which the client retries.
func (d *dispersal) end(ctx context.Context, err error) error {
	if d.cc != nil {
		if err != nil {
			d.cc.cleanup(d.place, d.coding, d.Leaves())
		} else {
			d.cc.release(d.Leaves())
		}
	}
	if err != nil && d.failed.Load() > 0 && ctx.Err() == nil {
		return fmt.Errorf("%w: %v", ErrPoolChanged, err)
	}
	return err
}

// store imports n through w and records the manifest: in the cluster's
// metadata (through raft) when the repo is part of one, else locally.
func (r *Repo) store(ctx context.Context, n files.Node, p fungi.Profile, w *fungi.Writer, dag ipld.DAGService) (*fungi.Manifest, uint64, error) {
	nd, err := fungi.ImportNode(ctx, n, p, dag, nil)
	if err != nil {
		w.Finish(cid.Undef)
		return nil, 0, err
	}
	m, err := w.Finish(nd.Cid())
	if err != nil {
		return nil, 0, err
	}
	if err := r.frags.Sync(); err != nil {
		return nil, 0, err
	}
	if r.cluster == nil {
		return m, 0, r.putManifest(ctx, m)
	}
	idx, err := r.cluster.commit(ctx, m)
	if err != nil {
		return nil, 0, fmt.Errorf("commit the manifest through the cluster: %w", err)
	}
	// a copy in the repo too: with the daemon stopped, the repo opened
	// directly still reads what it added (all of it, on a one-node cluster)
	return m, idx, r.putManifest(ctx, m)
}

// stepDAG calls step after every Add.
type stepDAG struct {
	ipld.DAGService
	step func()
}

func (s stepDAG) Add(ctx context.Context, nd ipld.Node) error {
	err := s.DAGService.Add(ctx, nd)
	s.step()
	return err
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Manifest records: "m/<root cid>" holds a manifest, "n/<cid>" names the
// root of the manifest an inner node belongs to.
func (r *Repo) putManifest(ctx context.Context, m *fungi.Manifest) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	for c := range m.Nodes {
		if c.Equals(m.Root) {
			continue
		}
		if _, _, err := r.meta.Set(ctx, append([]byte("n/"), c.Bytes()...), m.Root.Bytes()); err != nil {
			return err
		}
	}
	if _, _, err := r.meta.Set(ctx, append([]byte("m/"), m.Root.Bytes()...), b); err != nil {
		return err
	}
	r.localGen.Add(1)
	return r.meta.Sync()
}

// codec returns the codec of coding under the repo's current secret,
// cached: a codec keeps Reed-Solomon decoding matrices it has inverted, so
// reuse makes reads with missing fragments cheaper.
func (r *Repo) codec(c fungi.Coding) (*fungi.Codec, error) {
	secret := r.Secret()
	key := c.String() + "/" + string(secret)
	r.codecMu.Lock()
	defer r.codecMu.Unlock()
	if cd, ok := r.codecs[key]; ok {
		return cd, nil
	}
	cd, err := fungi.NewCodec(secret, c)
	if err != nil {
		return nil, err
	}
	if r.codecs == nil || len(r.codecs) > 16 {
		r.codecs = map[string]*fungi.Codec{}
	}
	r.codecs[key] = cd
	return cd, nil
}

// localManifests returns the manifests recorded in the repo itself (adds
// made while it was not part of a cluster).
func (r *Repo) localManifests(ctx context.Context) ([]*fungi.Manifest, error) {
	raw, err := r.localManifestBytes(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := decodeManifests(slices.Collect(maps.Values(raw)))
	for _, m := range ms {
		m.Epoch = ^uint64(0) // a node's own content: no repair moves it
	}
	return ms, err
}

// decodeManifests decodes encoded manifests, in order.
func decodeManifests(raw [][]byte) ([]*fungi.Manifest, error) {
	out := make([]*fungi.Manifest, 0, len(raw))
	for _, b := range raw {
		m := &fungi.Manifest{}
		if err := m.UnmarshalBinary(b); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// localManifestBytes returns the encoded manifests recorded in the repo
// itself, by root.
func (r *Repo) localManifestBytes(ctx context.Context) (map[cid.Cid][]byte, error) {
	out := map[cid.Cid][]byte{}
	var cursor []byte
	for {
		items, next, err := r.meta.Scan(cursor, 1024, false)
		if err != nil || len(items) == 0 {
			return out, err
		}
		for _, it := range items {
			root, ok := bytes.CutPrefix(it.Key, []byte("m/"))
			if !ok {
				continue
			}
			c, err := cid.Cast(root)
			if err != nil {
				continue
			}
			b, err := r.meta.Get(ctx, it.Key)
			if err != nil {
				return nil, err
			}
			out[c] = b
		}
		cursor = next
	}
}

// ErrNotFound: the repo knows no content with that CID.
var ErrNotFound = errors.New("not found (no object with this CID here or in the cluster)")

// ParseCID parses a CID given by a user, with a one-line error.
func ParseCID(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		msg := err.Error()
		for strings.HasPrefix(msg, "invalid cid: ") {
			msg = strings.TrimPrefix(msg, "invalid cid: ")
		}
		return cid.Undef, fmt.Errorf("invalid CID %q: %s", s, msg)
	}
	return c, nil
}

// manifest finds the manifest that holds c: its own, the one of the object
// it is a node of, or, for a bare leaf, one made from the repo's coding.
func (r *Repo) manifest(ctx context.Context, c cid.Cid) (*fungi.Manifest, error) {
	if r.cluster != nil {
		m, ok, err := r.cluster.manifest(ctx, c)
		if err != nil || ok {
			return m, err
		}
	}
	root := c
	b, err := r.meta.Get(ctx, append([]byte("m/"), c.Bytes()...))
	if errors.Is(err, store.ErrNotFound) {
		rb, err2 := r.meta.Get(ctx, append([]byte("n/"), c.Bytes()...))
		if err2 == nil {
			if root, err2 = cid.Cast(rb); err2 == nil {
				b, err = r.meta.Get(ctx, append([]byte("m/"), rb...))
			}
		}
	}
	if errors.Is(err, store.ErrNotFound) && c.Prefix().Codec == cid.Raw && r.cluster == nil {
		coding, err := fungi.ParseCoding(r.Config.Coding)
		if err != nil {
			return nil, err
		}
		return &fungi.Manifest{Root: c, Coding: coding}, nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", c, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	m := &fungi.Manifest{}
	if err := m.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", root, err)
	}
	return m, nil
}

// object opens c for reading: its node and a DAG to walk from it. A DAG
// imported from CAR files may span manifests (and hold dag-pb leaves as
// fragments): it, and a block no manifest names but some holds, is walked
// through the node's block index.
func (r *Repo) object(ctx context.Context, c cid.Cid) (ipld.Node, ipld.DAGService, *fungi.Manifest, error) {
	// a daemon keeps recent objects decoded (the block index's): a read of
	// one file of a large tree does not decode and verify the whole tree's
	// manifest again
	if r.cluster != nil {
		if o, ok := r.blockSource().objectOf(ctx, c); ok && !o.m.Imported {
			dag := o.rd.DAG(o.m)
			nd, err := dag.Get(ctx, c)
			if err != nil {
				return nil, nil, nil, err
			}
			return nd, dag, o.m, nil
		}
	}
	m, err := r.manifest(ctx, c)
	if (err == nil && m.Imported) || errors.Is(err, ErrNotFound) {
		if held, herr := r.HasBlock(ctx, c); herr == nil && held {
			dag := fungi.BlockDAG(r)
			nd, err := dag.Get(ctx, c)
			if err != nil {
				return nil, nil, nil, err
			}
			return nd, dag, m, nil
		}
	}
	if err != nil {
		return nil, nil, nil, err
	}
	rd, err := r.reader(m)
	if err != nil {
		return nil, nil, nil, err
	}
	dag := rd.DAG(m)
	nd, err := dag.Get(ctx, c)
	if err != nil {
		return nil, nil, nil, err
	}
	return nd, dag, m, nil
}

// reader returns a reader of m's leaves: nearest holders first, with the
// node's shared latency table and fragment metrics.
func (r *Repo) reader(m *fungi.Manifest) (*fungi.Reader, error) {
	codec, err := r.codec(m.Coding)
	if err != nil {
		return nil, err
	}
	rd := fungi.NewReader(codec, m.Coding, r.readPlacement(m), 64<<20)
	if r.cluster != nil {
		rd.SetLatency(r.cluster.lat)
		rd.OnBadFragment = r.cluster.bad
		cc := r.cluster
		rd.OnFetched = func(holder string) {
			cc.lastRead.Store(time.Now().UnixNano())
			if cc.onFetch != nil {
				cc.onFetch(holder)
			}
		}
	}
	return rd, nil
}

// ErrIsDirectory: cat of a directory.
var ErrIsDirectory = errors.New("is a directory (use fungi ls or fungi get)")

// Cat opens a file for reading; the reader supports Seek for byte ranges,
// fetching only the blocks it needs.
func (r *Repo) Cat(ctx context.Context, c cid.Cid) (uio.DagReader, error) {
	nd, dag, _, err := r.object(ctx, c)
	if err != nil {
		return nil, err
	}
	if isDir(nd) {
		return nil, fmt.Errorf("%s %w", c, ErrIsDirectory)
	}
	return uio.NewDagReader(ctx, nd, dag)
}

// InlineLeafMax is the largest leaf kept in its object's manifest rather
// than coded into fragments (fungi.InlineLeafMax).
const InlineLeafMax = fungi.InlineLeafMax

// CatStream opens a file for one sequential read (cat): its leaves are
// fetched ahead into pooled buffers and written out from there, without
// the copies and the cache of Cat's reader.
func (r *Repo) CatStream(ctx context.Context, c cid.Cid) (*fungi.FileStream, error) {
	nd, dag, _, err := r.object(ctx, c)
	if err != nil {
		return nil, err
	}
	if isDir(nd) {
		return nil, fmt.Errorf("%s %w", c, ErrIsDirectory)
	}
	return fungi.NewFileStream(ctx, dag, nd)
}

func isDir(nd ipld.Node) bool {
	fsn, err := ft.ExtractFSNode(nd)
	if err != nil {
		return false
	}
	return fsn.Type() == ft.TDirectory || fsn.Type() == ft.THAMTShard
}

// Entry is one item of a directory listing.
type Entry struct {
	Name string `json:"name"`
	CID  string `json:"cid"`
	Size uint64 `json:"size"`
	Type string `json:"type"` // file, directory, symlink
}

// Ls lists a directory (or describes a single file).
func (r *Repo) Ls(ctx context.Context, c cid.Cid) ([]Entry, error) {
	nd, dag, _, err := r.object(ctx, c)
	if err != nil {
		return nil, err
	}
	if !isDir(nd) {
		e, err := describe(ctx, dag, "", nd)
		return []Entry{e}, err
	}
	dir, err := uio.NewDirectoryFromNode(dag, nd)
	if err != nil {
		return nil, err
	}
	var out []Entry
	err = dir.ForEachLink(ctx, func(l *ipld.Link) error {
		child, err := dag.Get(ctx, l.Cid)
		if err != nil {
			return err
		}
		e, err := describe(ctx, dag, l.Name, child)
		if e.Type == "directory" {
			e.Size = l.Size // cumulative: the subtree's content and nodes
		}
		out = append(out, e)
		return err
	})
	return out, err
}

func describe(_ context.Context, _ ipld.DAGService, name string, nd ipld.Node) (Entry, error) {
	e := Entry{Name: name, CID: nd.Cid().String(), Type: "file"}
	if nd.Cid().Prefix().Codec == cid.Raw {
		e.Size = uint64(len(nd.RawData()))
		return e, nil
	}
	fsn, err := ft.ExtractFSNode(nd)
	if err != nil {
		return e, err
	}
	switch fsn.Type() {
	case ft.TDirectory, ft.THAMTShard:
		e.Type = "directory"
	case ft.TSymlink:
		e.Type = "symlink"
		e.Size = uint64(len(fsn.Data()))
	default:
		e.Size = fsn.FileSize()
	}
	return e, nil
}

// ErrExists: get into a path that exists.
var ErrExists = errors.New("already exists (refusing to overwrite)")

// Get writes c to out: a file, or a directory tree. out must not exist.
func (r *Repo) Get(ctx context.Context, c cid.Cid, out string, progress func(int64)) error {
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("%s: %w", out, ErrExists)
	}
	nd, dag, _, err := r.object(ctx, c)
	if err != nil {
		return err
	}
	return writeNode(ctx, dag, nd, out, progress)
}

// objectEntry is one item of an object walked by walkObject: a directory,
// a symlink (Target set) or a file (File set).
type objectEntry struct {
	Path   string // slash-separated, starting with the walk's root name
	Dir    bool
	Target string
	File   uio.DagReader
}

// walkObject visits nd and, for a directory, everything below it, parents
// before children. Names that would escape the tree are refused.
func walkObject(ctx context.Context, dag ipld.DAGService, nd ipld.Node, path string, visit func(objectEntry) error) error {
	if isDir(nd) {
		if err := visit(objectEntry{Path: path, Dir: true}); err != nil {
			return err
		}
		dir, err := uio.NewDirectoryFromNode(dag, nd)
		if err != nil {
			return err
		}
		return dir.ForEachLink(ctx, func(l *ipld.Link) error {
			if !validName(l.Name) {
				return fmt.Errorf("refusing unsafe name %q in directory %s", l.Name, nd.Cid())
			}
			child, err := dag.Get(ctx, l.Cid)
			if err != nil {
				return err
			}
			return walkObject(ctx, dag, child, path+"/"+l.Name, visit)
		})
	}
	if nd.Cid().Prefix().Codec != cid.Raw {
		if fsn, err := ft.ExtractFSNode(nd); err == nil && fsn.Type() == ft.TSymlink {
			return visit(objectEntry{Path: path, Target: string(fsn.Data())})
		}
	}
	rd, err := uio.NewDagReader(ctx, nd, dag)
	if err != nil {
		return err
	}
	return visit(objectEntry{Path: path, File: rd})
}

// writeNode saves nd at out on the local filesystem.
func writeNode(ctx context.Context, dag ipld.DAGService, nd ipld.Node, out string, progress func(int64)) error {
	return walkObject(ctx, dag, nd, filepath.ToSlash(out), func(e objectEntry) error {
		path := filepath.FromSlash(e.Path)
		switch {
		case e.Dir:
			return os.Mkdir(path, 0o755)
		case e.File == nil:
			return os.Symlink(e.Target, path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		var w io.Writer = f
		if progress != nil {
			w = progressWriter{w: f, fn: progress}
		}
		_, err = io.Copy(w, e.File)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
		return err
	})
}

// validName refuses directory entries that would escape the output
// directory.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && filepath.Base(name) == name && !filepath.IsAbs(name)
}

type progressWriter struct {
	w  io.Writer
	fn func(int64)
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.fn(int64(n))
	return n, err
}
