package fungi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// DefaultStreamWindow is how many leaves a FileStream fetches ahead.
const DefaultStreamWindow = 8

// FileStream writes a UnixFS file out in order, for a reader that wants
// the bytes once (cat, a pipe): it fetches up to Window leaves ahead in
// parallel, each into a pooled buffer that goes back to the pool once
// written, and writes each leaf's bytes straight from the buffer it was
// decoded in. Nothing is cached and nothing is copied between the decoder
// and the writer; a leaf in the reader's block cache is used from there.
// Memory is bounded by Window leaves.
type FileStream struct {
	// Window is how many leaves are fetched ahead (0: DefaultStreamWindow).
	Window int

	dag  ipld.NodeGetter
	segs []segment
	size int64
}

// NewFileStream walks the inner nodes of the UnixFS file nd (through dag,
// which serves them from manifests) into its table of leaves, as
// NewReaderAt does; see there for the files it reads and the checks.
func NewFileStream(ctx context.Context, dag ipld.NodeGetter, nd ipld.Node) (*FileStream, error) {
	segs, size, err := fileSegments(ctx, dag, nd)
	if err != nil {
		return nil, err
	}
	return &FileStream{dag: dag, segs: segs, size: size}, nil
}

// Size is the file's size in bytes.
func (s *FileStream) Size() int64 { return s.size }

// leafBufGetter fetches a leaf for one use; objectDAG is one.
type leafBufGetter interface {
	leafBuf(ctx context.Context, c cid.Cid) (Buf, error)
}

// leafBuf fetches a leaf of the object for a stream: inline from the
// manifest, else through the reader into a pooled buffer.
func (d *objectDAG) leafBuf(ctx context.Context, c cid.Cid) (Buf, error) {
	if blk, ok := d.m.Nodes[c]; ok {
		return Buf{B: blk.RawData()}, nil
	}
	if c.Prefix().Codec != cid.Raw {
		return Buf{}, ipld.ErrNotFound{Cid: c}
	}
	b, err := d.r.BlockBuf(ctx, c)
	if err != nil {
		var ue *UnavailableError
		if errors.As(err, &ue) {
			ue.Root, ue.Index = d.m.Root, d.leafIndex(c)
		}
		return Buf{}, err
	}
	return b, nil
}

// leaf fetches segment sg's data.
func (s *FileStream) leaf(ctx context.Context, sg *segment) (Buf, error) {
	var b Buf
	if g, ok := s.dag.(leafBufGetter); ok {
		var err error
		if b, err = g.leafBuf(ctx, sg.cid); err != nil {
			return Buf{}, err
		}
	} else {
		nd, err := s.dag.Get(ctx, sg.cid)
		if err != nil {
			return Buf{}, err
		}
		b = Buf{B: nd.RawData()}
	}
	if sg.pb {
		data, err := pbLeafData(sg.cid, b.B)
		if err != nil {
			b.Release()
			return Buf{}, err
		}
		b.B = data // within the same buffer, or a copy of it
	}
	if int64(len(b.B)) != sg.size {
		b.Release()
		return Buf{}, fmt.Errorf("leaf %s: %w: %d bytes, its parent says %d", sg.cid, ErrBadFileDAG, len(b.B), sg.size)
	}
	return b, nil
}

type streamSlot struct {
	done chan struct{}
	buf  Buf
	err  error
}

// WriteRange writes the file's bytes [off, off+n) (n < 0: to the end) to
// w, and returns how many it wrote. A leaf that cannot be had stops it
// with that leaf's error after the bytes before it: never wrong bytes. w
// receives each leaf's bytes in one Write and must not keep the slice.
func (s *FileStream) WriteRange(ctx context.Context, w io.Writer, off, n int64) (int64, error) {
	if off < 0 || off > s.size {
		return 0, fmt.Errorf("offset %d outside the file (%d bytes)", off, s.size)
	}
	end := s.size
	if n >= 0 && off+n < end {
		end = off + n
	}
	if off == end {
		return 0, nil
	}
	first := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].off+s.segs[i].size > off })
	last := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].off+s.segs[i].size > end-1 })
	window := s.Window
	if window <= 0 {
		window = DefaultStreamWindow
	}
	ctx, cancel := context.WithCancel(ctx)
	slots := make([]*streamSlot, last-first+1)
	launched := first
	launch := func() {
		sg := &s.segs[launched]
		sl := &streamSlot{done: make(chan struct{})}
		slots[launched-first] = sl
		launched++
		if sg.inline != nil {
			sl.buf = Buf{B: sg.inline}
			close(sl.done)
			return
		}
		go func() {
			sl.buf, sl.err = s.leaf(ctx, sg)
			close(sl.done)
		}()
	}
	defer func() {
		// stop what is still in flight; its buffers go back as it ends
		cancel()
		for _, sl := range slots {
			if sl == nil {
				continue
			}
			go func() {
				<-sl.done
				sl.buf.Release()
			}()
		}
	}()
	var written int64
	for i := first; i <= last; i++ {
		for launched <= last && launched-i < window {
			launch()
		}
		sl := slots[i-first]
		select {
		case <-sl.done:
		case <-ctx.Done():
			return written, ctx.Err()
		}
		slots[i-first] = nil
		if sl.err != nil {
			return written, sl.err
		}
		sg := &s.segs[i]
		from := max(off, sg.off) - sg.off
		to := min(end, sg.off+sg.size) - sg.off
		nw, err := w.Write(sl.buf.B[from:to])
		sl.buf.Release()
		written += int64(nw)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}
