package consensus

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// DedupWindow is how many applied RequestIDs the FSM remembers: a retry is
// recognised when fewer than DedupWindow other writes were applied since
// the first attempt, ~100 s at 5,000 writes/s and ~15 s (one ApplyTimeout)
// at the 34,000/s a saturated cluster reaches here. It costs ~30 MB when
// full. It is part of the replicated state machine: every replica must
// use the same value.
const DedupWindow = 1 << 19

// Member is one node of the storage pool, admitted through the join
// protocol (or AddVoter/AddNonvoter).
type Member struct {
	ID       string    // libp2p peer id
	Addrs    []string  // multiaddrs it was last seen at
	Capacity uint64    // ZDB capacity in bytes
	Used     uint64    // ZDB bytes in use
	Domain   string    // failure domain / region tag
	Voter    bool      // a raft voter (kept in step by the leader's policy)
	Joined   time.Time // when it was first admitted
}

// Manifest is an object's manifest as the FSM stores it: opaque bytes
// (the fungi layer gives them meaning) and the object's size.
type Manifest struct {
	Root string
	Size uint64
	Data []byte // shared with the FSM: do not modify
	// Epoch is the number of repair epochs there were when the manifest
	// was put (applied; a put again gets the count of then): the epochs
	// with Seq > Epoch move its fragments.
	Epoch uint64
}

// IPNSRecord is a signed IPNS record as the FSM keeps it. The FSM does
// not parse the record: Sequence and EOL are what the node that took the
// write read from it after verifying it.
type IPNSRecord struct {
	Name     string // the IPNS routing key: "/ipns/" + the binary peer id
	Sequence uint64
	EOL      time.Time
	Data     []byte // the marshalled record; shared with the FSM: do not modify
}

// Result is the outcome of one committed command.
type Result struct {
	// Index is the raft log index the command was applied at: wait for it
	// with Node.WaitApplied to read a write back on another node.
	Index uint64
	// Duplicate: the RequestID had been applied before (at Index); this
	// retry changed nothing.
	Duplicate bool
}

// Stats counts what the FSM holds.
type Stats struct {
	Members       int
	Manifests     int
	ManifestBytes uint64 // sum of manifest data lengths
	Pins          int
	Paths         int // entries of the shared tree (links and directories; the root not counted)
	IPNSRecords   int
	Epochs        int // repair epochs
	EpochsDone    int // of them, those marked done
	Damages       int // damaged fragments reported and not cleared
	AppliedIndex  uint64
	Commands      uint64 // commands applied (duplicates not counted)
	Duplicates    uint64 // retried commands recognised and skipped
	DedupEntries  int
	// Ops counts the operations applied, by name (a Batch counts once as
	// "batch" and once per command in it). A retried write recognised by
	// its RequestID is not counted again, so e.g. Ops["put-manifest"]
	// equals Manifests while no manifest is overwritten or deleted.
	Ops map[string]uint64
}

type manifestRec struct {
	size  uint64
	data  []byte
	epoch uint64 // repair epochs when it was put
}

type ipnsRec struct {
	seq  uint64
	eol  time.Time
	data []byte
}

// better reports whether r beats old by Kubo's rule: a higher sequence,
// or at an equal sequence a later EOL. A tie is not better, so the
// record already stored stays.
func (r *ipnsRec) better(old ipnsRec) bool {
	if r.seq != old.seq {
		return r.seq > old.seq
	}
	return r.eol.After(old.eol)
}

type dedupEntry struct {
	id    RequestID
	index uint64
}

