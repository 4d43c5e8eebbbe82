package fungi

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/multiformats/go-varint"
)

// CAR files (https://ipld.io/specs/transport/car/): a reader of CARv1 and
// CARv2 streams that verifies every block against its CID and bounds what
// it allocates, and a CARv1 writer whose output is byte-identical to Kubo's
// `ipfs dag export` of the same DAG.

// ErrBadCAR marks input that is not a valid CAR (truncated, corrupt, a
// block that does not match its CID, a block or header over the limits).
var ErrBadCAR = errors.New("bad CAR")

// ErrBlockTooBig: a block over the reader's size limit (wrapped in an
// ErrBadCAR).
var ErrBlockTooBig = errors.New("block over the size limit")

// tooBig says how a block was too big, and is an ErrBlockTooBig.
type tooBig string

func (e tooBig) Error() string        { return string(e) }
func (e tooBig) Is(target error) bool { return target == ErrBlockTooBig }

// Limits of the CAR reader.
const (
	// SoftBlockLimit is the largest block imported by default, as Kubo's
	// `dag import` (bitswap's limit; --allow-big-block lifts it).
	SoftBlockLimit = 2 << 20
	// MaxCARRoots bounds the roots of one CAR header.
	MaxCARRoots = 4096
	// maxCARHeader bounds a CARv1 header (4096 roots fit many times).
	maxCARHeader = 1 << 20
	// maxCIDLen bounds the CID of a section: verifcid allows digests of
	// at most 128 bytes, plus a few varints of prefix.
	maxCIDLen = 160
)

// CAROptions bound what a CARReader accepts.
type CAROptions struct {
	// MaxBlockSize refuses larger blocks (default SoftBlockLimit; at most
	// MaxBlockSize, what the codec takes).
	MaxBlockSize int
}

// CARReader reads the blocks of a CARv1 or CARv2 stream, forward only,
// holding one block at a time. Every block is verified against its CID
// (go-car's BlockReader hashes each one; it is never run in trusted mode).
// It does not check that the roots are in the file: the whole import knows.
type CARReader struct {
	// Version is 1 or 2; Roots are the header's roots (CARv2: of the
	// inner CARv1).
	Version uint64
	Roots   []cid.Cid

	br   *car.BlockReader
	max  int
	n    int
	last cid.Cid
	done bool
}

// NewCARReader reads the header of a CAR stream.
func NewCARReader(r io.Reader, o CAROptions) (*CARReader, error) {
	max := o.MaxBlockSize
	if max <= 0 {
		max = SoftBlockLimit
	}
	max = min(max, MaxBlockSize)
	if _, ok := r.(io.ByteReader); !ok {
		// go-car reads varints and CIDs a byte at a time
		r = bufio.NewReaderSize(r, 256<<10)
	}
	br, err := car.NewBlockReader(r,
		car.MaxAllowedHeaderSize(maxCARHeader),
		car.MaxAllowedSectionSize(uint64(max+maxCIDLen)),
		car.WithTrustedCAR(false))
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadCAR, carError(err))
	}
	if len(br.Roots) > MaxCARRoots {
		return nil, fmt.Errorf("%w: header lists %d roots (at most %d)", ErrBadCAR, len(br.Roots), MaxCARRoots)
	}
	for _, c := range br.Roots {
		if !c.Defined() {
			return nil, fmt.Errorf("%w: header: an undefined root", ErrBadCAR)
		}
	}
	return &CARReader{Version: br.Version, Roots: br.Roots, br: br, max: max}, nil
}

// Next returns the next block, verified, or io.EOF after the last one.
// Errors wrap ErrBadCAR and say where the stream broke.
func (cr *CARReader) Next() (blocks.Block, error) {
	if cr.done {
		return nil, io.EOF
	}
	blk, err := cr.br.Next()
	if err == io.EOF {
		cr.done = true
		return nil, io.EOF
	}
	if err != nil {
		cr.done = true
		if err.Error() == errSectionTooLarge {
			err = tooBig(fmt.Sprintf("a block over the %s limit", sizeName(cr.max)))
		}
		return nil, cr.fail(carError(err))
	}
	if n := len(blk.RawData()); n > cr.max {
		cr.done = true
		return nil, cr.fail(tooBig(fmt.Sprintf("block %s is %d bytes, over the %s limit", blk.Cid(), n, sizeName(cr.max))))
	}
	cr.n++
	cr.last = blk.Cid()
	return blk, nil
}

// Blocks returns how many blocks Next has returned.
func (cr *CARReader) Blocks() int { return cr.n }

func (cr *CARReader) fail(err error) error {
	if cr.n == 0 {
		return fmt.Errorf("%w: first block: %w", ErrBadCAR, err)
	}
	return fmt.Errorf("%w: after block %d (%s): %w", ErrBadCAR, cr.n, cr.last, err)
}

