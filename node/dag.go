package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/fungi"
)

// DAGs of any codec and CAR files (`fungi dag import|export`, `fungi
// block get|stat`): an import stores every block of its CAR files like an
// add (big blocks dispersed as fragments, small ones and nodes with links
// in the manifests) and commits all its manifests at once; an export walks
// the node's blocks (Repo.GetBlock) as Kubo's `dag export` does.

// DAGs is what the dag and block commands need (part of Content): a local
// repo opened directly, or the daemon that holds it, through its API.
type DAGs interface {
	// ImportFiles imports the CAR files as one import: all their blocks
	// are stored, or (after an error) none is visible.
	ImportFiles(ctx context.Context, cars []CARInput, o DAGImportOptions) (*DAGImportResult, error)
	// ExportCAR writes the DAG under c as a CARv1 (Kubo's dag export).
	ExportCAR(ctx context.Context, c cid.Cid, w io.Writer, progress func(int64)) error
	// GetBlock returns one block, verified against its CID.
	GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error)
	// BlockSize returns the size of one block.
	BlockSize(ctx context.Context, c cid.Cid) (int, error)
	Close() error
}

var (
	_ DAGs = (*Repo)(nil)
	_ DAGs = (*APIClient)(nil)
)

// CARInput is one CAR file of an import. Open may be called again when
// an import is sent again (a client retrying after a leader change); an
// input that cannot be read twice (stdin) fails the second Open.
type CARInput struct {
	Name string
	Open func() (io.ReadCloser, error)
}

// errNoResend: an import's input cannot be read a second time (stdin), so
// the import cannot be sent again.
var errNoResend = errors.New("standard input cannot be sent again")

// FileCAR is the CAR file at path, or standard input for "-".
func FileCAR(path string) CARInput {
	if path == "-" {
		opened := false
		return CARInput{Name: "stdin", Open: func() (io.ReadCloser, error) {
			if opened {
				return nil, errNoResend
			}
			opened = true
			return io.NopCloser(os.Stdin), nil
		}}
	}
	return CARInput{Name: path, Open: func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, unwrapPathErr(err))
		}
		return f, nil
	}}
}

// DAGImportOptions configure an import.
type DAGImportOptions struct {
	// PinRoots pins the roots of the CAR headers (Kubo's default): a root
	// whose DAG is not complete in the cluster is not pinned, and its
	// PinErrorMsg says why.
	PinRoots bool
	// Coding of the dispersed blocks (default: the config's).
	Coding string
	// AllowBigBlock raises the block size limit from 2 MiB (Kubo's) to
	// 4 MiB (the codec's).
	AllowBigBlock bool
	// Progress, if set, is called with the bytes of CAR read.
	Progress func(n int64)
}

// DAGRoot is one root of an import as Kubo's dag import reports it; Cid
// encodes as {"/": "..."}.
type DAGRoot struct {
	Cid         cid.Cid
	PinErrorMsg string
}

// DAGImportStats are Kubo's import statistics: blocks read, repeats
// included.
type DAGImportStats struct {
	BlockCount      uint64
	BlockBytesCount uint64
}

// DAGImportResult is what an import stored.
type DAGImportResult struct {
	// Roots are the roots of the CAR headers, in order, with their pin
	// outcome (only with PinRoots, as Kubo).
	Roots []DAGRoot
	Stats DAGImportStats
	// Manifests is how many manifests the import committed (0: every
	// block was already stored); Stored the fragment bytes it wrote.
	Manifests int
	Stored    uint64
	// Index is the raft log index of the commit (a node that forwarded
	// the import waits for it before answering).
	Index uint64
}

// ImportFiles implements DAGs for a local repo.
func (r *Repo) ImportFiles(ctx context.Context, cars []CARInput, o DAGImportOptions) (*DAGImportResult, error) {
	i := 0
	var open io.Closer
	defer func() {
		if open != nil {
			open.Close()
		}
	}()
	return r.ImportCARs(ctx, func() (io.Reader, error) {
		if open != nil {
			open.Close()
			open = nil
		}
		if i == len(cars) {
			return nil, io.EOF
		}
		rc, err := cars[i].Open()
		i++
		if err != nil {
			return nil, err
		}
		open = rc
		return rc, nil
	}, o)
}

