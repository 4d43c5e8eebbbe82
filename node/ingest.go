package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/exchange"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/consensus"
	"github.com/fungistor/fungistor/fungi"
)

// Ingest: `pin add` of a CID the cluster does not hold fetches its DAG
// from IPFS peers over bitswap (connected peers, and providers found in the
// IPFS DHT when the node is in it), on the node that was asked, and streams
// it as a CAR into an import through the leader: same CIDs, blocks
// verified against them (bitswap computes every block's CID from its
// bytes; the import's CAR reader checks again), big blocks dispersed, one
// commit with the pin. A failed fetch fails the import, which commits
// nothing and deletes what it stored.

// ErrFetchStalled: an ingest got no block for the fetch timeout.
var ErrFetchStalled = errors.New("no IPFS peer delivered a block")

// ingestAhead is how many blocks an ingest fetches ahead of its walk.
const ingestAhead = 64

// IngestProgress is one progress line of a streamed pin add.
type IngestProgress struct {
	Blocks int64 `json:"Progress"` // blocks fetched (Kubo's field name)
	Bytes  int64 `json:"Bytes"`
}

// ingest fetches the DAG under root and stores it, pinned, through the
// leader. progress, if set, is called with the blocks and bytes fetched
// so far (from the fetch's goroutines).
func (a *api) ingest(r *http.Request, root cid.Cid, stall time.Duration, progress func(IngestProgress)) (*DAGImportResult, error) {
	if a.ipfs == nil {
		return nil, httpError{http.StatusNotFound, fmt.Errorf("%s: %w in the cluster", root, ErrNotFound)}
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	g := &peerGetter{local: a.repo, remote: a.ipfs.bitswap.Session(ctx)}
	g.last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	defer func() {
		cancel(nil) // ends the watch
		wg.Wait()
	}()
	wg.Go(func() { g.watch(ctx, cancel, root, stall, progress) })

	o := DAGImportOptions{PinRoots: true, Coding: a.repo.Config.Coding}
	var res *DAGImportResult
	var err, werr error
	leader, fwd, ferr := a.mustForward(r)
	switch {
	case ferr != nil:
		err = ferr
	case fwd:
		// to the leader as a CAR stream, which it checks block by block
		pr, pw := io.Pipe()
		defer pr.Close()
		wg.Go(func() {
			_, werr = fungi.WriteCAR(ctx, pw, root, g, fungi.CARWriteOptions{Ahead: ingestAhead})
			pw.CloseWithError(werr)
		})
		lc := &APIClient{base: "http://" + leader.String() + "/api/v0/", hc: a.fwd}
		opened := false
		res, err = lc.ImportFiles(ctx, []CARInput{{Name: root.String(), Open: func() (io.ReadCloser, error) {
			if opened {
				return nil, errNoResend
			}
			opened = true
			return pr, nil
		}}}, o)
		if err == nil && res.Index > 0 {
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			a.cluster.node().WaitApplied(wctx, res.Index)
			wcancel()
		}
	default:
		// the leader: the blocks go straight into the import (bitswap
		// checked them against their CIDs; no CAR to write and read again)
		res, err = a.repo.ImportFetched(ctx, root, g, o)
	}
	if err != nil {
		cancel(err)
		wg.Wait()
		// the fetch's failure (a stall, a bad block) explains the import's
		if cause := context.Cause(ctx); errors.Is(cause, ErrFetchStalled) {
			return nil, httpError{http.StatusGatewayTimeout, cause}
		}
		if werr != nil && !errors.Is(werr, context.Canceled) && !errors.Is(werr, io.ErrClosedPipe) {
			return nil, httpError{http.StatusBadGateway, fmt.Errorf("fetch %s from IPFS peers: %w", root, werr)}
		}
		return nil, err
	}
	for _, rr := range res.Roots {
		if rr.PinErrorMsg != "" {
			return nil, fmt.Errorf("pin %s: %s", rr.Cid, rr.PinErrorMsg)
		}
	}
	return res, nil
}

// peerGetter gets blocks for an ingest (and for the gateway with
// fetch_remote): those the cluster holds from it, the others over bitswap
// from IPFS peers. It counts what arrived and when the last block did.
type peerGetter struct {
	local  *Repo
	remote exchange.Fetcher

	last          atomic.Int64 // unix nanos of the last block
	count, nbytes atomic.Int64
}

func (g *peerGetter) got(blk blocks.Block) {
	g.last.Store(time.Now().UnixNano())
	g.count.Add(1)
	g.nbytes.Add(int64(len(blk.RawData())))
}

func (g *peerGetter) held(ctx context.Context, c cid.Cid) bool {
	ok, err := g.local.HasBlock(ctx, c)
	return err == nil && ok
}

func (g *peerGetter) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if g.held(ctx, c) {
		if blk, err := g.local.GetBlock(ctx, c); err == nil {
			g.got(blk)
			return blk, nil
		}
	}
	blk, err := g.remote.GetBlock(ctx, c)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return nil, cause
		}
		return nil, err
	}
	g.got(blk)
	return blk, nil
}

