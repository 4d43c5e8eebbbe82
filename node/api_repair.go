package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/node/repair"
)

// handleRepair serves the self-healing endpoints and metrics.
func (a *api) handleRepair() {
	a.handle("POST /api/v0/repair", a.repairNow)
	a.handle("GET /api/v0/repair/status", a.repairStatus)
	a.handle("POST /api/v0/repair/rate", a.repairRate)
	a.handle("POST /api/v0/check", a.check)
	a.reg.MustRegister(repairCollector{a.repairs})
}

// parseRoots reads the arg parameters as CIDs.
func parseRoots(args []string) ([]cid.Cid, error) {
	var out []cid.Cid
	for _, s := range args {
		c, err := cid.Decode(s)
		if err != nil {
			return nil, badRequest("%q is not a CID: %v", s, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// RepairLine is one line of a repair's stream: progress, then the report.
type RepairLine struct {
	Progress *repair.Progress `json:"progress,omitempty"`
	Report   *repair.Report   `json:"report,omitempty"`
}

// repairNow: POST /api/v0/repair?arg=CID...|all=true[&dry-run=true]
// repairs now (members down count as lost at once); progress and the
// report stream as newline-delimited JSON.
func (a *api) repairNow(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	roots, err := parseRoots(q["arg"])
	if err != nil {
		return err
	}
	if len(roots) == 0 && q.Get("all") != "true" {
		return badRequest("name the CIDs to repair, or all=true")
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Trailer", "X-Stream-Error")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	last := time.Time{}
	progress := func(p repair.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 200*time.Millisecond && p.Blocks < p.Total {
			return
		}
		last = time.Now()
		enc.Encode(RepairLine{Progress: &p})
		if flusher != nil {
			flusher.Flush()
		}
	}
	rep, err := a.repairs.Repair(r.Context(), roots, q.Get("dry-run") == "true", progress)
	if err != nil {
		w.Header().Set("X-Stream-Error", err.Error())
		return nil
	}
	mu.Lock()
	enc.Encode(RepairLine{Report: &rep})
	mu.Unlock()
	return nil
}

// RepairStatus is the cluster's health and the repair's state.
type RepairStatus struct {
	repair.Status
	// Members' health is the leader's view when From is "leader".
	From string `json:"from"`
}

// repairStatus: GET /api/v0/repair/status
func (a *api) repairStatus(w http.ResponseWriter, r *http.Request) error {
	st, err := a.repairHealth(r.Context())
	if err != nil {
		return httpError{http.StatusServiceUnavailable, err}
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (a *api) repairHealth(ctx context.Context) (RepairStatus, error) {
	st, err := a.repairs.Health(ctx)
	return RepairStatus{Status: st, From: "leader"}, err
}

// repairRate: POST /api/v0/repair/rate?arg=RATE sets this node's repair
// rate cap while it runs (the leader's caps the monitor's repairs).
func (a *api) repairRate(w http.ResponseWriter, r *http.Request) error {
	bps, err := ParseRate(r.URL.Query().Get("arg"))
	if err != nil {
		return badRequest("rate %w", err)
	}
	a.repairs.SetRate(bps)
	writeJSON(w, http.StatusOK, map[string]int64{"rate": bps})
	return nil
}

// CheckResult is one object's verification.
type CheckResult struct {
	Root   string `json:"root"`
	Health string `json:"health"`
	Blocks int    `json:"blocks"`
	// Missing and Corrupt count fragments absent or failing their check
	// on holders that answered; they are reported for repair.
	Missing     int      `json:"missing"`
	Corrupt     int      `json:"corrupt"`
	Unreachable []string `json:"unreachable,omitempty"`
	Spare       int      `json:"spare_fragments"`
	Error       string   `json:"error,omitempty"`
}

// CheckReport is a cluster-wide verification.
type CheckReport struct {
	Objects  []CheckResult      `json:"objects"`
	Health   fungi.HealthCounts `json:"health"`
	Reported int                `json:"reported"` // fragments reported for repair
}

// check: POST /api/v0/check?arg=CID...|all=true fetches and verifies every
// fragment of the objects from their holders, and reports what is
// missing or corrupt on holders that answered for repair.
func (a *api) check(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	roots, err := parseRoots(q["arg"])
	if err != nil {
		return err
	}
	if len(roots) == 0 {
		if q.Get("all") != "true" {
			return badRequest("name the CIDs to check, or all=true")
		}
		objs, err := repairNode{cc: a.content, repo: a.repo}.Objects(r.Context())
		if err != nil {
			return err
		}
		for _, o := range objs {
			roots = append(roots, o.Root)
		}
		sort.Slice(roots, func(i, j int) bool { return roots[i].String() < roots[j].String() })
	}
	rep := CheckReport{Objects: []CheckResult{}}
	explicit := len(q["arg"]) > 0
	for _, c := range roots {
		res, ds, err := a.checkOne(r.Context(), c)
		if err != nil && (explicit || !errors.Is(err, ErrNotFound)) {
			return fmt.Errorf("check %s: %w", c, err)
		}
		if len(ds) > 0 {
			if err := (repairNode{cc: a.content, repo: a.repo}).Report(r.Context(), ds); err != nil {
				return err
			}
			rep.Reported += len(ds)
		}
		rep.Objects = append(rep.Objects, res)
		h := fungi.Lost
		for i, n := range []string{"full", "degraded", "at_risk", "lost"} {
			if res.Health == n {
				h = fungi.Health(i)
			}
		}
		rep.Health.Add(h)
	}
	if rep.Reported > 0 {
		a.repairs.Kick()
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// checkOne verifies one object and lists the damage to report. An
// object unknown to the cluster is an error; one that cannot be read is a
// result (health lost).
func (a *api) checkOne(ctx context.Context, c cid.Cid) (CheckResult, []repair.Damage, error) {
	res := CheckResult{Root: c.String()}
	if _, err := a.repo.manifest(ctx, c); err != nil {
		return res, nil, err
	}
	st, err := a.repo.Stat(ctx, c, true)
	if err != nil {
		res.Error, res.Health = err.Error(), "lost"
		return res, nil, nil
	}
	coding, _ := fungi.ParseCoding(st.Coding)
	res.Blocks, res.Spare, res.Unreachable, res.Health = st.Blocks, st.SpareFragments, st.Unreachable, st.Health
	unreachable := map[string]bool{}
	for _, u := range st.Unreachable {
		unreachable[u] = true
	}
	for _, h := range st.Holders {
		res.Corrupt += h.Corrupt
	}
	var ds []repair.Damage
	for _, l := range st.Layout {
		b, err := cid.Decode(l.CID)
		if err != nil {
			continue
		}
		for _, i := range l.Missing {
			h := l.Holders[i]
			if unreachable[h] {
				continue
			}
			res.Missing++
			ds = append(ds, repair.Damage{Holder: h, Key: fungi.FragmentKey(b, coding, i), Block: b, Coding: coding, Index: i})
		}
	}
	res.Missing -= res.Corrupt
	return res, ds, nil
}

// repairCollector exports the repair service's state as metrics.
type repairCollector struct{ s *repair.Service }

var (
	mObjects   = prometheus.NewDesc("fungi_repair_objects", "Objects by health (full, degraded, at_risk, lost), as the leader last saw them.", []string{"health"}, nil)
	mBlocks    = prometheus.NewDesc("fungi_repair_blocks", "Distinct blocks by health, as the leader last saw them.", []string{"health"}, nil)
	mBacklog   = prometheus.NewDesc("fungi_repair_backlog_fragments", "Fragments to write now (repair backlog).", nil, nil)
	mStranded  = prometheus.NewDesc("fungi_repair_stranded_fragments", "Fragments on members down within the grace.", nil, nil)
	mLost      = prometheus.NewDesc("fungi_repair_lost_members", "Members counted lost (unheard for the grace or failing audits).", nil, nil)
	mPartition = prometheus.NewDesc("fungi_repair_partition", "1 while repair holds back because the losses look like a partition.", nil, nil)
	mEpochs    = prometheus.NewDesc("fungi_repair_epochs", "Repair epochs in the replicated state, and those pending.", []string{"state"}, nil)
	mDone      = prometheus.NewDesc("fungi_repair_done_total", "What this node's repairs did: blocks, fragments and bytes written, content bytes decoded, failed blocks.", []string{"what"}, nil)
	mRate      = prometheus.NewDesc("fungi_repair_rate_bytes", "The repair rate cap in bytes per second (0: none).", nil, nil)
	mScrub     = prometheus.NewDesc("fungi_scrub_total", "What the scrubber did on this node: passes, bytes verified, corrupt and missing fragments found.", []string{"what"}, nil)
	mScrubPos  = prometheus.NewDesc("fungi_scrub_progress_ratio", "How far the current scrub pass is (0 to 1).", nil, nil)
	mScrubLast = prometheus.NewDesc("fungi_scrub_last_pass_timestamp_seconds", "When the last full scrub pass ended.", nil, nil)
	mAudit     = prometheus.NewDesc("fungi_audit_fragments_total", "Audited fragments by holder and outcome (passed, failed).", []string{"holder", "outcome"}, nil)
	mFailing   = prometheus.NewDesc("fungi_audit_failing", "1 for a holder failing audits (replaced as if lost).", []string{"holder"}, nil)
)

func (c repairCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mObjects, mBlocks, mBacklog, mStranded, mLost, mPartition, mEpochs, mDone, mRate, mScrub, mScrubPos, mScrubLast, mAudit, mFailing} {
		ch <- d
	}
}

func (c repairCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Status()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	k := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	for _, h := range []struct {
		name string
		o, b int
	}{{"full", st.Objects.Full, st.Blocks.Full}, {"degraded", st.Objects.Degraded, st.Blocks.Degraded},
		{"at_risk", st.Objects.AtRisk, st.Blocks.AtRisk}, {"lost", st.Objects.Lost, st.Blocks.Lost}} {
		g(mObjects, float64(h.o), h.name)
		g(mBlocks, float64(h.b), h.name)
	}
	g(mBacklog, float64(st.Backlog))
	g(mStranded, float64(st.Stranded))
	g(mLost, float64(len(st.Lost)))
	part := 0.0
	if st.Partition != "" {
		part = 1
	}
	g(mPartition, part)
	g(mEpochs, float64(st.Epochs), "all")
	g(mEpochs, float64(st.Pending), "pending")
	k(mDone, float64(st.Done.Blocks), "blocks")
	k(mDone, float64(st.Done.Fragments), "fragments")
	k(mDone, float64(st.Done.Bytes), "bytes")
	k(mDone, float64(st.Done.Fetched), "decoded_bytes")
	k(mDone, float64(st.Done.Failed), "failed_blocks")
	g(mRate, float64(st.Rate))
	k(mScrub, float64(st.Scrub.Passes), "passes")
	k(mScrub, float64(st.Scrub.BytesVerified), "bytes")
	k(mScrub, float64(st.Scrub.Corrupt), "corrupt")
	k(mScrub, float64(st.Scrub.Missing), "missing")
	pos := 0.0
	if st.Scrub.Total > 0 {
		pos = float64(st.Scrub.Scanned) / float64(st.Scrub.Total)
	}
	g(mScrubPos, min(pos, 1))
	if !st.Scrub.LastPass.IsZero() {
		g(mScrubLast, float64(st.Scrub.LastPass.Unix()))
	}
	for _, au := range st.Audits {
		k(mAudit, float64(au.Passed), au.ID, "passed")
		k(mAudit, float64(au.Failed), au.ID, "failed")
		f := 0.0
		if au.Failing {
			f = 1
		}
		g(mFailing, f, au.ID)
	}
}

// rot: POST /api/v0/debug/rot?n=N flips one byte in N fragments stored on
// this node, rewriting them through the store (so their checksum is
// valid and only the fragment's tag tells): bit rot for tests.
func (a *api) rot(w http.ResponseWriter, r *http.Request) error {
	n := 1
	if s := r.URL.Query().Get("n"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			return badRequest("n %q: want a positive count", s)
		}
	}
	var keys []string
	var cursor []byte
	for len(keys) < n {
		items, next, err := a.repo.frags.Scan(cursor, 256, false)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			if len(keys) >= n {
				break
			}
			v, err := a.repo.frags.Get(r.Context(), it.Key)
			if err != nil || len(v) == 0 {
				continue
			}
			v = bytes.Clone(v)
			v[len(v)/2] ^= 0x10
			if _, _, _, err := a.repo.frags.Write(it.Key, v); err != nil {
				return err
			}
			keys = append(keys, hex.EncodeToString(it.Key))
		}
		cursor = next
	}
	writeJSON(w, http.StatusOK, map[string][]string{"keys": keys})
	return nil
}