// ImportCAR imports one CAR stream (ImportCARs).
func (r *Repo) ImportCAR(ctx context.Context, car io.Reader, o DAGImportOptions) (*DAGImportResult, error) {
	done := false
	return r.ImportCARs(ctx, func() (io.Reader, error) {
		if done {
			return nil, io.EOF
		}
		done = true
		return car, nil
	}, o)
}

// ImportCARs stores every block of the CAR streams next returns (io.EOF
// after the last) as one import, through the leader when the repo is part
// of a cluster (the API forwards imports to it, as adds). Blocks are read
// and verified as they stream: big ones are dispersed at once, so a CAR of
// any size needs little memory; blocks the cluster already holds are not
// stored again (imports are idempotent). All the import's manifests are
// committed in one raft write, with the roots' pins; an import that fails
// commits nothing and deletes the fragments it stored that nothing else
// uses. Bad input (a corrupt, truncated or oversized CAR, a block that does
// not match its CID, a root in no file) is an error matching
// fungi.ErrBadCAR or another fungi sentinel, as a 400 on the API.
func (r *Repo) ImportCARs(ctx context.Context, next func() (io.Reader, error), o DAGImportOptions) (*DAGImportResult, error) {
	return r.importDAG(ctx, o, func(d *fungi.DAGImport) error { return readCARs(ctx, d, next, o) })
}

// ImportFetched stores the DAG under root as an import (as ImportCARs),
// its blocks fetched from bg in the order of a CAR export. bg's blocks
// must have been checked against their CIDs (a bitswap session's are).
func (r *Repo) ImportFetched(ctx context.Context, root cid.Cid, bg fungi.BlockGetter, o DAGImportOptions) (*DAGImportResult, error) {
	return r.importDAG(ctx, o, func(d *fungi.DAGImport) error {
		d.AddRoots([]cid.Cid{root})
		return fungi.FetchDAG(ctx, root, bg, ingestAhead, func(blk blocks.Block) error { return d.Add(ctx, blk) })
	})
}

// importDAG stores the blocks feed gives d as one import (ImportCARs).
func (r *Repo) importDAG(ctx context.Context, o DAGImportOptions, feed func(d *fungi.DAGImport) error) (*DAGImportResult, error) {
	coding, err := fungi.ParseCoding(or(o.Coding, r.Config.Coding))
	if err != nil {
		return nil, httpError{http.StatusBadRequest, err}
	}
	codec, err := r.codec(coding)
	if err != nil {
		return nil, err
	}
	// in no cluster yet: it could not commit (and its blocks would be
	// looked up in vain), so fail before reading anything
	if r.cluster != nil {
		if err := r.cluster.cluster.ready(); err != nil {
			return nil, err
		}
	}
	w, err := r.disperse(ctx, codec, coding)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	held := func(c cid.Cid) bool {
		ok, err := r.HasBlock(ctx, c)
		return err == nil && ok
	}
	d := fungi.NewDAGImport(w.Writer, held)
	res, err := r.commitImport(ctx, d, feed, o)
	if err != nil {
		w.Wait() // puts still in flight land before the clean-up
	}
	if err := w.end(ctx, err); err != nil {
		return nil, err
	}
	return res, nil
}

// badInput marks an import's error as the client's (400).
func badInput(err error) error {
	for _, bad := range []error{fungi.ErrBadCAR, fungi.ErrRootNotInCAR, fungi.ErrUnsupportedCodec,
		fungi.ErrBadCID, fungi.ErrImportTooLarge} {
		if errors.Is(err, bad) {
			return httpError{http.StatusBadRequest, err}
		}
	}
	return err
}