// FSM is the replicated state machine: pool membership, manifests, pins,
// the shared file tree, IPNS records, repair epochs, damaged fragments
// and the table of recently applied RequestIDs. It is the only owner of that state. raft calls
// Apply/ApplyBatch, Snapshot and Restore from its FSM goroutine (Persist
// and Release run on raft's snapshot goroutine); every read accessor is
// safe for any number of concurrent callers and returns data the caller
// may keep.
//
// Apply is deterministic: it reads nothing but the log entry and the
// state (no clock, no randomness), so every replica holds the same state
// at the same index.
type FSM struct {
	mu            sync.RWMutex
	members       map[string]Member
	manifests     cowMap[manifestRec]
	pins          cowMap[struct{}]
	tree          *fileTree
	ipns          cowMap[ipnsRec]
	manifestBytes uint64
	epochs        []Epoch // only appended to (see mutateRepair); Done is not set
	epochsDone    uint64  // epochs 1..epochsDone are done
	damages       cowMap[Damage]

	seen map[RequestID]uint64 // RequestID -> index it was applied at
	ring []dedupEntry         // the same ids, FIFO; oldest at ringHead once full
	head int

	applied, commands, duplicates uint64
	ops                           [opCount]uint64

	frozen bool   // a snapshot owns the cowMaps' base maps
	gen    uint64 // bumped by Restore; a stale snapshot must not thaw

	notify   chan struct{} // closed and replaced whenever applied moves
	treeCh   chan struct{} // closed and replaced whenever the tree changes
	memberCh chan struct{} // a member changed (buffer 1; best effort)
}

// NewFSM returns an empty FSM.
func NewFSM() *FSM {
	return &FSM{
		members:   make(map[string]Member),
		manifests: newCowMap[manifestRec](0),
		pins:      newCowMap[struct{}](0),
		tree:      newFileTree(),
		ipns:      newCowMap[ipnsRec](0),
		damages:   newCowMap[Damage](0),
		seen:      make(map[RequestID]uint64),
		notify:    make(chan struct{}),
		treeCh:    make(chan struct{}),
		memberCh:  make(chan struct{}, 1),
	}
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// outcome is one command's result in an applied entry.
type outcome struct {
	res Result
	err error
}

// applyResponse is what Apply returns to raft (and raft to the proposer's
// ApplyFuture): one outcome per command of the entry, or err when the
// entry itself could not be decoded.
type applyResponse struct {
	outs []outcome
	err  error
}

// Apply applies one committed log entry. raft calls it (via ApplyBatch).
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed log entries in order, under one lock.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	decoded := make([][]Command, len(logs))
	errs := make([]error, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			decoded[i], errs[i] = decodeEntry(l.Data)
		}
	}
	out := make([]interface{}, len(logs))
	f.mu.Lock()
	defer f.mu.Unlock()
	membersChanged := false
	treeRev := f.tree.rev
	for i, l := range logs {
		if l.Index > f.applied {
			f.applied = l.Index
		}
		if l.Type != raft.LogCommand {
			continue
		}
		if errs[i] != nil {
			out[i] = applyResponse{err: errs[i]}
			continue
		}
		outs := make([]outcome, len(decoded[i]))
		for j := range decoded[i] {
			c := &decoded[i][j]
			outs[j] = f.applyOne(c, l.Index)
			membersChanged = membersChanged || touchesMembers(c)
		}
		out[i] = applyResponse{outs: outs}
	}
	close(f.notify)
	f.notify = make(chan struct{})
	if f.tree.rev != treeRev {
		close(f.treeCh)
		f.treeCh = make(chan struct{})
	}
	if membersChanged {
		select {
		case f.memberCh <- struct{}{}:
		default:
		}
	}
	return out
}

func touchesMembers(c *Command) bool {
	switch c.Op {
	case OpPutMember, OpRemoveMember, OpSetVoter:
		return true
	case OpBatch:
		for i := range c.Batch {
			if touchesMembers(&c.Batch[i]) {
				return true
			}
		}
	}
	return false
}

func (f *FSM) applyOne(c *Command, index uint64) outcome {
	if !c.RequestID.IsZero() {
		if first, ok := f.seen[c.RequestID]; ok {
			f.duplicates++
			return outcome{res: Result{Index: first, Duplicate: true}}
		}
	}
	if err := c.Validate(); err != nil {
		return outcome{err: err}
	}
	switch {
	case c.Op == OpBatch:
		f.ops[OpBatch]++
		for i := range c.Batch {
			f.mutate(&c.Batch[i])
		}
	case c.Op.treeEdit():
		// may be refused: a refusal changes nothing, is not counted and
		// is not remembered (a retry is checked again)
		if err := f.editTree(c); err != nil {
			return outcome{err: err}
		}
		f.ops[c.Op]++
	default:
		f.mutate(c)
	}
	f.commands++
	if !c.RequestID.IsZero() {
		f.remember(c.RequestID, index)
	}
	return outcome{res: Result{Index: index}}
}

