package repair

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/fungi"
)

// Status is what the service reports (cluster status, metrics).
type Status struct {
	// Leader: this node runs the monitor; the rest is its view. On other
	// nodes the counts are computed on demand by Health.
	Leader  bool               `json:"leader"`
	Objects fungi.HealthCounts `json:"objects"`
	Blocks  fungi.HealthCounts `json:"blocks"`
	// Tolerance is how many holders the cluster can lose now with every
	// object readable (-1: no dispersed object).
	Tolerance int `json:"tolerance"`
	// Backlog is the fragments to write now; Stranded those on members
	// down within the grace (they come back with them or move later).
	Backlog  int `json:"backlog_fragments"`
	Stranded int `json:"stranded_fragments"`
	// Lost are members counted lost (unheard for the grace, or failing
	// audits); Down those unheard but within the grace.
	Lost []string `json:"lost"`
	Down []string `json:"down"`
	// Replaced are members whose fragments a finished repair moved to
	// others (they hold nothing needed; back, their copies are collected).
	Replaced []string `json:"replaced,omitempty"`
	// Partition says why repair holds back ("": it does not).
	Partition string `json:"partition,omitempty"`
	// Epochs counts the repair epochs; Pending those not done.
	Epochs  int           `json:"epochs"`
	Pending int           `json:"pending_epochs"`
	Audits  []AuditStatus `json:"audits,omitempty"`
	Scrub   ScrubStatus   `json:"scrub"`
	Done    Counters      `json:"done"`
	// Rate is the repair rate cap in bytes per second (0: none).
	Rate    int64     `json:"rate"`
	Updated time.Time `json:"updated"`
}

// Counters count what repairs did since the daemon started.
type Counters struct {
	Blocks    int64 `json:"blocks"`
	Fragments int64 `json:"fragments"`
	Bytes     int64 `json:"bytes"`   // fragment bytes written
	Fetched   int64 `json:"fetched"` // content bytes decoded
	Failed    int64 `json:"failed"`  // blocks a repair could not finish
	Epochs    int64 `json:"epochs"`  // epochs this node began
}

// Status returns the service's last view.
func (s *Service) Status() Status {
	s.mu.Lock()
	st := s.status
	st.Done = s.counters
	st.Audits = s.auditStatus()
	s.mu.Unlock()
	st.Scrub = s.scr.status()
	st.Rate = s.lim.rate()
	return st
}

// view is one look at the cluster.
type view struct {
	objs     []fungi.RepairObject
	version  uint64 // of the replicated state objs were read at
	epochs   []Epoch
	damages  map[string]Damage
	live     map[string]bool // up and not failing audits
	lost     map[string]bool // unheard for the grace, or failing audits
	down     map[string]bool // unheard within the grace
	failed   map[string]bool // failing audits
	storing  map[string]string
	members  map[string]Member
	plan     fungi.RepairPlan
	pending  uint64 // highest epoch not done (0: none)
	need     map[string]bool
	stranded int
}

