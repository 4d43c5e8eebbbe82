package consensus

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Op names what a Command does to the replicated state.
type Op uint8

// The operations. The numbers are part of the log format: never renumber.
const (
	opInvalid        Op = iota
	OpPutMember         // admit or update a member (Key = peer id, Member)
	OpRemoveMember      // drop a member (Key)
	OpSetUsage          // set a member's Capacity and Used (Key, Member.Capacity, Member.Used)
	OpAddUsage          // add Delta to a member's Used, clamped at 0 (Key, Delta)
	OpSetVoter          // record a member's raft suffrage (Key, Member.Voter)
	OpPutManifest       // store an object manifest (Key = root CID, Size, Data)
	OpDeleteManifest    // drop a manifest (Key)
	OpPin               // pin a CID (Key)
	OpUnpin             // unpin a CID (Key)
	OpLink              // logs before FilesLink: link a path, with parents, replacing what is there (Key = path, Target)
	OpUnlink            // logs before FilesRemove: remove a path and what is below, if present (Key)
	OpBatch             // apply Batch atomically: all of it or none of it
	OpPutIPNS           // keep a signed IPNS record if it beats the stored one (Key = routing key, Sequence, EOL, Data)
	OpMkdir             // make a directory of the tree (Key = path, Parents)
	OpFilesLink         // link a path to a CID (Key = path, Target, Info, Parents, Replace)
	OpFilesMove         // move a tree entry (Key = source, Target = destination)
	OpFilesRemove       // remove a tree entry (Key = path, Recursive)
	OpFilesCopy         // copy a tree entry (Key = source, Target = destination, Parents)
	OpRepairBegin       // open the next repair epoch (Key = reason, Lost, Pool, At)
	OpRepairEnd         // mark the repair epochs up to Sequence done (no Key)
	OpReportDamage      // record damaged fragments (Damages; no Key)
	OpClearDamage       // forget damaged fragments, by Holder and Key (Damages; no Key)
	opCount
)

var opNames = [...]string{
	opInvalid: "invalid", OpPutMember: "put-member", OpRemoveMember: "remove-member",
	OpSetUsage: "set-usage", OpAddUsage: "add-usage", OpSetVoter: "set-voter",
	OpPutManifest: "put-manifest", OpDeleteManifest: "delete-manifest",
	OpPin: "pin", OpUnpin: "unpin", OpLink: "link", OpUnlink: "unlink", OpBatch: "batch",
	OpPutIPNS: "put-ipns", OpMkdir: "mkdir", OpFilesLink: "files-link", OpFilesMove: "files-move",
	OpFilesRemove: "files-remove", OpFilesCopy: "files-copy",
	OpRepairBegin: "repair-begin", OpRepairEnd: "repair-end",
	OpReportDamage: "report-damage", OpClearDamage: "clear-damage",
}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// treeEdit reports whether o is one of the tree commands that can be
// refused (OpMkdir .. OpFilesCopy).
func (o Op) treeEdit() bool { return o >= OpMkdir && o <= OpFilesCopy }

// repair reports whether o is one of the repair commands (OpRepairBegin ..
// OpClearDamage).
func (o Op) repair() bool { return o >= OpRepairBegin && o <= OpClearDamage }

// keyless reports whether o carries no Key (its encoding holds an empty one).
func (o Op) keyless() bool { return o >= OpRepairEnd && o <= OpClearDamage }

// Limits on what one command may carry. They bound the decoder too.
const (
	MaxKeyLen       = 4 << 10  // a peer id, CID or tree path
	MaxManifestSize = 64 << 20 // one manifest's bytes
	MaxBatchLen     = 1 << 16  // commands in one Batch
	MaxAddrs        = 64       // addresses of one member
	// MaxIPNSRecordSize bounds one IPNS record, as the IPNS spec (and
	// boxo's ipns.MaxRecordSize) does.
	MaxIPNSRecordSize = 10 << 10
	// MaxEntrySize bounds one encoded log entry (and one forwarded request).
	MaxEntrySize = MaxManifestSize + 1<<20
	// MaxReasonLen bounds a repair epoch's reason.
	MaxReasonLen = 32
	// MaxRepairMembers bounds the Lost and the Pool of one repair epoch.
	MaxRepairMembers = 1 << 14
	// MaxDamages bounds the Damage entries of one report or clear.
	MaxDamages = 4096
	// MaxFragmentKeyLen bounds a damaged fragment's store key.
	MaxFragmentKeyLen = 64
	// MaxCodingLen bounds a damaged fragment's coding text.
	MaxCodingLen = 32
	// MaxFragmentIndex is the largest fragment index a Damage may name.
	MaxFragmentIndex = 1<<16 - 1
)

