package repair

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/fungistor/fungistor/fungi"
)

// auditRecord is what the leader learnt of one holder from its audits.
type auditRecord struct {
	passed, failed int64
	strikes        int // rounds failed in a row
	failing        bool
	last           string // the last failure
	lastAt         time.Time
}

// AuditStatus is one holder's audit record.
type AuditStatus struct {
	ID      string `json:"id"`
	Passed  int64  `json:"passed"`
	Failed  int64  `json:"failed"`
	Strikes int    `json:"strikes"`
	// Failing: it failed AuditStrikes rounds in a row and is replaced as
	// if lost.
	Failing     bool      `json:"failing"`
	LastFailure string    `json:"last_failure,omitempty"`
	LastAt      time.Time `json:"last_failure_at,omitzero"`
}

// auditStatus lists the records, by holder (s.mu held).
func (s *Service) auditStatus() []AuditStatus {
	out := make([]AuditStatus, 0, len(s.audits))
	for id, r := range s.audits {
		out = append(out, AuditStatus{ID: id, Passed: r.passed, Failed: r.failed, Strikes: r.strikes,
			Failing: r.failing, LastFailure: r.last, LastAt: r.lastAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// failedAudits are the holders failing audits.
func (s *Service) failedAudits() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for id, r := range s.audits {
		if r.failing {
			out[id] = true
		}
	}
	return out
}

func (s *Service) auditLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.AuditEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.node.Leader() {
			continue
		}
		if err := s.Audit(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("audit", "err", err)
		}
	}
}

// sample is one fragment an audit asks for.
type sample struct {
	block fungi.BlockRepair
	index int
}

// Audit challenges every live holder for AuditSample fragments it should
// hold, chosen at random over everything it holds, fetches and verifies
// them. A fragment missing or failing its tag is reported for repair; a
// holder failing AuditStrikes rounds in a row is replaced as if lost. A
// holder that does not answer is not failed here: that is liveness, and
// the grace deals with it.
func (s *Service) Audit(ctx context.Context) error {
	v, err := s.look(ctx, false)
	if err != nil {
		return err
	}
	seen := map[string]int{}
	picks := map[string][]sample{}
	for _, o := range v.objs {
		leaves, err := o.Manifest.LeafCIDs()
		if err != nil {
			return err
		}
		c := o.Manifest.Coding
		for _, leaf := range leaves {
			holders, kept := o.Layout.Holders(leaf, c.N)
			for i, h := range holders {
				if !v.live[h] && !v.failed[h] || kept != nil && kept[i] != nil {
					continue // down, or not written there yet
				}
				seen[h]++
				smp := sample{block: fungi.BlockRepair{Root: o.Root, Block: leaf, Coding: c}, index: i}
				if len(picks[h]) < s.cfg.AuditSample {
					picks[h] = append(picks[h], smp)
				} else if j := rand.IntN(seen[h]); j < s.cfg.AuditSample {
					picks[h][j] = smp
				}
			}
		}
	}
	var mu sync.Mutex
	var damages []Damage
	var wg sync.WaitGroup
	for h, ps := range picks {
		wg.Go(func() {
			ok, bad, last := s.auditHolder(ctx, h, ps, func(d Damage) {
				mu.Lock()
				damages = append(damages, d)
				mu.Unlock()
			})
			s.record(h, ok, bad, last)
		})
	}
	wg.Wait()
	if len(damages) > 0 {
		for i := 0; i < len(damages); i += 4096 {
			if err := s.node.Report(ctx, damages[i:min(i+4096, len(damages))]); err != nil {
				return err
			}
		}
		s.Kick()
	}
	return nil
}

// auditHolder asks one holder for its samples.
func (s *Service) auditHolder(ctx context.Context, h string, ps []sample, report func(Damage)) (ok, bad int, last string) {
	st := s.node.Store(h)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, p := range ps {
		c := p.block.Coding
		key := fungi.FragmentKey(p.block.Block, c, p.index)
		data, err := st.GetFragment(ctx, key)
		if err == nil {
			codec, cerr := s.node.Codec(c)
			if cerr != nil {
				continue
			}
			err = codec.Verify(p.block.Block, p.index, data)
		} else if !errors.Is(err, fungi.ErrFragmentNotFound) {
			continue // unreachable or slow: not an audit failure
		}
		if err != nil {
			bad++
			last = p.block.Block.String() + " fragment " + itoa(p.index) + ": " + err.Error()
			report(Damage{Holder: h, Key: key, Block: p.block.Block, Coding: c, Index: p.index})
			continue
		}
		ok++
	}
	return ok, bad, last
}

func (s *Service) record(h string, ok, bad int, last string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.audits[h]
	if r == nil {
		r = &auditRecord{}
		s.audits[h] = r
	}
	r.passed += int64(ok)
	r.failed += int64(bad)
	switch {
	case bad > 0:
		r.strikes++
		r.last, r.lastAt = last, time.Now()
		if r.strikes >= s.cfg.AuditStrikes && !r.failing {
			r.failing = true
			s.log.Warn("audit: a holder keeps failing audits; its fragments move to others", "holder", h, "failed", r.failed, "last", last)
		}
	case ok > 0:
		r.strikes, r.failing = 0, false
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}
