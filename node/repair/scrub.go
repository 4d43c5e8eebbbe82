package repair

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/fungistor/fungistor/fungi"
)

// ScrubStatus is the scrubber's progress and findings on this node.
type ScrubStatus struct {
	// Rate is the cap in bytes per second (0: off).
	Rate    int64 `json:"rate"`
	Running bool  `json:"running"`
	// Scanned and Bytes are this pass's progress; Total the fragments
	// stored when it began.
	Scanned int   `json:"scanned"`
	Bytes   int64 `json:"bytes"`
	Total   int   `json:"total"`
	Passes  int64 `json:"passes"`
	// LastPass is when the last full pass ended, and what it found.
	LastPass      time.Time `json:"last_pass,omitzero"`
	LastCorrupt   int       `json:"last_corrupt"`
	LastMissing   int       `json:"last_missing"`
	LastDuration  float64   `json:"last_duration_s"`
	Corrupt       int64     `json:"corrupt"` // found since start
	Missing       int64     `json:"missing"`
	BytesVerified int64     `json:"bytes_verified"` // since start
}

// scrubber re-reads and verifies this node's fragments, continuously, at a
// capped rate: the store's checksum and the fragment's tag. A bad copy is
// deleted and reported; a fragment this node should hold but lacks is
// reported. Fragments no object places here are the orphan collector's.
type scrubber struct {
	s   *Service
	lim *limiter

	mu sync.Mutex
	st ScrubStatus

	expMu sync.Mutex
	exp   map[string]ref // what this node should hold, at version expAt
	expAt uint64
}

func newScrubber(s *Service, bps int64) *scrubber {
	return &scrubber{s: s, lim: newLimiter(bps), st: ScrubStatus{Rate: bps}}
}

func (sc *scrubber) status() ScrubStatus {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st := sc.st
	st.Rate = sc.lim.rate()
	return st
}

func (sc *scrubber) run(ctx context.Context) {
	if sc.s.node.Local() == nil || sc.lim.rate() <= 0 {
		return
	}
	for ctx.Err() == nil {
		start := time.Now()
		if err := sc.pass(ctx); err != nil && ctx.Err() == nil {
			sc.s.log.Debug("scrub", "err", err)
		}
		// the next pass begins ScrubEvery after this one began (a pass
		// longer than that is followed at once: the rate is the limit)
		wait := max(sc.s.cfg.ScrubEvery-time.Since(start), time.Second)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// ref is what a fragment key stands for.
type ref struct {
	block   fungi.BlockRepair
	index   int
	pending bool // moved here by an epoch not done: may not be written yet
}

// expected maps every fragment key this node should hold to its block,
// built again only when the replicated state moved.
func (sc *scrubber) expected(ctx context.Context) (out map[string]ref, err error) {
	sc.expMu.Lock()
	defer sc.expMu.Unlock()
	objs, err := sc.s.objects(ctx)
	if err != nil {
		return nil, err
	}
	at := sc.s.objsVersion()
	if sc.exp != nil && sc.expAt == at {
		return sc.exp, nil
	}
	defer func() { sc.exp, sc.expAt = out, at }()
	self := sc.s.node.Self()
	out = map[string]ref{}
	for _, o := range objs {
		leaves, err := o.Manifest.LeafCIDs()
		if err != nil {
			return nil, err
		}
		c := o.Manifest.Coding
		for _, leaf := range leaves {
			holders, kept := o.Layout.Holders(leaf, c.N)
			for i, h := range holders {
				mine := h == self
				pending := mine && kept != nil && kept[i] != nil
				if !mine && kept != nil {
					for _, k := range kept[i] {
						mine = mine || k == self
					}
					pending = true // a kept copy: not to be reported missing
				}
				if mine {
					key := fungi.FragmentKey(leaf, c, i)
					out[string(key)] = ref{block: fungi.BlockRepair{Root: o.Root, Block: leaf, Coding: c}, index: i, pending: pending}
				}
			}
		}
	}
	return out, nil
}

// Scrub runs one full pass now (tests, `fungi check` on this node).
func (s *Service) Scrub(ctx context.Context) (ScrubStatus, error) {
	if s.node.Local() == nil {
		return ScrubStatus{}, errors.New("this node stores no fragments")
	}
	err := s.scr.pass(ctx)
	return s.scr.status(), err
}

func (sc *scrubber) pass(ctx context.Context) error {
	local := sc.s.node.Local()
	exp, err := sc.expected(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	sc.mu.Lock()
	sc.st.Running, sc.st.Scanned, sc.st.Bytes, sc.st.Total = true, 0, 0, len(exp)
	sc.mu.Unlock()
	defer func() {
		sc.mu.Lock()
		sc.st.Running = false
		sc.mu.Unlock()
	}()
	seen := make(map[string]bool, len(exp))
	var bad []Damage
	corrupt, missing := 0, 0
	var cursor []byte
	for {
		items, next, err := local.Scan(cursor, 256)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			r, ok := exp[string(it.Key)]
			if !ok {
				continue
			}
			seen[string(it.Key)] = true
			if err := sc.lim.wait(ctx, int64(it.Size)); err != nil {
				return err
			}
			data, err := local.Get(ctx, it.Key)
			if errors.Is(err, fungi.ErrFragmentNotFound) {
				seen[string(it.Key)] = false // gone meanwhile: checked below
				continue
			}
			if err != nil && !errors.Is(err, ErrCorrupt) {
				return err // an I/O error, not a bad copy
			}
			if err == nil {
				var codec *fungi.Codec
				if codec, err = sc.s.node.Codec(r.block.Coding); err != nil {
					return err
				}
				err = codec.Verify(r.block.Block, r.index, data)
			}
			sc.mu.Lock()
			sc.st.Scanned++
			sc.st.Bytes += int64(it.Size)
			sc.st.BytesVerified += int64(it.Size)
			sc.mu.Unlock()
			if err == nil {
				continue
			}
			corrupt++
			sc.s.log.Warn("scrub: a bad fragment copy is deleted and reported for repair", "block", r.block.Block.String(), "index", r.index, "err", err)
			if derr := local.Delete(ctx, it.Key); derr != nil {
				return derr
			}
			bad = append(bad, Damage{Holder: sc.s.node.Self(), Key: it.Key, Block: r.block.Block, Coding: r.block.Coding, Index: r.index})
		}
		cursor = next
	}
	for k, r := range exp {
		if seen[k] || r.pending {
			continue
		}
		if ok, err := local.Has(ctx, []byte(k)); err != nil || ok {
			continue
		}
		missing++
		bad = append(bad, Damage{Holder: sc.s.node.Self(), Key: []byte(k), Block: r.block.Block, Coding: r.block.Coding, Index: r.index})
	}
	for i := 0; i < len(bad); i += 4096 {
		if err := sc.s.node.Report(ctx, bad[i:min(i+4096, len(bad))]); err != nil {
			return err
		}
	}
	sc.mu.Lock()
	sc.st.Passes++
	sc.st.LastPass = time.Now()
	sc.st.LastDuration = time.Since(start).Seconds()
	sc.st.LastCorrupt, sc.st.LastMissing = corrupt, missing
	sc.st.Corrupt += int64(corrupt)
	sc.st.Missing += int64(missing)
	sc.mu.Unlock()
	return nil
}
