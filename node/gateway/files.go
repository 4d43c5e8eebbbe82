package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"

	boxogw "github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/path"
	"github.com/ipfs/go-cid"
)

// Files opens UnixFS files for reading through the node's own reader: it
// fetches only the blocks a read needs and prefetches ahead for sequential
// reads, as `fungi cat` does.
type Files interface {
	OpenFile(ctx context.Context, c cid.Cid) (File, error)
	// OpenFileRange opens c to read bytes from..to (inclusive) only.
	OpenFileRange(ctx context.Context, c cid.Cid, from, to int64) (File, error)
}

// File is an open UnixFS file.
type File interface {
	io.ReadSeekCloser
	Size() uint64
}

// firstRead is how much of a file is read before the response starts, so
// that content no holder can deliver is a 504 and never a 200 cut off.
const firstRead = 64 << 10

// backend is boxo's blocks backend with files read through Files.
type backend struct {
	*boxogw.BlocksBackend
	blocks Blocks
	files  Files
}

// Get serves UnixFS files from Files; everything else (directories, raw
// blocks, other codecs, paths inside non-UnixFS DAGs) as boxo does.
func (b *backend) Get(ctx context.Context, p path.ImmutablePath, ranges ...boxogw.ByteRange) (boxogw.ContentPathMetadata, *boxogw.GetResponse, error) {
	md, err := b.BlocksBackend.ResolvePath(ctx, p)
	if err != nil {
		return md, nil, err
	}
	c := md.LastSegment.RootCid()
	if len(md.LastSegmentRemainder) > 0 || c.Prefix().Codec != cid.DagProtobuf {
		return b.BlocksBackend.Get(ctx, p, ranges...)
	}
	if held, err := b.blocks.HasBlock(ctx, c); err != nil || !held {
		// not the node's content (fetched from elsewhere by the exchange):
		// boxo reads it
		return b.BlocksBackend.Get(ctx, p, ranges...)
	}
	blk, err := b.blocks.GetBlock(ctx, c)
	if err != nil {
		return md, nil, statusError(err)
	}
	nd, err := merkledag.DecodeProtobuf(blk.RawData())
	if err != nil {
		return b.BlocksBackend.Get(ctx, p, ranges...)
	}
	fsn, err := ft.FSNodeFromBytes(nd.Data())
	if err != nil || (fsn.Type() != ft.TFile && fsn.Type() != ft.TRaw) {
		return b.BlocksBackend.Get(ctx, p, ranges...)
	}
	if mt := fsn.ModTime(); !mt.IsZero() {
		md.ModTime = mt
	}
	size := int64(fsn.FileSize())
	start, end := int64(0), size-1
	if len(ranges) > 0 {
		ra := ranges[0]
		start = ra.From
		if start < 0 {
			start = max(size+start, 0)
		}
		start = min(start, size)
		if ra.To != nil && *ra.To >= 0 {
			end = min(*ra.To, size-1)
		}
	}
	var f File
	if end < size-1 {
		// a bounded range: fetch its leaves and no others
		f, err = b.files.OpenFileRange(ctx, c, start, end)
	} else {
		f, err = b.files.OpenFile(ctx, c) // to the end: prefetch ahead
	}
	if err != nil {
		return md, nil, statusError(err)
	}
	if start != 0 {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			f.Close()
			return md, nil, statusError(err)
		}
	}
	// the first bytes before the headers: a read that cannot start fails
	// with its status instead of a response cut off
	buf := make([]byte, min(firstRead, max(end-start+1, 1)))
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		f.Close()
		return md, nil, statusError(err)
	}
	body := &prefixed{r: io.MultiReader(bytes.NewReader(buf[:n]), f), c: f}
	return md, boxogw.NewGetResponseFromReader(body, size), nil
}

// prefixed is a file whose first bytes were read ahead.
type prefixed struct {
	r io.Reader
	c io.Closer
}

func (p *prefixed) Read(b []byte) (int, error) { return p.r.Read(b) }
func (p *prefixed) Close() error               { return p.c.Close() }