// look builds a view; manual counts every member that is down as lost
// (a repair asked for now does not wait for the grace).
func (s *Service) look(ctx context.Context, manual bool) (*view, error) {
	v := &view{live: map[string]bool{}, lost: map[string]bool{}, down: map[string]bool{}, failed: s.failedAudits(),
		storing: map[string]string{}, members: map[string]Member{}, need: map[string]bool{}}
	members, err := s.node.Members(ctx)
	if err != nil {
		return nil, err
	}
	// the objects (and the version they were read at) first: what is
	// read after is at least as new, so a plan kept by version is never
	// older than the state it is kept for
	if v.objs, err = s.objects(ctx); err != nil {
		return nil, err
	}
	v.version = s.objsVersion()
	v.epochs, v.damages = s.node.Epochs(), damageSet(s.node.Damages())
	for _, e := range v.epochs {
		if !e.Done {
			v.pending = e.Seq
		}
	}
	s.mu.Lock()
	since := s.leadSince
	s.mu.Unlock()
	unheardFor := map[string]time.Duration{}
	for _, m := range members {
		v.members[m.ID] = m
		unheard := time.Duration(1<<63 - 1)
		if last := maxTime(m.Contact, since); !last.IsZero() {
			unheard = time.Since(last)
		}
		unheardFor[m.ID] = unheard
		if m.Storing {
			v.storing[m.ID] = m.Domain
		}
		switch {
		case m.Up && !v.failed[m.ID]:
			v.live[m.ID] = true
		case m.Up: // failing audits
			v.lost[m.ID] = true
		case manual || unheard >= s.cfg.Grace:
			v.lost[m.ID] = true
		default:
			v.down[m.ID] = true
		}
	}
	// the plan walks every block: keep it while nothing it depends on
	// moved (the replicated state's version covers objects, epochs and
	// damage reports)
	key := fmt.Sprint(s.objsVersion(), sortedKeys(v.live), sortedKeys(v.lost))
	s.mu.Lock()
	cached, ok := s.plans[key]
	s.mu.Unlock()
	if ok {
		v.plan = cached
	} else {
		v.plan, err = fungi.PlanRepair(v.objs, fungi.RepairState{
			Live: func(id string) bool { return v.live[id] },
			Damaged: func(h string, k []byte) bool {
				_, ok := v.damages[h+"\x00"+string(k)]
				return ok
			},
		})
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.plans = map[string]fungi.RepairPlan{key: v.plan}
		s.mu.Unlock()
	}
	strandedOn := map[string]int{}
	for _, b := range v.plan.Blocks {
		for _, i := range b.Stranded {
			if h := b.Holders[i]; v.lost[h] {
				v.need[h] = true
			} else {
				strandedOn[h]++
				v.stranded++
			}
		}
	}
	// members that failed together are replaced together: heartbeats
	// reach the grace a little apart, and a second epoch a moment after
	// the first would move the first one's blocks twice
	if len(v.need) > 0 {
		for id, n := range strandedOn {
			if v.down[id] && unheardFor[id] >= s.cfg.Grace/2 {
				delete(v.down, id)
				v.lost[id], v.need[id] = true, true
				v.stranded -= n
			}
		}
	}
	return v, nil
}

// lostAndReplaced splits the lost members: those a finished epoch
// replaced, and the others.
func (v *view) lostAndReplaced() (lost, replaced []string) {
	done := map[string]bool{}
	for _, e := range v.epochs {
		for _, id := range e.Lost {
			if e.Done {
				done[id] = true
			}
		}
	}
	for _, id := range sortedKeys(v.lost) {
		if done[id] && !v.need[id] {
			replaced = append(replaced, id)
		} else {
			lost = append(lost, id)
		}
	}
	return lost, replaced
}

// partition applies fungi.Losses to the members that vanished and were
// not replaced yet (nodes failing audits are alive: they do not count).
func (v *view) partition() string {
	replaced := map[string]bool{}
	for _, e := range v.epochs {
		for _, id := range e.Lost {
			if !v.live[id] {
				replaced[id] = true
			}
		}
	}
	storing := map[string]string{}
	for id, d := range v.storing {
		if !replaced[id] {
			storing[id] = d
		}
	}
	var gone []string
	for id := range v.storing {
		if (v.lost[id] || v.down[id]) && !v.failed[id] && !replaced[id] {
			gone = append(gone, id)
		}
	}
	if p, why := fungi.Losses(storing, gone); p {
		return why
	}
	return ""
}