// RequestID names one client write. The FSM remembers the ids of the last
// DedupWindow writes it applied, so a write retried with the same id (after
// a leader change, say) is applied once and the retry gets the first
// application's Result with Duplicate set. The zero id disables this.
type RequestID [16]byte

// NewRequestID returns a random RequestID.
func NewRequestID() RequestID {
	var id RequestID
	rand.Read(id[:]) // never fails (crypto/rand panics instead)
	return id
}

// IsZero reports whether id is the zero RequestID.
func (id RequestID) IsZero() bool { return id == RequestID{} }

func (id RequestID) String() string { return hex.EncodeToString(id[:]) }

// Command is one change to the replicated state. Build it with the
// constructors (PutManifest, Link, Batch, ...); which fields an Op reads is
// listed with the Op. Apply gives a Command without a RequestID a fresh one.
//
// Every Op but the tree commands (Mkdir, FilesLink, FilesMove, FilesRemove,
// FilesCopy) is total: it cannot fail against any state (removing what is not there,
// or updating the usage of an unknown member, does nothing), so a Batch is
// atomic by construction once Validate passed. The tree commands are
// checked against the tree when applied and may be refused (ErrTreeConflict);
// Validate keeps them out of batches.
type Command struct {
	Op        Op
	RequestID RequestID
	Key       string      // peer id, manifest root, pinned CID, tree path, IPNS routing key or repair reason
	Target    string      // OpLink, OpFilesLink: the CID the path names; OpFilesMove, OpFilesCopy: the destination
	Info      LinkInfo    // OpFilesLink
	Parents   bool        // OpMkdir, OpFilesLink, OpFilesCopy: create missing parent directories
	Replace   bool        // OpFilesLink: replace an existing link
	Recursive bool        // OpFilesRemove: remove a directory with everything in it
	Size      uint64      // OpPutManifest: the object's size in bytes
	Data      []byte      // OpPutManifest: the manifest; OpPutIPNS: the record; opaque here
	Delta     int64       // OpAddUsage
	Member    Member      // OpPutMember, OpSetUsage (Capacity, Used), OpSetVoter (Voter)
	Batch     []Command   // OpBatch: applied all together; their RequestIDs are ignored
	Sequence  uint64      // OpPutIPNS: the record's sequence number; OpRepairEnd: the last epoch done
	EOL       time.Time   // OpPutIPNS: the record's validity (end of life)
	Lost      []string    // OpRepairBegin: members whose fragments move, sorted, distinct
	Pool      []Candidate // OpRepairBegin: where they may go, sorted by ID, distinct
	At        time.Time   // OpRepairBegin: when the repair began, by the proposer's clock
	Damages   []Damage    // OpReportDamage; OpClearDamage (Holder and Key only)
}

// PutMember admits m (or updates its addresses, capacity, usage and
// domain). An existing member keeps its Joined time and Voter flag.
func PutMember(m Member) Command { return Command{Op: OpPutMember, Key: m.ID, Member: m} }

// RemoveMember drops a member; the leader then removes it from raft.
func RemoveMember(id string) Command { return Command{Op: OpRemoveMember, Key: id} }

// SetUsage records a member's ZDB capacity and usage.
func SetUsage(id string, capacity, used uint64) Command {
	return Command{Op: OpSetUsage, Key: id, Member: Member{Capacity: capacity, Used: used}}
}

// AddUsage adds delta (negative frees) to a member's usage, clamped at 0.
// It is not idempotent: a retry is only safe with the same RequestID.
func AddUsage(id string, delta int64) Command { return Command{Op: OpAddUsage, Key: id, Delta: delta} }

// SetVoter records whether a member is a raft voter (the leader's policy
// keeps this in step with the raft configuration).
func SetVoter(id string, voter bool) Command {
	return Command{Op: OpSetVoter, Key: id, Member: Member{Voter: voter}}
}