// readCARs gives d the roots and blocks of the CAR streams next returns.
func readCARs(ctx context.Context, d *fungi.DAGImport, next func() (io.Reader, error), o DAGImportOptions) error {
	limit := 0
	if o.AllowBigBlock {
		limit = fungi.MaxBlockSize
	}
	for n := 1; ; n++ {
		rd, err := next()
		if err == io.EOF {
			if n == 1 {
				return httpError{http.StatusBadRequest, errors.New("no CAR file to import")}
			}
			return nil
		}
		if err != nil {
			return err
		}
		if o.Progress != nil {
			rd = &progressReader{r: rd, fn: o.Progress}
		}
		cr, err := fungi.NewCARReader(rd, fungi.CAROptions{MaxBlockSize: limit})
		if err != nil {
			return badInput(carFileError(n, err))
		}
		d.AddRoots(cr.Roots)
		for {
			blk, err := cr.Next()
			if err == io.EOF {
				break
			}
			if err == nil {
				err = d.Add(ctx, blk)
			}
			if err != nil {
				if !o.AllowBigBlock && errors.Is(err, fungi.ErrBlockTooBig) {
					err = fmt.Errorf("%w (allow-big-block raises the limit to 4 MiB)", err)
				}
				return badInput(carFileError(n, err))
			}
		}
	}
}

