package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/fungistor/fungistor/consensus"
	"github.com/fungistor/fungistor/fungi"
)

// The shared file tree (QSFS): directories made with `fungi files mkdir`
// and names linked to content, kept in the replicated state (consensus
// owns the rules; every change is one raft command). This file is what the
// node adds to it: describing content before it is linked, walking paths
// that go on into linked directories, and the UnixFS hash of a tree
// directory (files_hash.go).

// What a link names, recorded with it (consensus.LinkInfo.Type) so that
// listings and the mount answer from memory. Links written by builds
// before the tree had types are linkUnknown: described when read.
const (
	linkUnknown uint8 = iota
	linkFile
	linkDir
	linkSymlink
)

// FilesEntry is one entry of the shared tree as `fungi files ls|stat`
// show it.
type FilesEntry struct {
	Name string `json:"name"`
	// Type is file, directory or symlink.
	Type string `json:"type"`
	// CID is the content linked (or inside linked content); for a
	// directory of the tree only when its hash was asked for.
	CID  string `json:"cid,omitempty"`
	Size uint64 `json:"size"`
	// CumulativeSize is the size of the whole DAG (blocks included).
	CumulativeSize uint64 `json:"cumulative_size,omitempty"`
	// Children counts a directory's entries (directories of the tree).
	Children int `json:"children,omitempty"`
	// Tree: a directory of the tree itself (mkdir), which files commands
	// change; false for linked content, which is immutable.
	Tree bool `json:"tree,omitempty"`
}

// ErrNotInTree marks a path of the shared tree that does not exist.
var ErrNotInTree = errors.New("no such file or directory in the shared tree")

// treePath checks and cleans a path of the shared tree: absolute, and
// "/a/b/" means "/a/b".
func treePath(p string) (string, error) {
	if p == "" || p[0] != '/' {
		return "", badRequest("%q: paths of the shared tree are absolute (start with /)", p)
	}
	if strings.ContainsRune(p, 0) {
		return "", badRequest("%q: a path cannot hold a NUL byte", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", badRequest("%q: .. is not allowed in a path of the shared tree", p)
		}
	}
	clean := path.Clean(p)
	for _, seg := range strings.Split(clean, "/") {
		if len(seg) > 255 {
			return "", badRequest("%q: a name of %d bytes (max 255)", p, len(seg))
		}
	}
	return clean, nil
}

// treeAt is where a path of the tree leads: an entry of the tree, or
// linked content and the path below it.
type treeAt struct {
	entry consensus.TreeEntry
	path  string   // the tree path of entry
	rest  []string // names below entry inside linked content
}

// lookupTree finds p in f's tree, following it into linked content.
func lookupTree(f *consensus.FSM, p string) (treeAt, error) {
	if e, ok := f.TreeStat(p); ok {
		return treeAt{entry: e, path: p}, nil
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	at := ""
	for i, seg := range segs {
		at += "/" + seg
		e, ok := f.TreeStat(at)
		if !ok {
			return treeAt{}, httpError{http.StatusNotFound, fmt.Errorf("%s: %w", p, ErrNotInTree)}
		}
		if !e.Dir {
			return treeAt{entry: e, path: at, rest: segs[i+1:]}, nil
		}
	}
	return treeAt{}, httpError{http.StatusNotFound, fmt.Errorf("%s: %w", p, ErrNotInTree)}
}

// content is the CID a path inside linked content names.
func (t treeAt) content(ctx context.Context, r *Repo) (cid.Cid, error) {
	c, err := cid.Decode(t.entry.Target)
	if err != nil {
		return cid.Undef, fmt.Errorf("%s links a bad CID %q: %v", t.path, t.entry.Target, err)
	}
	if len(t.rest) == 0 {
		return c, nil
	}
	return r.Resolve(ctx, "/ipfs/"+c.String()+"/"+strings.Join(t.rest, "/"))
}

// describeCID says what c is, from its root block alone (inner nodes come
// from manifests; a raw leaf's size from the block index).
func (r *Repo) describeCID(ctx context.Context, c cid.Cid) (fungi.NodeInfo, error) {
	if c.Prefix().Codec == cid.Raw {
		n, err := r.BlockSize(ctx, c)
		if err != nil {
			return fungi.NodeInfo{}, err
		}
		return fungi.NodeInfo{Kind: fungi.NodeRaw, Size: uint64(n), Tsize: uint64(n)}, nil
	}
	if c.Prefix().Codec != cid.DagProtobuf {
		return fungi.NodeInfo{Kind: fungi.NodeOther}, nil
	}
	b, err := r.GetBlock(ctx, c)
	if err != nil {
		return fungi.NodeInfo{}, err
	}
	nd, err := decodeBlock(b)
	if err != nil {
		return fungi.NodeInfo{}, err
	}
	return fungi.DescribeNode(nd)
}

// decodeBlock decodes a dag-pb or raw block.
func decodeBlock(b blocks.Block) (ipld.Node, error) {
	return fungi.DecodeNode(b)
}

// linkInfo is what a link to content records, or an error for content
// the tree cannot hold.
func linkInfo(c cid.Cid, ni fungi.NodeInfo) (consensus.LinkInfo, error) {
	li := consensus.LinkInfo{Size: ni.Size, Tsize: ni.Tsize}
	switch ni.Kind {
	case fungi.NodeFile, fungi.NodeRaw:
		li.Type = linkFile
	case fungi.NodeDir, fungi.NodeHAMT:
		li.Type = linkDir
	case fungi.NodeSymlink:
		li.Type = linkSymlink
	default:
		return li, badRequest("%s is %s, not UnixFS: the shared tree holds files, directories and symlinks", c, codecName(c))
	}
	return li, nil
}

func codecName(c cid.Cid) string {
	switch c.Prefix().Codec {
	case cid.DagCBOR:
		return "dag-cbor"
	case cid.DagJSON:
		return "dag-json"
	case cid.DagProtobuf:
		return "a dag-pb node that is not UnixFS"
	}
	return fmt.Sprintf("codec 0x%x", c.Prefix().Codec)
}

// typeName is how listings name a kind.
func typeName(ni fungi.NodeInfo) string {
	switch ni.Kind {
	case fungi.NodeDir, fungi.NodeHAMT:
		return "directory"
	case fungi.NodeSymlink:
		return "symlink"
	}
	return "file"
}

func linkTypeName(t uint8) string {
	switch t {
	case linkDir:
		return "directory"
	case linkSymlink:
		return "symlink"
	}
	return "file"
}

// treeEntry is a tree entry as listings show it; a link of unknown type
// (written before links had types) is described.
func (r *Repo) treeEntry(ctx context.Context, e consensus.TreeEntry) FilesEntry {
	if e.Dir {
		return FilesEntry{Name: e.Name, Type: "directory", Children: e.Children, Tree: true}
	}
	out := FilesEntry{Name: e.Name, Type: linkTypeName(e.Type), CID: e.Target, Size: e.Size, CumulativeSize: e.Tsize}
	if e.Type == linkUnknown {
		if c, err := cid.Decode(e.Target); err == nil {
			if ni, err := r.describeCID(ctx, c); err == nil {
				out.Type, out.Size, out.CumulativeSize = typeName(ni), ni.Size, ni.Tsize
			}
		}
	}
	return out
}

// treeStatus maps the tree's refusals to HTTP statuses.
func treeStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, consensus.ErrTreeNotFound):
		return httpError{http.StatusNotFound, err}
	case errors.Is(err, consensus.ErrTreeConflict):
		return httpError{http.StatusConflict, err}
	}
	return applyStatus(err)
}