func (f *FSM) remember(id RequestID, index uint64) {
	e := dedupEntry{id: id, index: index}
	if len(f.ring) < DedupWindow {
		f.ring = append(f.ring, e)
	} else {
		delete(f.seen, f.ring[f.head].id)
		f.ring[f.head] = e
		f.head = (f.head + 1) % DedupWindow
	}
	f.seen[id] = index
}

// editTree applies a validated tree command, or refuses it.
func (f *FSM) editTree(c *Command) error {
	switch c.Op {
	case OpMkdir:
		return f.tree.mkdir(c.Key, c.Parents)
	case OpFilesLink:
		return f.tree.link(c.Key, c.Target, c.Info, c.Parents, c.Replace)
	case OpFilesMove:
		return f.tree.move(c.Key, c.Target)
	case OpFilesRemove:
		return f.tree.remove(c.Key, c.Recursive)
	case OpFilesCopy:
		return f.tree.copy(c.Key, c.Target, c.Parents)
	}
	panic("consensus: editTree " + c.Op.String())
}

// mutate applies one validated, non-batch command of a total Op. It cannot fail.
func (f *FSM) mutate(c *Command) {
	if c.Op == OpPutManifest {
		if old, ok := f.manifests.get(c.Key); ok && old.size == c.Size && bytes.Equal(old.data, c.Data) {
			// The same manifest again: an add sent again by its client
			// after the first attempt committed unacknowledged (across a
			// failover), a new request id that dedup cannot know. Nothing
			// changes, and the manifest keeps the epoch its fragments
			// were written in; it is not counted as a put.
			return
		}
	}
	f.ops[c.Op]++
	switch c.Op {
	case OpPutMember:
		m := c.Member
		m.ID = c.Key
		if old, ok := f.members[c.Key]; ok {
			m.Joined, m.Voter = old.Joined, old.Voter
		}
		f.members[c.Key] = m
	case OpRemoveMember:
		delete(f.members, c.Key)
	case OpSetUsage:
		if m, ok := f.members[c.Key]; ok {
			m.Capacity, m.Used = c.Member.Capacity, c.Member.Used
			f.members[c.Key] = m
		}
	case OpAddUsage:
		if m, ok := f.members[c.Key]; ok {
			switch {
			case c.Delta >= 0 && m.Used+uint64(c.Delta) >= m.Used:
				m.Used += uint64(c.Delta)
			case c.Delta >= 0:
				m.Used = ^uint64(0)
			case uint64(-c.Delta) >= m.Used || c.Delta == -1<<63:
				m.Used = 0
			default:
				m.Used -= uint64(-c.Delta)
			}
			f.members[c.Key] = m
		}
	case OpSetVoter:
		if m, ok := f.members[c.Key]; ok {
			m.Voter = c.Member.Voter
			f.members[c.Key] = m
		}
	case OpPutManifest:
		old, existed := f.manifests.set(c.Key, manifestRec{size: c.Size, data: c.Data, epoch: uint64(len(f.epochs))})
		if existed {
			f.manifestBytes -= uint64(len(old.data))
		}
		f.manifestBytes += uint64(len(c.Data))
	case OpDeleteManifest:
		if old, existed := f.manifests.del(c.Key); existed {
			f.manifestBytes -= uint64(len(old.data))
		}
	case OpPin:
		f.pins.set(c.Key, struct{}{})
	case OpUnpin:
		f.pins.del(c.Key)
	case OpLink:
		f.tree.linkTotal(c.Key, c.Target)
	case OpUnlink:
		f.tree.unlinkTotal(c.Key)
	case OpPutIPNS:
		rec := ipnsRec{seq: c.Sequence, eol: c.EOL, data: c.Data}
		if old, ok := f.ipns.get(c.Key); !ok || rec.better(old) {
			f.ipns.set(c.Key, rec)
		}
	case OpRepairBegin, OpRepairEnd, OpReportDamage, OpClearDamage:
		f.mutateRepair(c)
	default:
		panic("consensus: mutate " + c.Op.String()) // Validate let it through
	}
}

