package consensus

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"time"
)

// The reasons a repair epoch is opened for (Epoch.Reason). Others (up to
// MaxReasonLen bytes) are kept as given.
const (
	ReasonLost   = "lost"   // unheard for the grace
	ReasonAudit  = "audit"  // failed audits
	ReasonManual = "manual" // an operator asked
)

// Candidate is a member a repair may place fragments on, with its free
// bytes when the repair began.
type Candidate struct {
	ID, Domain string
	Free       uint64
}

// Epoch is one placement change after losses: the fragments that Lost
// held (in objects put before it, see Manifest.Epoch) move to Pool. Where
// exactly each fragment goes is a pure function of the object and the
// epochs (computed by the fungi layer), so an epoch costs O(Lost + Pool)
// bytes of replicated state however many objects it changes.
type Epoch struct {
	Seq    uint64      // 1, 2, ...: assigned when applied (the number of epochs before it + 1)
	Reason string      // ReasonLost, ReasonAudit, ReasonManual
	Lost   []string    // member ids whose fragments move, sorted, distinct, non-empty
	Pool   []Candidate // where they may go, sorted by ID, distinct, may be empty
	Begun  time.Time   // the proposer's clock (the command carries it; Apply reads no clock)
	Done   bool        // every fragment it moved has been written
}

// Damage is a fragment a scrubber or an audit found bad or missing on a
// live holder, to be rewritten in place. A Damage is known by its Holder
// and Key.
type Damage struct {
	Holder string // member id
	Key    []byte // the fragment's store key (20 bytes today; at most MaxFragmentKeyLen)
	Block  string // the block's CID (string form)
	Coding string // e.g. "16/20"; opaque here, at most MaxCodingLen bytes
	Index  int    // fragment index, 0..MaxFragmentIndex
}

// BeginRepair opens the next repair epoch: the fragments the lost members
// hold move to pool. at is the proposer's clock. lost and pool are copied
// and sorted (by ID); they must be distinct and lost must not be empty.
// The epoch's Seq is assigned when it is applied: read it back with
// FSM.Epochs.
func BeginRepair(reason string, lost []string, pool []Candidate, at time.Time) Command {
	lost, pool = slices.Clone(lost), slices.Clone(pool)
	slices.Sort(lost)
	slices.SortFunc(pool, func(a, b Candidate) int { return strings.Compare(a.ID, b.ID) })
	return Command{Op: OpRepairBegin, Key: reason, Lost: lost, Pool: pool, At: at}
}

// EndRepair marks every epoch up to seq (Seq <= seq) done. It is total:
// epochs that do not exist yet are not marked, now or later.
func EndRepair(seq uint64) Command { return Command{Op: OpRepairEnd, Sequence: seq} }

// ReportDamage records damaged fragments (at most MaxDamages). A fragment
// reported again (same Holder and Key) replaces the earlier report; within
// one command the last report of a fragment wins.
func ReportDamage(ds []Damage) Command {
	return Command{Op: OpReportDamage, Damages: slices.Clone(ds)}
}

// ClearDamage forgets damaged fragments (at most MaxDamages), once
// rewritten: only Holder and Key are read (and carried). Fragments not
// reported are ignored.
func ClearDamage(ds []Damage) Command {
	return Command{Op: OpClearDamage, Damages: slices.Clone(ds)}
}