func sizeName(n int) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// go-car's internal errors, known by their text
const (
	errSectionTooLarge = "invalid section data, length of read beyond allowable maximum"
	errHeaderTooLarge  = "invalid header data, length of read beyond allowable maximum"
)

// carError says in words what go-car's errors mean.
func carError(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("truncated (the stream ends inside a section)")
	case errors.Is(err, varint.ErrOverflow), errors.Is(err, varint.ErrNotMinimal):
		return fmt.Errorf("bad section length: %v", err)
	case strings.HasPrefix(err.Error(), "mismatch in content integrity"):
		return fmt.Errorf("a block does not match its CID (%v)", err)
	case err.Error() == errSectionTooLarge:
		return errors.New("a section longer than the largest block allowed")
	case err.Error() == errHeaderTooLarge:
		return fmt.Errorf("header longer than %d bytes", maxCARHeader)
	}
	return err
}

// BlockGetter returns a block by CID, of any codec; a block it does not
// have is an error.
type BlockGetter interface {
	GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error)
}

// BlockBatchGetter fetches many blocks in parallel: it delivers those it
// finds on the channel, in any order, and closes it when done. WriteCAR
// uses it, when the getter has it, to fetch blocks ahead of the one it
// writes; a block it did not deliver is then asked of GetBlock, for its
// error.
type BlockBatchGetter interface {
	GetBlocks(ctx context.Context, cs []cid.Cid) <-chan blocks.Block
}

// CARWriteOptions tune WriteCAR.
type CARWriteOptions struct {
	// Ahead is how many blocks are fetched ahead of the one being written
	// (default 32: with 1 MiB leaves, 32 MiB in flight).
	Ahead int
	// Progress, if set, is called with the bytes of each section written.
	Progress func(n int64)
}

// WriteCAR writes the DAG under root as a CARv1 with root as its only
// root, byte-identical to Kubo 0.43's `ipfs dag export`: a depth-first,
// pre-order walk visiting each block's links in data model order (Links),
// every distinct CID once (at its first visit), identity CIDs included as
// sections. Blocks are fetched up to Ahead ahead of the walk, so a large
// file streams at the getter's parallel speed; only blocks with links are
// waited for before the walk goes on (raw blocks have none).
//
// It returns the bytes written. A block the getter cannot give fails the
// export with its error, after the sections before it were written.
func WriteCAR(ctx context.Context, w io.Writer, root cid.Cid, bg BlockGetter, o CARWriteOptions) (int64, error) {
	cw := &countWriter{w: w}
	if _, err := cw.Write(carV1Header(root)); err != nil {
		return cw.n, err
	}
	var sec []byte
	err := FetchDAG(ctx, root, bg, o.Ahead, func(blk blocks.Block) error {
		sec = appendSection(sec[:0], blk)
		if _, err := cw.Write(sec); err != nil {
			return err
		}
		if o.Progress != nil {
			o.Progress(int64(len(sec)))
		}
		return nil
	})
	return cw.n, err
}

