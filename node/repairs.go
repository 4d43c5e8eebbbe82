package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/consensus"
	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/node/repair"
	"github.com/fungistor/fungistor/store"
	"github.com/fungistor/fungistor/store/zdb"
)

// RepairConfig are the self-healing settings (the "repair" part of the
// config). Zero values mean the defaults; every node reads its own, and
// the leader's grace, rate and audits are the ones that act.
type RepairConfig struct {
	// Grace: a member unheard this long counts as lost and its fragments
	// are re-created on others (a Go duration, default "5m"). A member
	// back within the grace costs no repair.
	Grace string `json:"grace,omitempty"`
	// Rate caps repair traffic, in bytes per second ("100MB", "0" for no
	// cap; default 50MB: on a small shared machine, reads during a repair
	// keep most of their speed; raise it where nodes have cores to spare).
	// `fungi repair --rate` changes it while running.
	Rate string `json:"rate,omitempty"`
	// ScrubRate caps how fast this node re-reads and verifies its own
	// fragments, in bytes per second (default "16MB"; "0" turns the
	// scrubber off).
	ScrubRate string `json:"scrub_rate,omitempty"`
	// ScrubInterval: a scrub pass begins at most this often (default
	// "1h"; a node holding more than the rate reads in that time scrubs
	// without a pause).
	ScrubInterval string `json:"scrub_interval,omitempty"`
	// AuditInterval is how often the leader challenges every holder for
	// random fragments it should hold (default "1m"; "0" never).
	AuditInterval string `json:"audit_interval,omitempty"`
	// AuditSample is how many fragments one audit asks of each holder
	// (default 16).
	AuditSample int `json:"audit_sample,omitempty"`
	// AuditStrikes: a holder failing this many audit rounds in a row is
	// replaced as if lost (default 2).
	AuditStrikes int `json:"audit_strikes,omitempty"`
	// Off turns the monitor, audits and scrubber off on this node.
	Off bool `json:"off,omitempty"`
}

// defaultScrubRate leaves foreground reads alone: ~1.4 TB a day.
const defaultScrubRate = 16 << 20

// settings parses the config into the service's.
func (c RepairConfig) settings() (repair.Config, error) {
	out := repair.Config{Grace: repair.DefaultGrace, Rate: repair.DefaultRate, ScrubRate: defaultScrubRate, ScrubEvery: repair.DefaultScrubEvery,
		AuditEvery: repair.DefaultAuditEvery, AuditSample: c.AuditSample, AuditStrikes: c.AuditStrikes}
	var err error
	if c.Grace != "" {
		if out.Grace, err = time.ParseDuration(c.Grace); err != nil || out.Grace < 0 {
			return out, fmt.Errorf("config: repair.grace %q: want a duration such as \"5m\"", c.Grace)
		}
	}
	if c.AuditInterval != "" {
		if out.AuditEvery, err = time.ParseDuration(c.AuditInterval); err != nil || out.AuditEvery < 0 {
			return out, fmt.Errorf("config: repair.audit_interval %q: want a duration such as \"1m\" (\"0\": never)", c.AuditInterval)
		}
	}
	if c.Rate != "" {
		if out.Rate, err = ParseRate(c.Rate); err != nil {
			return out, fmt.Errorf("config: repair.rate: %w", err)
		}
	}
	if c.ScrubInterval != "" {
		if out.ScrubEvery, err = time.ParseDuration(c.ScrubInterval); err != nil || out.ScrubEvery < 0 {
			return out, fmt.Errorf("config: repair.scrub_interval %q: want a duration such as \"1h\"", c.ScrubInterval)
		}
	}
	if c.ScrubRate != "" {
		if out.ScrubRate, err = ParseRate(c.ScrubRate); err != nil {
			return out, fmt.Errorf("config: repair.scrub_rate: %w", err)
		}
	}
	if c.AuditSample < 0 || c.AuditSample > 1<<16 {
		return out, fmt.Errorf("config: repair.audit_sample %d: want 1 to 65536", c.AuditSample)
	}
	if c.AuditStrikes < 0 || c.AuditStrikes > 1000 {
		return out, fmt.Errorf("config: repair.audit_strikes %d: want 1 to 1000", c.AuditStrikes)
	}
	return out, nil
}

// ParseRate reads a rate in bytes per second: a number with an optional
// unit (B, kB, MB, GB: powers of 1000; KiB, MiB, GiB: of 1024) and an
// optional "/s"; "0" is no limit.
func ParseRate(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "/s")
	units := []struct {
		suffix string
		mul    int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mul := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mul = strings.TrimSpace(n), u.mul
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v >= 0) || !(v*float64(mul) <= 1<<50) {
		return 0, fmt.Errorf("%q: want bytes per second such as \"100MB\" (\"0\": no limit)", s)
	}
	return int64(v * float64(mul)), nil
}

// repairNode is the daemon as the repair service sees it.
type repairNode struct {
	cc   *clusterContent
	repo *Repo
}

var _ repair.Node = repairNode{}

func (n repairNode) Self() string    { return n.cc.self }
func (n repairNode) Leader() bool    { return n.cc.cluster.node().IsLeader() }
func (n repairNode) Version() uint64 { return n.cc.fsm().AppliedIndex() }