// commitImport runs feed, then commits what d made: manifests and pins in
// one raft write (ImportCARs).
func (r *Repo) commitImport(ctx context.Context, d *fungi.DAGImport, feed func(d *fungi.DAGImport) error, o DAGImportOptions) (*DAGImportResult, error) {
	if err := feed(d); err != nil {
		return nil, err
	}
	if err := d.Finish(); err != nil {
		return nil, badInput(err)
	}
	if err := r.frags.Sync(); err != nil {
		return nil, err
	}
	// what to commit is decided and committed under the lock other
	// imports' commits take too (and clean-ups): two imports of the same
	// new root never write its manifest one over the other
	if r.cluster != nil {
		r.cluster.mu.Lock()
		defer r.cluster.mu.Unlock()
	}
	ms, err := d.Manifests()
	if err != nil {
		return nil, badInput(err)
	}
	res := &DAGImportResult{Stats: DAGImportStats{BlockCount: d.Count, BlockBytesCount: d.Bytes}, Manifests: len(ms)}
	for _, m := range ms {
		res.Stored += m.Stored
	}
	var pins []cid.Cid
	if o.PinRoots {
		for _, root := range d.Roots() {
			missing, err := r.dagMissing(ctx, root, ms, d.LinksOf)
			if err != nil {
				return nil, err
			}
			rr := DAGRoot{Cid: root}
			if missing.Defined() {
				rr.PinErrorMsg = fmt.Sprintf("the DAG is incomplete: block %s is in neither the CAR nor the cluster", missing)
			} else {
				pins = append(pins, root)
			}
			res.Roots = append(res.Roots, rr)
		}
	}
	if r.cluster == nil {
		for _, m := range ms {
			if err := r.putManifest(ctx, m); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	if res.Index, err = r.cluster.cluster.commitManifests(ctx, ms, pins); err != nil {
		return nil, fmt.Errorf("commit the import through the cluster: %w", err)
	}
	// a copy in the repo too, as an add keeps (read with the daemon
	// stopped)
	for _, m := range ms {
		if err := r.putManifest(ctx, m); err != nil {
			return nil, err
		}
	}
	cc := r.cluster
	go func() {
		ctx, cancel := context.WithTimeout(cc.cluster.ctx, 30*time.Second)
		defer cancel()
		for _, root := range d.Roots() {
			if err := cc.host.Provide(ctx, root); err != nil {
				cc.log.Debug("announce in the DHT", "root", root.String(), "err", err)
			}
		}
	}()
	return res, nil
}

func carFileError(n int, err error) error {
	if n == 1 {
		return err
	}
	return fmt.Errorf("CAR file %d: %w", n, err)
}

// dagMissing walks the DAG under root through the import's new manifests
// (batch, whose blocks' links linksOf knows) and the blocks the node holds,
// and returns a block that neither holds (cid.Undef: the DAG is complete).
// A self-contained manifest ends the walk below any of its blocks; a
// partial one's root continues with what it lists as missing.
func (r *Repo) dagMissing(ctx context.Context, root cid.Cid, batch []*fungi.Manifest, linksOf func(cid.Cid) ([]cid.Cid, bool)) (cid.Cid, error) {
	holder := map[cid.Cid]*fungi.Manifest{}
	for _, m := range batch {
		for c := range m.Nodes {
			holder[c] = m
		}
		for _, d := range m.Dispersed {
			holder[d.CID] = m
		}
	}
	byRoot := map[cid.Cid]*fungi.Manifest{}
	find := func(c cid.Cid) (*fungi.Manifest, error) {
		if m := holder[c]; m != nil {
			return m, nil
		}
		bi, err := r.blockSource().lookup(ctx, c)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if m := byRoot[bi.Root]; m != nil {
			return m, nil
		}
		m, err := r.manifest(ctx, bi.Root)
		if err != nil {
			return nil, err
		}
		byRoot[bi.Root] = m
		return m, nil
	}
	expanded := map[*fungi.Manifest]bool{}
	missing := cid.Undef
	err := fungi.WalkDAG(root, linksOf, func(c cid.Cid) ([]cid.Cid, error) {
		m, err := find(c)
		if err != nil {
			return nil, err
		}
		switch {
		case m == nil:
			missing = c
			return nil, fungi.ErrStopWalk
		case m.SelfContained():
			return nil, nil
		case c.Equals(m.Root):
			// everything in m is reachable from its root: the rest of
			// the DAG is what m lists as missing
			if !expanded[m] {
				expanded[m] = true
				return m.Missing, nil
			}
			return nil, nil
		}
		links, ok := linksOf(c)
		if !ok {
			if blk, inline := m.Nodes[c]; inline {
				if links, err = fungi.Links(blk); err != nil {
					return nil, err
				}
			} else if c.Prefix().Codec != cid.Raw {
				blk, err := r.GetBlock(ctx, c)
				if err != nil {
					return nil, err
				}
				if links, err = fungi.Links(blk); err != nil {
					return nil, err
				}
			}
		}
		return links, nil
	})
	return missing, err
}

// ExportCAR implements DAGs: the DAG under c as a CARv1, byte-identical to
// Kubo's `ipfs dag export`, its blocks fetched ahead in parallel.
func (r *Repo) ExportCAR(ctx context.Context, c cid.Cid, w io.Writer, progress func(int64)) error {
	root, err := r.GetBlock(ctx, c)
	if err != nil {
		return err
	}
	_, err = r.exportCAR(ctx, root, w, progress)
	return err
}

// exportCAR writes the CAR of the DAG under root (fetched already).
func (r *Repo) exportCAR(ctx context.Context, root blocks.Block, w io.Writer, progress func(int64)) (int64, error) {
	return fungi.WriteCAR(ctx, w, root.Cid(), firstBlock{r, root}, fungi.CARWriteOptions{Progress: progress})
}

// firstBlock is the node's blocks with one of them at hand.
type firstBlock struct {
	r     *Repo
	first blocks.Block
}

func (f firstBlock) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if c.Equals(f.first.Cid()) {
		return f.first, nil
	}
	return f.r.GetBlock(ctx, c)
}

func (f firstBlock) GetBlocks(ctx context.Context, cs []cid.Cid) <-chan blocks.Block {
	return f.r.GetBlocks(ctx, cs)
}

// BlockStatOutput is a block's CID and size, as Kubo's block stat.
type BlockStatOutput struct {
	Key  string
	Size int
}

// progressReader reports the bytes read through it.
type progressReader struct {
	r  io.Reader
	fn func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.fn(int64(n))
	}
	return n, err
}