// candidates are the members a move may place fragments on.
func (v *view) candidates() []fungi.Candidate {
	var out []fungi.Candidate
	for id, d := range v.storing {
		if v.live[id] && !v.need[id] {
			out = append(out, fungi.Candidate{ID: id, Domain: d, Free: v.members[id].Free})
		}
	}
	slices.SortFunc(out, func(a, b fungi.Candidate) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// begin commits an epoch replacing the members v needs moved, unless the
// losses look like a partition; it reports whether it began one.
func (s *Service) begin(ctx context.Context, v *view, manual bool) (bool, error) {
	if len(v.need) == 0 {
		return false, nil
	}
	if why := v.partition(); why != "" {
		return false, fmt.Errorf("%w: %s", ErrPartition, why)
	}
	pool := v.candidates()
	if len(pool) == 0 {
		return false, errors.New("no live storing member can take repaired fragments")
	}
	reason := "lost"
	allAudit := true
	for id := range v.need {
		allAudit = allAudit && v.failed[id]
	}
	switch {
	case allAudit:
		reason = "audit"
	case manual:
		reason = "manual"
	}
	lost := sortedKeys(v.need)
	if err := s.node.Begin(ctx, reason, lost, pool); err != nil {
		return false, err
	}
	s.mu.Lock()
	s.counters.Epochs++
	s.mu.Unlock()
	s.log.Warn("repair: members replaced; their fragments are being re-created on others", "reason", reason, "lost", lost, "pool", len(pool))
	return true, nil
}

// ErrPartition: too many members vanished at once to start moving their
// fragments.
var ErrPartition = errors.New("looks like a partition, not repairing")

// tick is one look of the monitor (leader only).
func (s *Service) tick(ctx context.Context) error {
	if !s.node.Leader() {
		s.mu.Lock()
		s.leadSince = time.Time{}
		s.status.Leader = false
		s.mu.Unlock()
		return nil
	}
	s.mu.Lock()
	if s.leadSince.IsZero() {
		s.leadSince = time.Now()
	}
	busy := s.running
	s.mu.Unlock()
	if busy {
		return nil
	}
	v, err := s.look(ctx, false)
	if err != nil {
		return err
	}
	partition := ""
	began, err := s.begin(ctx, v, false)
	if errors.Is(err, ErrPartition) {
		partition = err.Error()
	} else if err != nil {
		s.log.Warn("repair: could not begin", "err", err)
	}
	s.setStatus(v, partition)
	if began {
		s.Kick() // look again with the epoch applied
		return nil
	}
	_, err = s.pass(ctx, v, nil, nil)
	return err
}

func (s *Service) setStatus(v *view, partition string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if partition != "" && s.status.Partition != partition {
		s.log.Warn("repair: holding back", "why", partition, "down", sortedKeys(v.down), "lost", sortedKeys(v.lost))
	}
	pending := 0
	for _, e := range v.epochs {
		if !e.Done {
			pending++
		}
	}
	lost, replaced := v.lostAndReplaced()
	s.statusAt = v.version
	s.status = Status{Leader: true, Objects: v.plan.Objects, Blocks: v.plan.Counted, Backlog: v.plan.Fragments,
		Stranded: v.stranded, Lost: lost, Replaced: replaced, Down: sortedKeys(v.down), Partition: partition,
		Epochs: len(v.epochs), Pending: pending, Tolerance: v.plan.Tolerance(), Updated: time.Now()}
}

// ObjectState is one object as the web console lists it.
type ObjectState struct {
	Root   cid.Cid
	Size   uint64
	Coding fungi.Coding
	fungi.ObjectAssessment
}

// Objects assesses every object from the members' liveness and the
// damage reports (no fragment is asked for: a member down counts its
// fragments away). The plan behind it is kept while nothing moves.
func (s *Service) Objects(ctx context.Context) ([]ObjectState, error) {
	v, err := s.look(ctx, false)
	if err != nil {
		return nil, err
	}
	out := make([]ObjectState, 0, len(v.objs))
	for _, o := range v.objs {
		a := v.plan.Assessed[o.Root]
		// small leaves kept in the replicated metadata count as blocks;
		// an object with nothing else has no holders to lose: every
		// member keeps it
		inline := 0
		for c := range o.Manifest.Nodes {
			if c.Prefix().Codec == cid.Raw {
				inline++
			}
		}
		// (an all-inline manifest records no pool: count the members)
		if members := max(len(o.Manifest.Pool), len(v.members)); inline > 0 && a.Blocks == 0 && members > 1 {
			a.Tolerance = members - 1
		}
		a.Blocks += inline
		out = append(out, ObjectState{Root: o.Root, Size: o.Manifest.Size, Coding: o.Manifest.Coding, ObjectAssessment: a})
	}
	return out, nil
}

// Progress is how far a repair pass got.
type Progress struct {
	Blocks    int   `json:"blocks"`
	Total     int   `json:"total"`
	Fragments int64 `json:"fragments"`
	Bytes     int64 `json:"bytes"`
}

// passResult is what a pass did.
type passResult struct {
	Blocks, Skipped, Failed, Unrecoverable int
	Fragments, Bytes                       int64
}

// pass writes every missing fragment of the plan's blocks (those of only
// roots, when given), most at risk first; when it leaves nothing missing
// it marks the pending epochs done.
func (s *Service) pass(ctx context.Context, v *view, only map[cid.Cid]bool, progress func(Progress)) (passResult, error) {
	var res passResult
	byRoot := map[cid.Cid]fungi.Layout{}
	for _, o := range v.objs {
		byRoot[o.Root] = o.Layout
	}
	var work []*fungi.BlockRepair
	for i := range v.plan.Blocks {
		b := &v.plan.Blocks[i]
		if len(b.Missing) > 0 && (only == nil || only[b.Root]) {
			work = append(work, b)
		}
	}
	if len(work) > 0 {
		s.mu.Lock()
		s.running = true
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.running = false
			s.mu.Unlock()
		}()
		res = s.run(ctx, v, work, byRoot, progress)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if res.Failed == 0 && len(v.need) == 0 && v.pending > 0 && only == nil {
		if err := s.node.End(ctx, v.pending); err != nil {
			return res, err
		}
		s.log.Info("repair: epochs done; the replaced members' copies are now surplus", "through", v.pending)
	}
	// damage reports on members that were replaced no longer matter
	if _, replaced := v.lostAndReplaced(); len(replaced) > 0 && only == nil {
		var stale []Damage
		for _, d := range v.damages {
			if slices.Contains(replaced, d.Holder) {
				stale = append(stale, d)
			}
		}
		for i := 0; i < len(stale); i += 4096 {
			if err := s.node.Clear(ctx, stale[i:min(i+4096, len(stale))]); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// run repairs blocks with the configured number of workers (one while
// foreground reads run here).
func (s *Service) run(ctx context.Context, v *view, work []*fungi.BlockRepair, byRoot map[cid.Cid]fungi.Layout, progress func(Progress)) passResult {
	var res passResult
	var mu sync.Mutex
	var next atomic.Int64
	var done atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < s.cfg.Workers; w++ {
		wg.Go(func() {
			for ctx.Err() == nil {
				if w > 0 && s.node.Busy() { // yield to foreground reads
					select {
					case <-ctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
					continue
				}
				i := int(next.Add(1)) - 1
				if i >= len(work) {
					return
				}
				b := work[i]
				frags, bytes, skipped, err := s.repairBlock(ctx, v, b, byRoot[b.Root])
				mu.Lock()
				s.mu.Lock()
				switch {
				case errors.Is(err, fungi.ErrUnavailable) || errors.Is(err, fungi.ErrNotEnoughFragments):
					res.Unrecoverable++
					s.counters.Failed++
				case err != nil:
					res.Failed++
					s.counters.Failed++
					if ctx.Err() == nil {
						s.log.Warn("repair: block not repaired (retried on the next pass)", "block", b.Block.String(), "err", err)
					}
				case skipped:
					res.Skipped++
				default:
					res.Blocks++
					s.counters.Blocks++
				}
				res.Fragments += int64(frags)
				res.Bytes += bytes
				s.counters.Fragments += int64(frags)
				s.counters.Bytes += bytes
				s.mu.Unlock()
				p := Progress{Blocks: int(done.Add(1)), Total: len(work), Fragments: res.Fragments, Bytes: res.Bytes}
				mu.Unlock()
				if progress != nil {
					progress(p)
				}
			}
		})
	}
	wg.Wait()
	if res.Unrecoverable > 0 {
		s.log.Error("repair: blocks with fewer than K fragments left cannot be rebuilt", "blocks", res.Unrecoverable)
	}
	return res
}

// repairBlock re-creates a block's missing fragments: those a damage
// report names always, those a move assigned only if their new holder
// lacks them (a pass cut short by a crash or a leader change repeats no
// write that landed).
func (s *Service) repairBlock(ctx context.Context, v *view, b *fungi.BlockRepair, lay fungi.Layout) (frags int, bytes int64, skipped bool, err error) {
	var todo []int
	for _, i := range b.Missing {
		h := b.Holders[i]
		if _, damaged := v.damages[h+"\x00"+string(b.Keys[i])]; damaged {
			todo = append(todo, i)
			continue
		}
		ok, err := s.node.Store(h).HasFragment(ctx, b.Keys[i])
		if err != nil {
			return 0, 0, false, fmt.Errorf("ask %s: %w", h, err)
		}
		if !ok {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return 0, 0, true, nil
	}
	codec, err := s.node.Codec(b.Coding)
	if err != nil {
		return 0, 0, false, err
	}
	lay.Store = s.node.Store
	rd := fungi.NewReader(codec, b.Coding, lay, 0)
	data, err := rd.Block(ctx, b.Block)
	if err != nil {
		return 0, 0, false, err
	}
	enc, err := codec.Encode(b.Block, data)
	if err != nil {
		return 0, 0, false, err
	}
	defer enc.Release()
	per := map[string][]int{}
	for _, i := range todo {
		per[b.Holders[i]] = append(per[b.Holders[i]], i)
		bytes += int64(len(enc.Fragments[i]))
	}
	if err := s.lim.wait(ctx, int64(len(data))+bytes); err != nil {
		return 0, 0, false, err
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(per))
	for h, idx := range per {
		wg.Go(func() {
			keys, vals := make([][]byte, len(idx)), make([][]byte, len(idx))
			for j, i := range idx {
				keys[j], vals[j] = b.Keys[i], enc.Fragments[i]
			}
			if err := fungi.PutFragments(ctx, s.node.Store(h), keys, vals); err != nil {
				errs <- fmt.Errorf("write to %s: %w", h, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, false, err
	}
	var cleared []Damage
	for _, i := range todo {
		if d, ok := v.damages[b.Holders[i]+"\x00"+string(b.Keys[i])]; ok {
			cleared = append(cleared, d)
		}
	}
	if len(cleared) > 0 {
		if err := s.node.Clear(ctx, cleared); err != nil {
			return 0, 0, false, err
		}
	}
	s.mu.Lock()
	s.counters.Fetched += int64(len(data))
	s.mu.Unlock()
	return len(todo), bytes, false, nil
}

// Report is what a requested repair (or its dry run) found and did.
type Report struct {
	DryRun bool `json:"dry_run"`
	// Moved names the members whose fragments a new epoch moved.
	Moved     []string `json:"moved,omitempty"`
	Blocks    int      `json:"blocks"`    // blocks that needed writes
	Fragments int64    `json:"fragments"` // fragments written (dry run: to write)
	Bytes     int64    `json:"bytes"`
	Repaired  int      `json:"repaired"`
	Failed    int      `json:"failed"`
	// Objects is the health of the objects looked at, after the repair.
	Objects fungi.HealthCounts `json:"objects"`
	// AtRisk and Lost list the roots left without spare, or unreadable.
	AtRisk []string `json:"at_risk,omitempty"`
	Lost   []string `json:"lost,omitempty"`
	// Waiting counts fragments on members down that could not move
	// (partition, or no member to take them).
	Waiting int    `json:"waiting_fragments"`
	Note    string `json:"note,omitempty"`
}

// ErrUnknown: a root asked for is no object of the cluster.
var ErrUnknown = errors.New("not an object of this cluster")

// Repair repairs the given roots (all when none) now: members down count
// as lost at once (the grace is for the monitor), unless that looks like
// a partition.
func (s *Service) Repair(ctx context.Context, roots []cid.Cid, dryRun bool, progress func(Progress)) (Report, error) {
	rep := Report{DryRun: dryRun}
	v, err := s.look(ctx, true)
	if err != nil {
		return rep, err
	}
	var only map[cid.Cid]bool
	if len(roots) > 0 {
		only = map[cid.Cid]bool{}
		known := map[cid.Cid]bool{}
		for _, o := range v.objs {
			known[o.Root] = true
		}
		for _, r := range roots {
			if !known[r] {
				return rep, fmt.Errorf("%s: %w", r, ErrUnknown)
			}
			only[r] = true
		}
	}
	if dryRun {
		rep.Moved = sortedKeys(v.need)
		for _, b := range v.plan.Blocks {
			if only == nil || only[b.Root] {
				if n := len(b.Missing) + countLost(b, v); n > 0 {
					rep.Blocks++
					rep.Fragments += int64(n)
				}
			}
		}
		s.summarise(v, only, &rep)
		return rep, nil
	}
	if len(v.need) > 0 {
		began, err := s.begin(ctx, v, true)
		switch {
		case errors.Is(err, ErrPartition):
			rep.Note = err.Error()
		case err != nil:
			return rep, err
		case began:
			rep.Moved = sortedKeys(v.need)
			if v, err = s.lookAfterBegin(ctx); err != nil {
				return rep, err
			}
		}
	}
	res, err := s.pass(ctx, v, only, progress)
	if err != nil {
		return rep, err
	}
	rep.Blocks, rep.Fragments, rep.Bytes = res.Blocks+res.Failed+res.Unrecoverable, res.Fragments, res.Bytes
	rep.Repaired, rep.Failed = res.Blocks, res.Failed+res.Unrecoverable
	after, err := s.look(ctx, true)
	if err != nil {
		return rep, err
	}
	s.summarise(after, only, &rep)
	return rep, nil
}

// lookAfterBegin looks again once the epoch just begun is applied here.
func (s *Service) lookAfterBegin(ctx context.Context) (*view, error) {
	for i := 0; ; i++ {
		v, err := s.look(ctx, true)
		if err != nil || len(v.need) == 0 || i >= 50 {
			return v, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func countLost(b fungi.BlockRepair, v *view) int {
	n := 0
	for _, i := range b.Stranded {
		if v.lost[b.Holders[i]] {
			n++
		}
	}
	return n
}

func (s *Service) summarise(v *view, only map[cid.Cid]bool, rep *Report) {
	for _, o := range v.objs {
		if only != nil && !only[o.Root] {
			continue
		}
		h := v.plan.Assessed[o.Root].Health
		rep.Objects.Add(h)
		switch h {
		case fungi.AtRisk:
			rep.AtRisk = append(rep.AtRisk, o.Root.String())
		case fungi.Lost:
			rep.Lost = append(rep.Lost, o.Root.String())
		}
	}
	for _, b := range v.plan.Blocks {
		if only == nil || only[b.Root] {
			rep.Waiting += len(b.Stranded)
		}
	}
	if v.plan.Crowded > 0 {
		note := fmt.Sprintf("%d block(s) hold every fragment but with more than one on some node (fewer live members than fragments): degraded until members join", v.plan.Crowded)
		if rep.Note != "" {
			note = rep.Note + "; " + note
		}
		rep.Note = note
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Health returns the cluster's health and the repair's state: the
// leader's last look when it is recent, else a look now (any node can
// answer; members' health is the leader's view).
func (s *Service) Health(ctx context.Context) (Status, error) {
	st := s.Status()
	s.mu.Lock()
	current := s.statusAt == s.node.Version()
	s.mu.Unlock()
	// the monitor's last view, unless an object or epoch came since
	if st.Leader && current && time.Since(st.Updated) < 2*s.cfg.Interval+time.Second {
		return st, nil
	}
	v, err := s.look(ctx, false)
	if err != nil {
		return st, err
	}
	partition := ""
	if len(v.need) > 0 {
		partition = v.partition()
	}
	st.Objects, st.Blocks, st.Backlog, st.Stranded, st.Tolerance = v.plan.Objects, v.plan.Counted, v.plan.Fragments, v.stranded, v.plan.Tolerance()
	st.Lost, st.Replaced = v.lostAndReplaced()
	st.Down, st.Partition, st.Epochs, st.Pending = sortedKeys(v.down), partition, len(v.epochs), 0
	for _, e := range v.epochs {
		if !e.Done {
			st.Pending++
		}
	}
	st.Updated = time.Now()
	return st, nil
}