// PutManifest stores the manifest of the object with this root CID.
func PutManifest(root string, size uint64, data []byte) Command {
	return Command{Op: OpPutManifest, Key: root, Size: size, Data: data}
}

// DeleteManifest drops the manifest of root.
func DeleteManifest(root string) Command { return Command{Op: OpDeleteManifest, Key: root} }

// Pin pins a CID.
func Pin(cid string) Command { return Command{Op: OpPin, Key: cid} }

// Unpin unpins a CID.
func Unpin(cid string) Command { return Command{Op: OpUnpin, Key: cid} }

// Link is the link of logs written before FilesLink: it binds a path of
// the shared tree (absolute and clean, "/a/b") to a CID, creating missing
// parents and replacing whatever is in the way (a directory at p, links
// where p needs directories). It never fails. New code uses FilesLink.
func Link(p, cid string) Command { return Command{Op: OpLink, Key: p, Target: cid} }

// Unlink is the remove of logs written before FilesRemove: it removes a
// path and everything below it, if present. It never fails. New code uses
// FilesRemove.
func Unlink(p string) Command { return Command{Op: OpUnlink, Key: p} }

// Mkdir makes directory p of the shared tree. An existing directory is
// refused (ErrTreeExists) unless parents, and so is an existing link
// (always). A missing parent is created if parents, else refused
// (ErrTreeNotFound); a parent that is a link is refused (ErrTreeNotDir).
func Mkdir(p string, parents bool) Command {
	return Command{Op: OpMkdir, Key: p, Parents: parents}
}

// FilesLink binds p to target (a CID string, kept as given) with what the
// proposer found it to be. Parents are handled as by Mkdir. An existing
// link is replaced if replace, else refused (ErrTreeExists); an existing
// directory is always refused (ErrTreeExists).
func FilesLink(p, target string, info LinkInfo, parents, replace bool) Command {
	return Command{Op: OpFilesLink, Key: p, Target: target, Info: info, Parents: parents, Replace: replace}
}

// FilesMove moves the entry at src (a link, or a directory with all it
// holds) to dst, or into dst as dst/base(src) when dst is a directory, as
// mv and Kubo's files mv do. Refused: src missing (ErrTreeNotFound), src
// "/", dst the same as src or inside it (ErrTreeInvalid), the destination
// taken (ErrTreeExists), its parent missing (ErrTreeNotFound; no -p) or a
// link (ErrTreeNotDir).
func FilesMove(src, dst string) Command { return Command{Op: OpFilesMove, Key: src, Target: dst} }

// FilesRemove removes the entry at p. A directory needs recursive, even an
// empty one, as with Kubo (else ErrTreeNotEmpty); a missing p is refused
// (ErrTreeNotFound), and so is "/" (ErrTreeInvalid).
func FilesRemove(p string, recursive bool) Command {
	return Command{Op: OpFilesRemove, Key: p, Recursive: recursive}
}

// FilesCopy copies the entry at src (a link, or a directory with all it
// holds) to dst, as Kubo's files cp does within MFS; the copy is
// independent of the source afterwards, and cheap (a directory of any size
// is copied in O(1), sharing what it holds until either side changes).
// dst must not exist (ErrTreeExists; there is no copying into an existing
// directory: the caller appends base(src) for that). A missing parent of
// dst is created if parents, else refused (ErrTreeNotFound); a parent that
// is a link is refused (ErrTreeNotDir). Refused too: src missing
// (ErrTreeNotFound), src "/" or a directory copied to itself or inside
// itself (ErrTreeInvalid).
func FilesCopy(src, dst string, parents bool) Command {
	return Command{Op: OpFilesCopy, Key: src, Target: dst, Parents: parents}
}

// PutIPNS offers a signed IPNS record for a name. name is the IPNS
// routing key: "/ipns/" followed by the binary peer id (multihash) of the
// name's key, as libp2p's routing.ValueStore and boxo's namesys spell it.
// seq and eol are the record's sequence number and validity, which the
// node taking the write extracted after verifying the record: the FSM
// neither parses nor verifies the record (only members may write).
//
// The FSM keeps the record if it has none for name or if it is better by
// Kubo's rule: a higher sequence wins, at an equal sequence the later EOL
// wins, and a tie keeps the record already stored. A record that loses
// changes nothing (the command still succeeds: read the record back to
// learn which one is kept).
func PutIPNS(name string, seq uint64, eol time.Time, record []byte) Command {
	return Command{Op: OpPutIPNS, Key: name, Sequence: seq, EOL: eol, Data: record}
}