// Manifest returns the manifest of root.
func (f *FSM) Manifest(root string) (Manifest, bool) {
	f.mu.RLock()
	rec, ok := f.manifests.get(root)
	f.mu.RUnlock()
	if !ok {
		return Manifest{}, false
	}
	return Manifest{Root: root, Size: rec.size, Data: rec.data, Epoch: rec.epoch}, true
}

// RangeManifests calls fn for every manifest, in no order, until fn
// returns false. It holds the read lock: fn must be quick and must not
// call into the Node or write to the FSM.
func (f *FSM) RangeManifests(fn func(Manifest) bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	f.manifests.each(func(k string, rec manifestRec) bool {
		return fn(Manifest{Root: k, Size: rec.size, Data: rec.data, Epoch: rec.epoch})
	})
}

// Members returns every member, sorted by ID.
func (f *FSM) Members() []Member {
	f.mu.RLock()
	out := make([]Member, 0, len(f.members))
	for _, m := range f.members {
		m.Addrs = slices.Clone(m.Addrs)
		out = append(out, m)
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Member returns the member with this peer id.
func (f *FSM) Member(id string) (Member, bool) {
	f.mu.RLock()
	m, ok := f.members[id]
	f.mu.RUnlock()
	m.Addrs = slices.Clone(m.Addrs)
	return m, ok
}

// IsMember reports whether id is a member: the access check for forwarded
// writes and raft streams.
func (f *FSM) IsMember(id string) bool {
	f.mu.RLock()
	_, ok := f.members[id]
	f.mu.RUnlock()
	return ok
}

// Pinned reports whether cid is pinned.
func (f *FSM) Pinned(cid string) bool {
	f.mu.RLock()
	_, ok := f.pins.get(cid)
	f.mu.RUnlock()
	return ok
}

// Pins returns the pinned CIDs, sorted.
func (f *FSM) Pins() []string {
	f.mu.RLock()
	out := make([]string, 0, f.pins.len())
	f.pins.each(func(k string, _ struct{}) bool { out = append(out, k); return true })
	f.mu.RUnlock()
	slices.Sort(out)
	return out
}

// IPNSRecord returns the marshalled IPNS record kept for name (the IPNS
// routing key, see PutIPNS). The bytes are shared: do not modify them.
func (f *FSM) IPNSRecord(name string) ([]byte, bool) {
	r, ok := f.IPNS(name)
	return r.Data, ok
}

// IPNS returns the IPNS record kept for name with its sequence and EOL.
func (f *FSM) IPNS(name string) (IPNSRecord, bool) {
	f.mu.RLock()
	rec, ok := f.ipns.get(name)
	f.mu.RUnlock()
	if !ok {
		return IPNSRecord{}, false
	}
	return IPNSRecord{Name: name, Sequence: rec.seq, EOL: rec.eol, Data: rec.data}, true
}

// RangeIPNS calls fn for every IPNS record, in no order, until fn returns
// false. It holds the read lock: fn must be quick and must not call into
// the Node or write to the FSM.
func (f *FSM) RangeIPNS(fn func(IPNSRecord) bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	f.ipns.each(func(k string, rec ipnsRec) bool {
		return fn(IPNSRecord{Name: k, Sequence: rec.seq, EOL: rec.eol, Data: rec.data})
	})
}

// Stats counts what the FSM holds.
func (f *FSM) Stats() Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return Stats{
		Members:       len(f.members),
		Manifests:     f.manifests.len(),
		ManifestBytes: f.manifestBytes,
		Pins:          f.pins.len(),
		Paths:         f.tree.entries,
		IPNSRecords:   f.ipns.len(),
		Epochs:        len(f.epochs),
		EpochsDone:    int(f.epochsDone),
		Damages:       f.damages.len(),
		AppliedIndex:  f.applied,
		Commands:      f.commands,
		Duplicates:    f.duplicates,
		DedupEntries:  len(f.ring),
		Ops:           f.opsMap(),
	}
}

func (f *FSM) opsMap() map[string]uint64 {
	m := make(map[string]uint64)
	for op, n := range f.ops {
		if n > 0 {
			m[Op(op).String()] = n
		}
	}
	return m
}

// AppliedIndex is the index of the last log entry applied here.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// appliedWatch returns the applied index and a channel closed when it moves.
func (f *FSM) appliedWatch() (uint64, <-chan struct{}) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied, f.notify
}