// validateRepair checks the fields of a repair command (c.Op.repair()).
func (c *Command) validateRepair() error {
	switch c.Op {
	case OpRepairBegin:
		if len(c.Key) > MaxReasonLen {
			return invalid("repair-begin: reason of %d bytes (1..%d)", len(c.Key), MaxReasonLen)
		}
		if len(c.Lost) == 0 || len(c.Lost) > MaxRepairMembers {
			return invalid("repair-begin: %d lost members (1..%d)", len(c.Lost), MaxRepairMembers)
		}
		for i, id := range c.Lost {
			if id == "" || len(id) > MaxKeyLen {
				return invalid("repair-begin: a lost member id of %d bytes", len(id))
			}
			if i > 0 && c.Lost[i-1] >= id {
				return invalid("repair-begin: lost members not sorted and distinct at %q", id)
			}
		}
		if len(c.Pool) > MaxRepairMembers {
			return invalid("repair-begin: a pool of %d (max %d)", len(c.Pool), MaxRepairMembers)
		}
		for i, p := range c.Pool {
			if p.ID == "" || len(p.ID) > MaxKeyLen || len(p.Domain) > MaxKeyLen {
				return invalid("repair-begin: a candidate of %d bytes in a domain of %d", len(p.ID), len(p.Domain))
			}
			if i > 0 && c.Pool[i-1].ID >= p.ID {
				return invalid("repair-begin: pool not sorted and distinct at %q", p.ID)
			}
		}
		if !c.At.IsZero() && !unixNano(c.At.UnixNano()).Equal(c.At) {
			return invalid("repair-begin: time %s out of range", c.At.UTC().Format(time.RFC3339))
		}
	case OpReportDamage, OpClearDamage:
		if len(c.Damages) == 0 || len(c.Damages) > MaxDamages {
			return invalid("%s: %d fragments (1..%d)", c.Op, len(c.Damages), MaxDamages)
		}
		for i := range c.Damages {
			d := &c.Damages[i]
			if d.Holder == "" || len(d.Holder) > MaxKeyLen {
				return invalid("%s: a holder of %d bytes", c.Op, len(d.Holder))
			}
			if len(d.Key) == 0 || len(d.Key) > MaxFragmentKeyLen {
				return invalid("%s: a fragment key of %d bytes (1..%d)", c.Op, len(d.Key), MaxFragmentKeyLen)
			}
			if c.Op == OpClearDamage {
				continue
			}
			if d.Block == "" || len(d.Block) > MaxKeyLen {
				return invalid("%s: a block CID of %d bytes", c.Op, len(d.Block))
			}
			if len(d.Coding) > MaxCodingLen {
				return invalid("%s: a coding of %d bytes (max %d)", c.Op, len(d.Coding), MaxCodingLen)
			}
			if d.Index < 0 || d.Index > MaxFragmentIndex {
				return invalid("%s: fragment index %d", c.Op, d.Index)
			}
		}
	}
	return nil
}

// damageKey is the FSM's key of a Damage: its holder, length-prefixed, and
// its fragment key.
func damageKey(holder string, key []byte) string {
	b := make([]byte, 0, binary.MaxVarintLen64+len(holder)+len(key))
	return string(append(appendStr(b, holder), key...))
}

// mutateRepair applies a validated repair command. Epochs are only ever
// appended (a snapshot keeps its own slice header, so its epochs stay as
// they were without a copy) and Done is a watermark (f.epochsDone), which
// EndRepair moves: so nothing a snapshot holds changes in place.
func (f *FSM) mutateRepair(c *Command) {
	switch c.Op {
	case OpRepairBegin:
		f.epochs = append(f.epochs, Epoch{
			Seq:    uint64(len(f.epochs)) + 1,
			Reason: c.Key,
			Lost:   slices.Clone(c.Lost),
			Pool:   slices.Clone(c.Pool),
			Begun:  c.At,
		})
	case OpRepairEnd:
		f.epochsDone = max(f.epochsDone, min(c.Sequence, uint64(len(f.epochs))))
	case OpReportDamage:
		for _, d := range c.Damages {
			d.Key = bytes.Clone(d.Key)
			f.damages.set(damageKey(d.Holder, d.Key), d)
		}
	case OpClearDamage:
		for _, d := range c.Damages {
			f.damages.del(damageKey(d.Holder, d.Key))
		}
	}
}

// Epochs returns every repair epoch, by Seq (Seq i is at index i-1).
// The caller may keep and modify what it gets.
func (f *FSM) Epochs() []Epoch {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Epoch, len(f.epochs))
	for i, e := range f.epochs {
		e.Lost, e.Pool = slices.Clone(e.Lost), slices.Clone(e.Pool)
		e.Done = e.Seq <= f.epochsDone
		out[i] = e
	}
	return out
}

// EpochCount returns the number of repair epochs: the Epoch a manifest
// put now would get.
func (f *FSM) EpochCount() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return uint64(len(f.epochs))
}

// Damages returns every damaged fragment reported and not cleared, sorted
// by Holder, then Key. The caller may keep and modify what it gets.
func (f *FSM) Damages() []Damage {
	f.mu.RLock()
	out := make([]Damage, 0, f.damages.len())
	f.damages.each(func(_ string, d Damage) bool {
		d.Key = bytes.Clone(d.Key)
		out = append(out, d)
		return true
	})
	f.mu.RUnlock()
	slices.SortFunc(out, compareDamage)
	return out
}

func compareDamage(a, b Damage) int {
	if c := strings.Compare(a.Holder, b.Holder); c != 0 {
		return c
	}
	return bytes.Compare(a.Key, b.Key)
}

// DamageCount returns the number of damaged fragments reported and not
// cleared.
func (f *FSM) DamageCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.damages.len()
}