func (n repairNode) Objects(context.Context) ([]fungi.RepairObject, error) {
	// the moves first: no FSM call may run inside RangeManifests (it
	// holds the FSM's read lock; a second one waits behind Apply)
	all := n.cc.moves(0)
	var raw []consensus.Manifest
	n.cc.fsm().RangeManifests(func(m consensus.Manifest) bool {
		raw = append(raw, m)
		return true
	})
	out := make([]fungi.RepairObject, 0, len(raw))
	for _, m := range raw {
		fm := &fungi.Manifest{}
		if err := fm.UnmarshalBinary(m.Data); err != nil {
			return nil, fmt.Errorf("manifest of %s: %w", m.Root, err)
		}
		fm.Epoch = m.Epoch
		var moves []fungi.Move
		for _, mv := range all {
			if mv.Seq > m.Epoch {
				moves = append(moves, mv)
			}
		}
		out = append(out, fungi.RepairObject{Root: fm.Root, Manifest: fm, Layout: fungi.LayoutOf(fm, moves, nil)})
	}
	return out, nil
}

func (n repairNode) Members(ctx context.Context) ([]repair.Member, error) {
	cn := n.cc.cluster.node()
	var st consensus.Status
	if cn.IsLeader() {
		st = cn.Status()
	} else {
		var err error
		if st, err = cn.LeaderStatus(ctx); err != nil {
			return nil, fmt.Errorf("%w: %v", repair.ErrNoView, err)
		}
	}
	servers := map[string]consensus.ServerStatus{}
	for _, s := range st.Servers {
		servers[s.ID] = s
	}
	var out []repair.Member
	for _, m := range cn.FSM().Members() {
		s := servers[m.ID]
		mm := repair.Member{ID: m.ID, Domain: m.Domain, Storing: m.Capacity > 0, Up: s.Healthy, Contact: s.LastContact}
		if m.Capacity > m.Used+minFree {
			mm.Free = m.Capacity - m.Used - minFree
		}
		out = append(out, mm)
	}
	return out, nil
}

func (n repairNode) Epochs() []repair.Epoch {
	var out []repair.Epoch
	all := n.cc.moves(0)
	for i, e := range n.cc.fsm().Epochs() {
		out = append(out, repair.Epoch{Move: all[i], Reason: e.Reason, Begun: e.Begun})
	}
	return out
}

func (n repairNode) Damages() []repair.Damage {
	var out []repair.Damage
	for _, d := range n.cc.fsm().Damages() {
		b, err1 := cid.Decode(d.Block)
		c, err2 := fungi.ParseCoding(d.Coding)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, repair.Damage{Holder: d.Holder, Key: d.Key, Block: b, Coding: c, Index: d.Index})
	}
	return out
}

func (n repairNode) Store(id string) fungi.FragmentStore { return n.cc.store(id) }

func (n repairNode) Codec(c fungi.Coding) (*fungi.Codec, error) { return n.repo.codec(c) }

func (n repairNode) apply(ctx context.Context, cmd consensus.Command) error {
	_, err := n.cc.cluster.node().Apply(ctx, cmd)
	return err
}

func (n repairNode) Begin(ctx context.Context, reason string, lost []string, pool []fungi.Candidate) error {
	cp := make([]consensus.Candidate, len(pool))
	for i, c := range pool {
		cp[i] = consensus.Candidate{ID: c.ID, Domain: c.Domain, Free: c.Free}
	}
	return n.apply(ctx, consensus.BeginRepair(reason, lost, cp, time.Now()))
}

func (n repairNode) End(ctx context.Context, seq uint64) error {
	return n.apply(ctx, consensus.EndRepair(seq))
}

func damages(ds []repair.Damage) []consensus.Damage {
	out := make([]consensus.Damage, len(ds))
	for i, d := range ds {
		out[i] = consensus.Damage{Holder: d.Holder, Key: d.Key, Block: d.Block.String(), Coding: d.Coding.String(), Index: d.Index}
	}
	return out
}

func (n repairNode) Report(ctx context.Context, ds []repair.Damage) error {
	return n.apply(ctx, consensus.ReportDamage(damages(ds)))
}

func (n repairNode) Clear(ctx context.Context, ds []repair.Damage) error {
	return n.apply(ctx, consensus.ClearDamage(damages(ds)))
}

func (n repairNode) Local() repair.Local { return zdbLocal{n.repo.frags} }

func (n repairNode) Busy() bool {
	return time.Since(time.Unix(0, n.cc.lastRead.Load())) < 200*time.Millisecond
}

// zdbLocal is the embedded ZDB as the scrubber reads it.
type zdbLocal struct{ ns *zdb.Namespace }

func (z zdbLocal) Scan(cursor []byte, n int) ([]repair.Item, []byte, error) {
	items, next, err := z.ns.Scan(cursor, n, false)
	out := make([]repair.Item, len(items))
	for i, it := range items {
		out[i] = repair.Item{Key: it.Key, Size: int(it.Size)}
	}
	return out, next, err
}

func (z zdbLocal) Get(ctx context.Context, key []byte) ([]byte, error) {
	v, err := z.ns.Get(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fungi.ErrFragmentNotFound
	case errors.Is(err, store.ErrCorrupt):
		return nil, fmt.Errorf("%w: %v", repair.ErrCorrupt, err)
	}
	return v, err
}

func (z zdbLocal) Has(ctx context.Context, key []byte) (bool, error) { return z.ns.Exists(ctx, key) }

func (z zdbLocal) Delete(ctx context.Context, key []byte) error {
	err := z.ns.Del(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// startRepair runs the repair service for the daemon's life.
func startRepair(ctx context.Context, repo *Repo, cc *clusterContent) (*repair.Service, error) {
	cfg, err := repo.Config.Repair.settings()
	if err != nil {
		return nil, err
	}
	svc := repair.New(repairNode{cc: cc, repo: repo}, cfg, cc.log)
	if !repo.Config.Repair.Off {
		go svc.Run(ctx)
	}
	return svc, nil
}
