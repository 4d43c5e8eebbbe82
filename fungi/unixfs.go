package fungi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/files"
	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// Profile is a UnixFS import profile: the DAG parameters that decide a
// content's CID. The same bytes imported with the same profile give the same
// CID here as in Kubo.
type Profile struct {
	Name         string
	CIDVersion   int
	ChunkSize    int64
	FileDAGWidth int  // links per file node
	RawLeaves    bool // leaves are raw blocks, not dag-pb
	// Directories turn into HAMT shards when their estimated block size
	// exceeds HAMTShardingSize, estimated as Kubo does for the profile.
	HAMTShardingSize   int
	HAMTSizeEstimation uio.SizeEstimationMode
	HAMTShardWidth     int
}

// The profiles. unixfs-v1-2025 is IPIP-499's modern profile and our
// default; kubo-v1-default is what `ipfs add --cid-version 1` does with
// Kubo's default configuration.
var (
	ProfileV1_2025 = Profile{
		Name: "unixfs-v1-2025", CIDVersion: 1, ChunkSize: 1 << 20, FileDAGWidth: 1024, RawLeaves: true,
		HAMTShardingSize: 256 << 10, HAMTSizeEstimation: uio.SizeEstimationBlock, HAMTShardWidth: 256,
	}
	ProfileKuboV1 = Profile{
		Name: "kubo-v1-default", CIDVersion: 1, ChunkSize: 256 << 10, FileDAGWidth: 174, RawLeaves: true,
		HAMTShardingSize: 256 << 10, HAMTSizeEstimation: uio.SizeEstimationLinks, HAMTShardWidth: 256,
	}
	// DefaultProfile is used when none is named.
	DefaultProfile = ProfileV1_2025
)

// Profiles lists the known profiles by name.
var Profiles = []Profile{ProfileV1_2025, ProfileKuboV1}

// ParseProfile returns the profile called name.
func ParseProfile(name string) (Profile, error) {
	for _, p := range Profiles {
		if p.Name == name {
			return p, nil
		}
	}
	names := make([]string, len(Profiles))
	for i, p := range Profiles {
		names[i] = p.Name
	}
	return Profile{}, fmt.Errorf("unknown profile %q (known: %s)", name, strings.Join(names, ", "))
}

// CidBuilder returns the builder of the profile's CIDs (sha2-256).
func (p Profile) CidBuilder() cid.Builder {
	return cid.Prefix{Version: uint64(p.CIDVersion), Codec: cid.DagProtobuf, MhType: mh.SHA2_256, MhLength: -1}
}

// ImportFile imports r as a UnixFS file and returns the root node. Every
// block is added to dag as it is produced (leaves first), so a DAG service
// can disperse leaves while the import goes on.
func ImportFile(ctx context.Context, r io.Reader, p Profile, dag ipld.DAGService) (ipld.Node, error) {
	if w, ok := dag.(*Writer); ok {
		dag = ImportTarget(w) // the chunks go back to the chunker's pool
	}
	params := helpers.DagBuilderParams{
		Dagserv:    dag,
		RawLeaves:  p.RawLeaves,
		Maxlinks:   p.FileDAGWidth,
		CidBuilder: p.CidBuilder(),
	}
	db, err := params.New(chunker.NewSizeSplitter(r, p.ChunkSize))
	if err != nil {
		return nil, err
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	return nd, ctx.Err()
}

// ImportOptions tune ImportPath.
type ImportOptions struct {
	// Hidden includes files and directories whose names start with '.',
	// which Kubo's `add -r` leaves out unless --hidden is given.
	Hidden bool
	// Progress, if set, is called with the bytes of file content read.
	Progress func(n int64)
}

// ImportPath imports a file, a symlink or a directory tree as UnixFS and
// returns its root CID, as `ipfs add -r` does: directories become UnixFS
// directories (HAMT-sharded exactly when the profile says so), symlinks
// become symlink nodes (not followed), and other special files are refused.
func ImportPath(ctx context.Context, path string, p Profile, dag ipld.DAGService, o ImportOptions) (cid.Cid, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return cid.Undef, err
	}
	if !fi.IsDir() && !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0 {
		return cid.Undef, fmt.Errorf("%s: %w (%s)", path, ErrUnsupportedFile, fi.Mode().Type())
	}
	n, err := files.NewSerialFile(path, o.Hidden, fi)
	if err != nil {
		return cid.Undef, err
	}
	defer n.Close()
	nd, err := ImportNode(ctx, n, p, dag, o.Progress)
	if err != nil {
		return cid.Undef, err
	}
	return nd.Cid(), nil
}

// ImportNode imports a boxo files.Node (a local tree, or one received as a
// multipart upload) and returns its root node. progress, if set, gets the
// bytes of file content read.
func ImportNode(ctx context.Context, n files.Node, p Profile, dag ipld.DAGService, progress func(int64)) (ipld.Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch f := n.(type) {
	case *files.Symlink:
		data, err := ft.SymlinkData(f.Target)
		if err != nil {
			return nil, err
		}
		nd := mdag.NodeWithData(data)
		if err := nd.SetCidBuilder(p.CidBuilder()); err != nil {
			return nil, err
		}
		return nd, dag.Add(ctx, nd)
	case files.File:
		var r io.Reader = f
		if progress != nil {
			r = &progressReader{r: f, fn: progress}
		}
		return ImportFile(ctx, r, p, dag)
	case files.Directory:
		return importDir(ctx, f, p, dag, progress)
	}
	return nil, fmt.Errorf("%w (%T)", ErrUnsupportedFile, n)
}

// ErrUnsupportedFile: devices, sockets and pipes cannot be imported.
var ErrUnsupportedFile = errors.New("not a regular file, directory or symlink")

func importDir(ctx context.Context, d files.Directory, p Profile, dag ipld.DAGService, progress func(int64)) (ipld.Node, error) {
	dir, err := uio.NewDirectory(dag,
		uio.WithCidBuilder(p.CidBuilder()),
		uio.WithMaxHAMTFanout(p.HAMTShardWidth),
		uio.WithSizeEstimationMode(p.HAMTSizeEstimation),
		func(d uio.Directory) { d.SetHAMTShardingSize(p.HAMTShardingSize) },
	)
	if err != nil {
		return nil, err
	}
	it := d.Entries()
	for it.Next() {
		child, err := ImportNode(ctx, it.Node(), p, dag, progress)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it.Name(), err)
		}
		if err := dir.AddChild(ctx, it.Name(), child); err != nil {
			return nil, fmt.Errorf("%s: %w", it.Name(), err)
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	nd, err := dir.GetNode()
	if err != nil {
		return nil, err
	}
	return nd, dag.Add(ctx, nd)
}

type progressReader struct {
	r  io.Reader
	fn func(int64)
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	if n > 0 {
		pr.fn(int64(n))
	}
	return n, err
}