// FetchDAG visits every block of the DAG under root in WriteCAR's order
// (depth-first, pre-order, links in data model order, each distinct CID
// once, identity CIDs included), fetching up to ahead blocks ahead of the
// walk (default 32) from bg. A block bg cannot give, or an error of visit,
// ends the walk with that error. The blocks are bg's: FetchDAG does not
// check them against their CIDs.
func FetchDAG(ctx context.Context, root cid.Cid, bg BlockGetter, ahead int, visit func(blocks.Block) error) error {
	if ahead <= 0 {
		ahead = 32
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &fetcher{bg: bg, ctx: ctx, pending: map[cid.Cid]*fetch{}}
	f.batch, _ = bg.(BlockBatchGetter)
	defer f.wg.Wait()
	defer cancel()

	type frame struct {
		links []cid.Cid
		i     int
	}
	seen := map[cid.Cid]struct{}{root: {}}
	stack := []frame{{links: []cid.Cid{root}}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.i == len(top.links) {
			stack = stack[:len(stack)-1]
			continue
		}
		c := top.links[top.i]
		top.i++
		if len(stack) > 1 { // the root frame holds the root, already marked
			if _, ok := seen[c]; ok {
				continue
			}
			seen[c] = struct{}{}
		}
		// top up the blocks in flight with the next ones the walk will
		// meet: this one, then the unvisited links on the stack, nearest
		// first
		if !f.has(c) || f.inFlight() <= ahead/2 {
			var next []cid.Cid
			if !f.has(c) && !IsIdentity(c) {
				next = append(next, c)
			}
			for i := len(stack) - 1; i >= 0 && f.inFlight()+len(next) < ahead; i-- {
				fr := stack[i]
				for _, l := range fr.links[fr.i:] {
					if f.inFlight()+len(next) >= ahead {
						break
					}
					if _, ok := seen[l]; ok || IsIdentity(l) || f.has(l) || slicesContains(next, l) {
						continue
					}
					next = append(next, l)
				}
			}
			f.start(next)
		}
		blk, err := f.get(c)
		if err != nil {
			return err
		}
		if err := visit(blk); err != nil {
			return err
		}
		links, err := Links(blk)
		if err != nil {
			return err
		}
		if len(links) > 0 {
			stack = append(stack, frame{links: links})
		}
	}
	return nil
}

func slicesContains(s []cid.Cid, c cid.Cid) bool {
	for _, x := range s {
		if x == c {
			return true
		}
	}
	return false
}

// carV1Header is the CARv1 header naming one root, encoded as go-car
// encodes it: varint length, then the DAG-CBOR map {"roots": [root],
// "version": 1}.
func carV1Header(root cid.Cid) []byte {
	cb := append([]byte{0}, root.Bytes()...) // DAG-CBOR links: 0x00 + CID
	var h []byte
	h = append(h, 0xa2)                          // map(2)
	h = append(h, 0x65, 'r', 'o', 'o', 't', 's') // "roots"
	h = append(h, 0x81, 0xd8, 0x2a)              // array(1), tag(42)
	h = cborBytesHead(h, len(cb))
	h = append(h, cb...)
	h = append(h, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01) // "version": 1
	out := binary.AppendUvarint(nil, uint64(len(h)))
	return append(out, h...)
}

// cborBytesHead appends the CBOR head of a byte string of n bytes.
func cborBytesHead(b []byte, n int) []byte {
	switch {
	case n < 24:
		return append(b, 0x40|byte(n))
	case n < 1<<8:
		return append(b, 0x58, byte(n))
	case n < 1<<16:
		return append(b, 0x59, byte(n>>8), byte(n))
	}
	return append(b, 0x5a, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// appendSection appends a CAR section: varint length, CID, block.
func appendSection(b []byte, blk blocks.Block) []byte {
	cb := blk.Cid().Bytes()
	b = binary.AppendUvarint(b, uint64(len(cb)+len(blk.RawData())))
	b = append(b, cb...)
	return append(b, blk.RawData()...)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (cw *countWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	return n, err
}

// fetcher runs the fetches ahead of an export. Only the export's goroutine
// calls its methods; fetch goroutines only fill in their fetch and close
// done.
type fetcher struct {
	bg    BlockGetter
	batch BlockBatchGetter
	ctx   context.Context
	wg    sync.WaitGroup

	pending map[cid.Cid]*fetch
}

type fetch struct {
	done chan struct{}
	blk  blocks.Block
	err  error
}

func (f *fetcher) inFlight() int      { return len(f.pending) }
func (f *fetcher) has(c cid.Cid) bool { _, ok := f.pending[c]; return ok }
func (f *fetcher) newFetch(c cid.Cid) *fetch {
	ft := &fetch{done: make(chan struct{})}
	f.pending[c] = ft
	return ft
}

var errNotDelivered = errors.New("not delivered")

// start fetches cs in the background.
func (f *fetcher) start(cs []cid.Cid) {
	if len(cs) == 0 {
		return
	}
	mine := make(map[cid.Cid]*fetch, len(cs))
	for _, c := range cs {
		mine[c] = f.newFetch(c)
	}
	if f.batch != nil {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for blk := range f.batch.GetBlocks(f.ctx, cs) {
				if ft, ok := mine[blk.Cid()]; ok {
					ft.blk = blk
					close(ft.done)
					delete(mine, blk.Cid())
				}
			}
			for _, ft := range mine {
				ft.err = errNotDelivered
				close(ft.done)
			}
		}()
		return
	}
	for c, ft := range mine {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			ft.blk, ft.err = f.bg.GetBlock(f.ctx, c)
			close(ft.done)
		}()
	}
}

// get returns block c: fetched ahead, or now.
func (f *fetcher) get(c cid.Cid) (blocks.Block, error) {
	if IsIdentity(c) {
		return IdentityBlock(c)
	}
	ft, ok := f.pending[c]
	if ok {
		delete(f.pending, c)
		select {
		case <-ft.done:
		case <-f.ctx.Done():
			return nil, f.ctx.Err()
		}
		if ft.err == nil && ft.blk.Cid().Equals(c) {
			return ft.blk, nil
		}
		if ft.err != nil && ft.err != errNotDelivered {
			return nil, ft.err
		}
	}
	blk, err := f.bg.GetBlock(f.ctx, c)
	if err != nil {
		return nil, err
	}
	if !blk.Cid().Equals(c) {
		return nil, fmt.Errorf("block getter returned %s for %s", blk.Cid(), c)
	}
	return blk, nil
}