// IPNSPrefix starts every IPNS routing key.
const IPNSPrefix = "/ipns/"

// The EOLs a record can state: IPNS validity is an RFC 3339 time, years
// 0000 to 9999.
var (
	minEOL = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	maxEOL = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
)

// Batch groups commands that are applied atomically, as one write with one
// RequestID: readers see all of them or none.
func Batch(cmds ...Command) Command { return Command{Op: OpBatch, Batch: cmds} }

// ErrInvalidCommand is wrapped by every error about a malformed command.
// Such a write is refused before anything is proposed, and retrying it
// cannot help.
var ErrInvalidCommand = errors.New("consensus: invalid command")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidCommand, fmt.Sprintf(format, args...))
}

// Validate checks c without looking at any state. The FSM runs the same
// checks on every replica, so an invalid command is refused the same way
// everywhere.
func (c *Command) Validate() error { return c.validate(0) }

func (c *Command) validate(depth int) error {
	if c.Op == OpBatch {
		if depth > 0 {
			return invalid("nested batch")
		}
		if len(c.Batch) == 0 || len(c.Batch) > MaxBatchLen {
			return invalid("batch of %d commands (1..%d)", len(c.Batch), MaxBatchLen)
		}
		for i := range c.Batch {
			if err := c.Batch[i].validate(depth + 1); err != nil {
				return fmt.Errorf("batch command %d: %w", i, err)
			}
		}
		return nil
	}
	if c.Op == opInvalid || c.Op >= opCount {
		return invalid("unknown op %d", uint8(c.Op))
	}
	switch {
	case c.Op.keyless():
		if c.Key != "" {
			return invalid("%s: a key (%d bytes)", c.Op, len(c.Key))
		}
	case c.Key == "" || len(c.Key) > MaxKeyLen:
		return invalid("%s: key of %d bytes (1..%d)", c.Op, len(c.Key), MaxKeyLen)
	}
	switch c.Op {
	case OpRepairBegin, OpRepairEnd, OpReportDamage, OpClearDamage:
		return c.validateRepair()
	case OpPutMember:
		if c.Member.ID != "" && c.Member.ID != c.Key {
			return invalid("member %s: key names %s", c.Member.ID, c.Key)
		}
		if len(c.Member.Addrs) > MaxAddrs {
			return invalid("member %s: %d addresses (max %d)", c.Key, len(c.Member.Addrs), MaxAddrs)
		}
		for _, a := range c.Member.Addrs {
			if len(a) > MaxKeyLen {
				return invalid("member %s: address of %d bytes", c.Key, len(a))
			}
		}
		if len(c.Member.Domain) > MaxKeyLen {
			return invalid("member %s: domain of %d bytes", c.Key, len(c.Member.Domain))
		}
	case OpPutManifest:
		if len(c.Data) > MaxManifestSize {
			return invalid("manifest %s: %d bytes (max %d)", c.Key, len(c.Data), MaxManifestSize)
		}
	case OpPutIPNS:
		if len(c.Key) <= len(IPNSPrefix) || c.Key[:len(IPNSPrefix)] != IPNSPrefix {
			return invalid("put-ipns: key %q is not an IPNS routing key", c.Key)
		}
		if len(c.Data) == 0 || len(c.Data) > MaxIPNSRecordSize {
			return invalid("put-ipns: record of %d bytes (1..%d)", len(c.Data), MaxIPNSRecordSize)
		}
		if s := c.EOL.Unix(); s < minEOL || s > maxEOL {
			return invalid("put-ipns: EOL %s out of range", c.EOL.UTC().Format(time.RFC3339))
		}
	case OpLink, OpUnlink, OpMkdir, OpFilesLink, OpFilesMove, OpFilesRemove, OpFilesCopy:
		if c.Op.treeEdit() && depth > 0 {
			// a batch must not be refused halfway
			return invalid("%s inside a batch", c.Op)
		}
		if err := validTreeArg(c.Op, c.Key, c.Op.treeEdit()); err != nil {
			return err
		}
		if (c.Op == OpLink || c.Op == OpFilesLink) && (c.Target == "" || len(c.Target) > MaxKeyLen) {
			return invalid("%s %s: target of %d bytes (1..%d)", c.Op, c.Key, len(c.Target), MaxKeyLen)
		}
		if c.Op == OpFilesMove || c.Op == OpFilesCopy {
			if len(c.Target) > MaxKeyLen {
				return invalid("%s: destination of %d bytes (max %d)", c.Op, len(c.Target), MaxKeyLen)
			}
			if err := validTreeArg(c.Op, c.Target, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// validTreeArg checks a path of the tree: absolute and clean, and, for the
// new commands (names), no element longer than MaxNameLen. (Link and
// Unlink keep the rules of the logs they come from.)
func validTreeArg(op Op, p string, names bool) error {
	if !validTreePath(p) {
		return invalid("%s: path %q is not absolute and clean", op, p)
	}
	if names {
		for i := 0; i < len(p)-1; {
			name, j := elem(p, i)
			if len(name) > MaxNameLen {
				return invalid("%s %s: a name of %d bytes (max %d)", op, p, len(name), MaxNameLen)
			}
			i = j
		}
	}
	return nil
}

// The log entry format, all integers little-endian varints:
//
//	entry   = version:u8 count:uvarint command*count
//	command = op:u8 flags:u8 [request-id:16 if flags&1] body
//	body    = by op: key:str, then
//	          put-member: addrs:uvarint str* capacity:uvarint used:uvarint
//	                      domain:str voter:u8 joined:varint(unix ns)
//	          set-usage:  capacity:uvarint used:uvarint
//	          add-usage:  delta:varint
//	          set-voter:  voter:u8
//	          put-manifest: size:uvarint data:str
//	          link:       target:str
//	          put-ipns:   sequence:uvarint eol:varint(unix s) eol-ns:uvarint(< 1e9)
//	                      record:str                          (version 2 on)
//	          mkdir:        opts:u8 (1: parents)                (version 3 on)
//	          files-link:   target:str type:u8 size:uvarint tsize:uvarint
//	                        opts:u8 (1: parents, 2: replace)    (version 3 on)
//	          files-move:   destination:str                     (version 3 on)
//	          files-remove: opts:u8 (1: recursive)              (version 3 on)
//	          files-copy:   destination:str opts:u8 (1: parents) (version 3 on)
//	          repair-begin: (key: the reason) at:varint(unix ns; 0: none)
//	                        lost:uvarint str* pool:uvarint candidate*
//	                        candidate = id:str domain:str free:uvarint (version 4 on)
//	          repair-end:   (key empty) seq:uvarint             (version 4 on)
//	          report-damage: (key empty) count:uvarint
//	                        (holder:str key:str block:str coding:str index:uvarint)*count
//	                                                            (version 4 on)
//	          clear-damage: (key empty) count:uvarint (holder:str key:str)*count
//	                                                            (version 4 on)
//	          batch (no key): count:uvarint command*count
//	str     = len:uvarint bytes
//
// One entry carries one or more independent commands (the leader batches
// concurrent writes into one entry); each gets its own Result.
//
// Version 2 added put-ipns, version 3 the tree commands (mkdir,
// files-link, files-move, files-remove, files-copy), version 4 the repair
// commands (repair-begin, repair-end, report-damage, clear-damage), and
// nothing else. An entry is written in the lowest version that can hold
// it, so entries without them keep their old version and a build that
// reads only the older versions keeps applying them (during a rolling
// upgrade it refuses the newer entries alone, with a clear "entry version
// 4" error). Every version decodes.
const (
	entryVersion  = 4
	entryVersion3 = 3 // no repair commands
	entryVersion2 = 2 // no tree commands either
	entryVersion1 = 1 // no put-ipns either
)

const flagRequestID = 1

// MarshalBinary encodes c as a one-command log entry.
func (c Command) MarshalBinary() ([]byte, error) {
	return encodeEntry([]Command{c})
}

// UnmarshalBinary decodes a one-command log entry.
func (c *Command) UnmarshalBinary(b []byte) error {
	cmds, err := decodeEntry(b)
	if err != nil {
		return err
	}
	if len(cmds) != 1 {
		return fmt.Errorf("consensus: entry holds %d commands, want 1", len(cmds))
	}
	*c = cmds[0]
	return nil
}

func encodeEntry(cmds []Command) ([]byte, error) {
	n := 2 + binary.MaxVarintLen64
	for i := range cmds {
		n += cmds[i].encodedSize()
	}
	b := make([]byte, 0, n)
	b = append(b, entryVersionOf(cmds))
	b = binary.AppendUvarint(b, uint64(len(cmds)))
	for i := range cmds {
		b = cmds[i].append(b)
	}
	if len(b) > MaxEntrySize {
		return nil, invalid("entry of %d bytes (max %d)", len(b), MaxEntrySize)
	}
	return b, nil
}

// entryVersionOf is the lowest entry version that can hold cmds.
func entryVersionOf(cmds []Command) byte {
	v := byte(entryVersion1)
	for i := range cmds {
		v = max(v, cmds[i].Op.minEntryVersion())
		for j := range cmds[i].Batch {
			v = max(v, cmds[i].Batch[j].Op.minEntryVersion())
		}
	}
	return v
}

// minEntryVersion is the first entry version that has o.
func (o Op) minEntryVersion() byte {
	switch {
	case o.repair():
		return entryVersion
	case o.treeEdit():
		return entryVersion3
	case o == OpPutIPNS:
		return entryVersion2
	}
	return entryVersion1
}

// Bits of the opts byte of the tree commands.
const (
	optParents   = 1 // mkdir, files-link, files-copy
	optReplace   = 2 // files-link
	optRecursive = 1 // files-remove
)

func (c *Command) encodedSize() int {
	n := 2 + 16 + 8*binary.MaxVarintLen64 + len(c.Key) + len(c.Target) + len(c.Data) + len(c.Member.Domain) + 32
	for _, a := range c.Member.Addrs {
		n += len(a) + binary.MaxVarintLen64
	}
	for _, id := range c.Lost {
		n += len(id) + binary.MaxVarintLen64
	}
	for _, p := range c.Pool {
		n += len(p.ID) + len(p.Domain) + 3*binary.MaxVarintLen64
	}
	for _, d := range c.Damages {
		n += len(d.Holder) + len(d.Key) + len(d.Block) + len(d.Coding) + 5*binary.MaxVarintLen64
	}
	for i := range c.Batch {
		n += c.Batch[i].encodedSize()
	}
	return n
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func opt(v bool, bit byte) byte {
	if v {
		return bit
	}
	return 0
}

func (c *Command) append(b []byte) []byte {
	var flags byte
	if !c.RequestID.IsZero() {
		flags |= flagRequestID
	}
	b = append(b, byte(c.Op), flags)
	if flags&flagRequestID != 0 {
		b = append(b, c.RequestID[:]...)
	}
	if c.Op == OpBatch {
		b = binary.AppendUvarint(b, uint64(len(c.Batch)))
		for i := range c.Batch {
			sub := c.Batch[i]
			sub.RequestID = RequestID{}
			b = sub.append(b)
		}
		return b
	}
	b = appendStr(b, c.Key)
	switch c.Op {
	case OpPutMember:
		m := &c.Member
		b = binary.AppendUvarint(b, uint64(len(m.Addrs)))
		for _, a := range m.Addrs {
			b = appendStr(b, a)
		}
		b = binary.AppendUvarint(b, m.Capacity)
		b = binary.AppendUvarint(b, m.Used)
		b = appendStr(b, m.Domain)
		b = appendBool(b, m.Voter)
		b = binary.AppendVarint(b, timeUnixNano(m.Joined))
	case OpSetUsage:
		b = binary.AppendUvarint(b, c.Member.Capacity)
		b = binary.AppendUvarint(b, c.Member.Used)
	case OpAddUsage:
		b = binary.AppendVarint(b, c.Delta)
	case OpSetVoter:
		b = appendBool(b, c.Member.Voter)
	case OpPutManifest:
		b = binary.AppendUvarint(b, c.Size)
		b = binary.AppendUvarint(b, uint64(len(c.Data)))
		b = append(b, c.Data...)
	case OpLink, OpFilesMove:
		b = appendStr(b, c.Target)
	case OpMkdir:
		b = append(b, opt(c.Parents, optParents))
	case OpFilesLink:
		b = appendStr(b, c.Target)
		b = append(b, c.Info.Type)
		b = binary.AppendUvarint(b, c.Info.Size)
		b = binary.AppendUvarint(b, c.Info.Tsize)
		b = append(b, opt(c.Parents, optParents)|opt(c.Replace, optReplace))
	case OpFilesRemove:
		b = append(b, opt(c.Recursive, optRecursive))
	case OpFilesCopy:
		b = appendStr(b, c.Target)
		b = append(b, opt(c.Parents, optParents))
	case OpPutIPNS:
		b = binary.AppendUvarint(b, c.Sequence)
		b = binary.AppendVarint(b, c.EOL.Unix())
		b = binary.AppendUvarint(b, uint64(c.EOL.Nanosecond()))
		b = binary.AppendUvarint(b, uint64(len(c.Data)))
		b = append(b, c.Data...)
	case OpRepairBegin:
		b = binary.AppendVarint(b, timeUnixNano(c.At))
		b = binary.AppendUvarint(b, uint64(len(c.Lost)))
		for _, id := range c.Lost {
			b = appendStr(b, id)
		}
		b = binary.AppendUvarint(b, uint64(len(c.Pool)))
		for _, p := range c.Pool {
			b = appendStr(b, p.ID)
			b = appendStr(b, p.Domain)
			b = binary.AppendUvarint(b, p.Free)
		}
	case OpRepairEnd:
		b = binary.AppendUvarint(b, c.Sequence)
	case OpReportDamage, OpClearDamage:
		b = binary.AppendUvarint(b, uint64(len(c.Damages)))
		for i := range c.Damages {
			d := &c.Damages[i]
			b = appendStr(b, d.Holder)
			b = binary.AppendUvarint(b, uint64(len(d.Key)))
			b = append(b, d.Key...)
			if c.Op == OpReportDamage {
				b = appendStr(b, d.Block)
				b = appendStr(b, d.Coding)
				b = binary.AppendUvarint(b, uint64(d.Index))
			}
		}
	}
	return b
}

// timeUnixNano is t in Unix nanoseconds, 0 for the zero time (as
// unixNano reads it).
func timeUnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// ErrCorrupt is wrapped by every decoding error (log entries, forwarded
// requests, snapshots).
var ErrCorrupt = errors.New("consensus: corrupt encoding")

type decoder struct {
	b       []byte
	err     error
	version byte // of the entry being decoded
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items that take at least one byte each, so a
// corrupt count can never make the decoder allocate more than its input.
func (d *decoder) count(max int) int {
	v := d.uvarint()
	if d.err != nil {
		return 0
	}
	if v > uint64(max) || v > uint64(len(d.b)) {
		d.fail("count %d out of range", v)
		return 0
	}
	return int(v)
}

func (d *decoder) bytes(max int) []byte {
	v := d.uvarint()
	if d.err != nil {
		return nil
	}
	if v > uint64(max) || v > uint64(len(d.b)) {
		d.fail("length %d out of range", v)
		return nil
	}
	out := d.b[:v:v]
	d.b = d.b[v:]
	return out
}

func (d *decoder) str(max int) string { return string(d.bytes(max)) }

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad bool")
	return false
}

// opts reads an opts byte that may have only the bits of known set.
func (d *decoder) opts(known byte) byte {
	v := d.byte()
	if v&^known != 0 {
		d.fail("unknown opts %#x", v)
		return 0
	}
	return v
}

func decodeEntry(b []byte) ([]Command, error) {
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("%w: entry of %d bytes", ErrCorrupt, len(b))
	}
	d := &decoder{b: b}
	d.version = d.byte()
	if d.err == nil && (d.version < entryVersion1 || d.version > entryVersion) {
		return nil, fmt.Errorf("%w: entry version %d (this build reads %d to %d)", ErrCorrupt, d.version, entryVersion1, entryVersion)
	}
	n := d.count(len(b))
	if d.err != nil {
		return nil, d.err
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty entry", ErrCorrupt)
	}
	cmds := make([]Command, n)
	for i := range cmds {
		d.command(&cmds[i], 0)
		if d.err != nil {
			return nil, d.err
		}
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return cmds, nil
}

func (d *decoder) command(c *Command, depth int) {
	c.Op = Op(d.byte())
	flags := d.byte()
	if d.err != nil {
		return
	}
	if flags&^flagRequestID != 0 {
		d.fail("unknown flags %#x", flags)
		return
	}
	if flags&flagRequestID != 0 {
		if len(d.b) < 16 {
			d.fail("truncated request id")
			return
		}
		copy(c.RequestID[:], d.b)
		d.b = d.b[16:]
	}
	if c.Op == OpBatch {
		if depth > 0 {
			d.fail("nested batch")
			return
		}
		n := d.count(MaxBatchLen)
		if d.err != nil {
			return
		}
		c.Batch = make([]Command, n)
		for i := range c.Batch {
			d.command(&c.Batch[i], depth+1)
			if d.err != nil {
				return
			}
		}
		return
	}
	if c.Op == opInvalid || c.Op >= opCount {
		d.fail("unknown op %d", uint8(c.Op))
		return
	}
	if d.version < c.Op.minEntryVersion() {
		d.fail("%s in a version %d entry", c.Op, d.version)
		return
	}
	c.Key = d.str(MaxKeyLen)
	switch c.Op {
	case OpPutMember:
		m := &c.Member
		m.ID = c.Key
		if n := d.count(MaxAddrs); n > 0 {
			m.Addrs = make([]string, n)
			for i := range m.Addrs {
				m.Addrs[i] = d.str(MaxKeyLen)
			}
		}
		m.Capacity = d.uvarint()
		m.Used = d.uvarint()
		m.Domain = d.str(MaxKeyLen)
		m.Voter = d.bool()
		m.Joined = unixNano(d.varint())
	case OpSetUsage:
		c.Member.Capacity = d.uvarint()
		c.Member.Used = d.uvarint()
	case OpAddUsage:
		c.Delta = d.varint()
	case OpSetVoter:
		c.Member.Voter = d.bool()
	case OpPutManifest:
		c.Size = d.uvarint()
		if b := d.bytes(MaxManifestSize); b != nil {
			c.Data = append([]byte(nil), b...)
		}
	case OpLink, OpFilesMove:
		c.Target = d.str(MaxKeyLen)
	case OpMkdir:
		c.Parents = d.opts(optParents)&optParents != 0
	case OpFilesLink:
		c.Target = d.str(MaxKeyLen)
		c.Info.Type = d.byte()
		c.Info.Size = d.uvarint()
		c.Info.Tsize = d.uvarint()
		o := d.opts(optParents | optReplace)
		c.Parents, c.Replace = o&optParents != 0, o&optReplace != 0
	case OpFilesRemove:
		c.Recursive = d.opts(optRecursive)&optRecursive != 0
	case OpFilesCopy:
		c.Target = d.str(MaxKeyLen)
		c.Parents = d.opts(optParents)&optParents != 0
	case OpPutIPNS:
		c.Sequence = d.uvarint()
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= 1e9 {
			d.fail("put-ipns: %d nanoseconds", nsec)
			return
		}
		c.EOL = time.Unix(sec, int64(nsec)).UTC()
		if b := d.bytes(MaxIPNSRecordSize); b != nil {
			c.Data = append([]byte(nil), b...)
		}
	case OpRepairBegin:
		c.At = unixNano(d.varint())
		if n := d.count(MaxRepairMembers); n > 0 {
			c.Lost = make([]string, n)
			for i := range c.Lost {
				c.Lost[i] = d.str(MaxKeyLen)
			}
		}
		if n := d.count(MaxRepairMembers); n > 0 {
			c.Pool = make([]Candidate, n)
			for i := range c.Pool {
				p := &c.Pool[i]
				p.ID = d.str(MaxKeyLen)
				p.Domain = d.str(MaxKeyLen)
				p.Free = d.uvarint()
			}
		}
	case OpRepairEnd:
		c.Sequence = d.uvarint()
	case OpReportDamage, OpClearDamage:
		// items take at least 2 (clear) or 5 bytes each: the count bounds
		// the allocation by the input
		if n := d.count(MaxDamages); n > 0 {
			c.Damages = make([]Damage, n)
			for i := range c.Damages {
				x := &c.Damages[i]
				x.Holder = d.str(MaxKeyLen)
				x.Key = bytes.Clone(d.bytes(MaxFragmentKeyLen))
				if c.Op == OpReportDamage {
					x.Block = d.str(MaxKeyLen)
					x.Coding = d.str(MaxCodingLen)
					idx := d.uvarint()
					if idx > MaxFragmentIndex {
						d.fail("%s: fragment index %d", c.Op, idx)
						return
					}
					x.Index = int(idx)
				}
				if d.err != nil {
					return
				}
			}
		}
	}
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