func (g *peerGetter) GetBlocks(ctx context.Context, cs []cid.Cid) <-chan blocks.Block {
	var local, remote []cid.Cid
	for _, c := range cs {
		if g.held(ctx, c) {
			local = append(local, c)
		} else {
			remote = append(remote, c)
		}
	}
	out := make(chan blocks.Block)
	var wg sync.WaitGroup
	send := func(ch <-chan blocks.Block) {
		for blk := range ch {
			g.got(blk)
			select {
			case out <- blk:
			case <-ctx.Done():
			}
		}
	}
	if len(local) > 0 {
		ch := g.local.GetBlocks(ctx, local)
		wg.Go(func() { send(ch) })
	}
	if len(remote) > 0 {
		if ch, err := g.remote.GetBlocks(ctx, remote); err == nil {
			wg.Go(func() { send(ch) })
		}
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out
}

// watch reports progress every 250 ms and cancels the ingest with
// ErrFetchStalled when no block arrived for stall.
func (g *peerGetter) watch(ctx context.Context, cancel context.CancelCauseFunc, root cid.Cid, stall time.Duration, progress func(IngestProgress)) {
	ticks(ctx, 250*time.Millisecond, func() bool {
		if progress != nil {
			progress(IngestProgress{Blocks: g.count.Load(), Bytes: g.nbytes.Load()})
		}
		if time.Since(time.Unix(0, g.last.Load())) <= stall {
			return true
		}
		cancel(fmt.Errorf("fetch %s: %w for %s (%d blocks arrived): no connected peer has the rest, nor any provider in the IPFS DHT (ipfs.dht); the cluster keeps nothing of it",
			root, ErrFetchStalled, stall, g.count.Load()))
		return false
	})
}

// pinIngest answers a pin add that names CIDs the cluster lacks: each is
// ingested in turn (its own commit, pinned), then the pins of the others
// (cmds) are committed, and the answer is the PinResult. With
// progress=true the answer streams IngestProgress lines first.
func (a *api) pinIngest(w http.ResponseWriter, r *http.Request, missing []cid.Cid, cmds []consensus.Command, out *PinResult) error {
	stall, err := a.repo.Config.IPFS.fetchTimeout()
	if err != nil {
		return err
	}
	if s := r.URL.Query().Get("timeout"); s != "" {
		if stall, err = time.ParseDuration(s); err != nil || stall <= 0 {
			return badRequest("timeout=%q: want a positive Go duration such as \"2m\"", s)
		}
	}
	stream, err := boolParam(r, "progress", false)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var enc *json.Encoder
	flush := func() {}
	if stream {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Trailer", "X-Stream-Error")
		w.WriteHeader(http.StatusOK)
		enc = json.NewEncoder(w)
		if f, ok := w.(http.Flusher); ok {
			flush = f.Flush
		}
	}
	var done IngestProgress
	for _, c := range missing {
		var report func(IngestProgress)
		if stream {
			base := done
			report = func(p IngestProgress) {
				mu.Lock()
				defer mu.Unlock()
				enc.Encode(IngestProgress{Blocks: base.Blocks + p.Blocks, Bytes: base.Bytes + p.Bytes})
				flush()
			}
		}
		res, err := a.ingest(r, c, stall, report)
		if err != nil {
			a.log.Warn("api: pin add: ingest failed", "cid", c.String(), "err", err)
			if stream {
				w.Header().Set("X-Stream-Error", err.Error())
				return nil
			}
			return err
		}
		done.Blocks += int64(res.Stats.BlockCount)
		done.Bytes += int64(res.Stats.BlockBytesCount)
		out.Index = max(out.Index, res.Index)
		a.added.Add(float64(res.Stats.BlockBytesCount))
	}
	idx, err := a.applyPins(r.Context(), cmds)
	if err != nil {
		if stream {
			w.Header().Set("X-Stream-Error", err.Error())
			return nil
		}
		return err
	}
	out.Index = max(out.Index, idx)
	if !stream {
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	return enc.Encode(out)
}
