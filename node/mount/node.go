package mount

import (
	"context"
	"time"

	"github.com/ipfs/go-cid"
)

// Kind is what a name is: a file, a directory or a symlink. The zero Kind
// means "not described yet" (see [Node.TreeStat]).
type Kind uint8

const (
	File Kind = iota + 1
	Dir
	Symlink
)

func (k Kind) String() string {
	switch k {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	}
	return "unknown"
}

// Entry describes one name.
type Entry struct {
	Name   string
	Kind   Kind
	Size   uint64    // File: bytes; Symlink: len(Target)
	Mode   uint32    // permission bits from UnixFS metadata; 0 = unknown (use defaults)
	Mtime  time.Time // zero = unknown (use the mount's start time)
	CID    cid.Cid   // the content (cid.Undef for a directory of the shared tree itself)
	Target string    // Symlink: the link text
}

// Node is what the mount needs from the node. Tree methods answer from
// memory (they are called for every Lookup/readdir, including READDIRPLUS);
// content methods may go to the network.
//
// All methods are called from many goroutines at once (one per kernel
// request); they must not wait for the Mount (Changed and ChangedAll never
// block). The contexts are the kernel requests': cancelled when the
// calling process is interrupted. Content is immutable: a CID directory's
// List is kept for the inode's life, and the kernel keeps what Stat said
// of a name under a CID for an hour.
type Node interface {
	// TreeStat returns the shared tree's entry at p ("/" is the root dir).
	// An entry whose Kind is 0 has a CID the node has not described yet: the mount calls Stat(ctx, e.CID) for it.
	TreeStat(p string) (Entry, error) // missing: an error matching fs.ErrNotExist
	// TreeList returns the children of a tree directory, best sorted by
	// name (readdir lists them so; the mount sorts a copy otherwise).
	TreeList(p string) ([]Entry, error)
	Stat(ctx context.Context, c cid.Cid) (Entry, error)   // what a CID is (root block only); unknown CID: fs.ErrNotExist; unreachable: any other error
	List(ctx context.Context, c cid.Cid) ([]Entry, error) // a UnixFS directory (basic or HAMT-sharded), entries with Kind and Size
	Open(ctx context.Context, c cid.Cid) (Reader, error)  // a UnixFS file for ranged reads
}

// Reader reads an immutable file by byte range; safe for concurrent ReadAt.
// The node's Reader fetches only the blocks a read touches and prefetches
// ahead for sequential reads.
//
// The mount opens one Reader per open file description and closes it when
// the kernel releases that description.
type Reader interface {
	ReadAt(p []byte, off int64) (int, error) // io.ReaderAt semantics (io.EOF at the end)
	Size() uint64
	Close() error
}