// errSnapshotInProgress: raft takes one snapshot at a time, so this only
// happens when a caller outside raft asks for a second one.
var errSnapshotInProgress = errors.New("consensus: a snapshot is already in progress")

// Snapshot freezes the state in O(1): the big maps and the tree become
// read-only for the snapshot and later writes go to overlays (the tree:
// copies of the nodes they change) until Release. Only the member table
// and the dedup ring (both small) are copied; the repair epochs are only
// ever appended to, so the snapshot keeps the slice as it is.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		return nil, errSnapshotInProgress
	}
	f.frozen = true
	st := &snapState{
		applied:       f.applied,
		commands:      f.commands,
		ops:           f.ops,
		duplicates:    f.duplicates,
		manifestBytes: f.manifestBytes,
		members:       maps.Clone(f.members),
		manifests:     f.manifests.freeze(),
		pins:          f.pins.freeze(),
		treeRev:       f.tree.rev,
		treeEntries:   uint64(f.tree.entries),
		tree:          f.tree.freeze(),
		ipns:          f.ipns.freeze(),
		epochs:        f.epochs[:len(f.epochs):len(f.epochs)],
		epochsDone:    f.epochsDone,
		damages:       f.damages.freeze(),
		dedup:         make([]dedupEntry, 0, len(f.ring)),
	}
	st.dedup = append(st.dedup, f.ring[f.head:]...)
	st.dedup = append(st.dedup, f.ring[:f.head]...)
	return &fsmSnapshot{f: f, gen: f.gen, st: st}, nil
}

func (f *FSM) release(gen uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if gen != f.gen || !f.frozen {
		return // a Restore replaced the state the snapshot froze
	}
	f.manifests.thaw()
	f.pins.thaw()
	f.tree.thaw()
	f.ipns.thaw()
	f.damages.thaw()
	f.frozen = false
}

type fsmSnapshot struct {
	f    *FSM
	gen  uint64
	st   *snapState
	once sync.Once
}

// Persist streams the frozen state to sink (raft's snapshot goroutine,
// concurrently with Apply).
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := writeSnapshot(sink, s.st); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release folds the writes made during Persist back into the state.
func (s *fsmSnapshot) Release() {
	s.once.Do(func() { s.f.release(s.gen) })
}

// Restore replaces the state with a snapshot. Nothing changes unless the
// whole snapshot reads and its checksum matches.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readSnapshot(rc, restoreLimits)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	f.frozen = false
	f.members = st.members
	f.manifests = cowMap[manifestRec]{base: st.manifests}
	f.pins = cowMap[struct{}]{base: st.pins}
	f.tree = &fileTree{root: st.tree, rev: st.treeRev, entries: int(st.treeEntries), floor: st.treeRev}
	f.ipns = cowMap[ipnsRec]{base: st.ipns}
	f.epochs, f.epochsDone = st.epochs, st.epochsDone
	f.damages = cowMap[Damage]{base: st.damages}
	f.manifestBytes = st.manifestBytes
	f.applied, f.commands, f.duplicates = st.applied, st.commands, st.duplicates
	f.ops = st.ops
	f.seen = make(map[RequestID]uint64, len(st.dedup))
	f.ring = make([]dedupEntry, 0, min(len(st.dedup)+1024, DedupWindow))
	f.head = 0
	for _, e := range st.dedup {
		f.remember(e.id, e.index)
	}
	close(f.notify)
	f.notify = make(chan struct{})
	close(f.treeCh)
	f.treeCh = make(chan struct{})
	select {
	case f.memberCh <- struct{}{}:
	default:
	}
	return nil
}
