package consensus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"
	"time"
)

// The snapshot format (version 5). Integers are varints as in log entries;
// crc is CRC-32C, little-endian.
//
//	magic "FUNGISNP" version:u8
//	header: applied commands duplicates manifest-bytes
//	        members manifests pins paths dedup  (all uvarint; the last five count records;
//	                                             paths: the tree's entries, the root not counted)
//	        ops:uvarint op-count*               (applied count per Op; version 2 on)
//	        ipns:uvarint                        (counts IPNS records; version 3 on)
//	        tree-rev:uvarint                    (the tree revision; version 4 on)
//	        epochs epochs-done damages          (all uvarint; epochs and damages count
//	                                             records, epochs 1..epochs-done are done;
//	                                             version 5 on)
//	header-crc:u32   (over magic..header: a corrupt count is caught before it sizes a map)
//	members:   id:str addrs:uvarint str* capacity:uvarint used:uvarint domain:str voter:u8 joined:varint
//	manifests: root:str size:uvarint epoch:uvarint data:str
//	           (epoch: the repair epochs when it was put, <= epochs; version 5 on)
//	pins:      cid:str
//	tree:      node (the root, a directory), the tree in pre-order, the children of a
//	           directory in any order:                                 (version 4 on)
//	           node = rev:uvarint kind:u8 body
//	           kind 0, a link:      link:str size:uvarint tsize:uvarint
//	             (link: type:u8 form:u8 bytes; form 0: bytes are the target as
//	             given; form 1: the target is "b" + the bytes in lower-case,
//	             unpadded base32, and form 0 is never used for such a target)
//	           kind 1, a directory: at:uvarint (<= rev: the revision at which it
//	             was made, moved or copied where it is) count:uvarint (name:str node)*count
//	paths:     path:str cid:str                  (versions 1 to 3, instead of tree)
//	ipns:      name:str sequence:uvarint eol:varint(unix s) eol-ns:uvarint record:str  (version 3 on)
//	epochs:    reason:str begun:varint(unix ns; 0: none) lost:uvarint str*
//	           pool:uvarint (id:str domain:str free:uvarint)*       (by Seq, from 1; version 5 on)
//	damages:   holder:str key:str block:str coding:str index:uvarint (version 5 on)
//	dedup:     request-id:16 index:uvarint   (oldest first)
//	crc:u32    (over everything before it)
//
// Records are streamed straight from the frozen maps and tree; nothing is
// sorted or copied, so writing costs about as much as the bytes it writes.
// The tree stores each name once, not full paths.
const (
	snapMagic   = "FUNGISNP"
	snapVersion = 5
	// Older versions still read: version 1 had no op counts (they read
	// as zero), versions 1 and 2 no IPNS records; versions 1 to 3 held
	// the tree as a flat path -> CID map, which reads as links with their
	// parent directories created (see readPaths); versions 1 to 4 had no
	// repair epochs and no damages (every manifest reads as of epoch 0).
	snapVersion1 = 1
	snapVersion2 = 2
	snapVersion3 = 3
	snapVersion4 = 4
	snapVersion5 = snapVersion
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type snapState struct {
	applied, commands, duplicates, manifestBytes uint64
	ops                                          [opCount]uint64

	members     map[string]Member
	manifests   map[string]manifestRec
	pins        map[string]struct{}
	tree        *tnode // the root; read-only
	treeRev     uint64
	treeEntries uint64
	ipns        map[string]ipnsRec
	epochs      []Epoch // read-only
	epochsDone  uint64
	damages     map[string]Damage
	dedup       []dedupEntry
}

type crcWriter struct {
	w   io.Writer
	crc uint32
	n   int64
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	c.n += int64(n)
	return n, err
}

// writeSnapshot streams st to w and returns the bytes written.
func writeSnapshot(w io.Writer, st *snapState) (int64, error) {
	cw := &crcWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<20)

	hdr := append([]byte(snapMagic), snapVersion)
	for _, v := range []uint64{
		st.applied, st.commands, st.duplicates, st.manifestBytes,
		uint64(len(st.members)), uint64(len(st.manifests)), uint64(len(st.pins)),
		st.treeEntries, uint64(len(st.dedup)),
	} {
		hdr = binary.AppendUvarint(hdr, v)
	}
	hdr = binary.AppendUvarint(hdr, uint64(len(st.ops)))
	for _, v := range st.ops {
		hdr = binary.AppendUvarint(hdr, v)
	}
	hdr = binary.AppendUvarint(hdr, uint64(len(st.ipns)))
	hdr = binary.AppendUvarint(hdr, st.treeRev)
	hdr = binary.AppendUvarint(hdr, uint64(len(st.epochs)))
	hdr = binary.AppendUvarint(hdr, st.epochsDone)
	hdr = binary.AppendUvarint(hdr, uint64(len(st.damages)))
	hdr = binary.LittleEndian.AppendUint32(hdr, crc32.Checksum(hdr, castagnoli))
	bw.Write(hdr)

	for id, m := range st.members {
		b := bw.AvailableBuffer()
		b = appendStr(b, id)
		b = binary.AppendUvarint(b, uint64(len(m.Addrs)))
		for _, a := range m.Addrs {
			b = appendStr(b, a)
		}
		b = binary.AppendUvarint(b, m.Capacity)
		b = binary.AppendUvarint(b, m.Used)
		b = appendStr(b, m.Domain)
		b = appendBool(b, m.Voter)
		b = binary.AppendVarint(b, timeUnixNano(m.Joined))
		bw.Write(b)
	}
	for root, rec := range st.manifests {
		b := bw.AvailableBuffer()
		b = appendStr(b, root)
		b = binary.AppendUvarint(b, rec.size)
		b = binary.AppendUvarint(b, rec.epoch)
		b = binary.AppendUvarint(b, uint64(len(rec.data)))
		if len(rec.data) > 4096 {
			bw.Write(b)
			bw.Write(rec.data)
			continue
		}
		bw.Write(append(b, rec.data...))
	}
	for c := range st.pins {
		bw.Write(appendStr(bw.AvailableBuffer(), c))
	}
	writeTree(bw, st.tree)
	for name, rec := range st.ipns {
		b := appendStr(bw.AvailableBuffer(), name)
		b = binary.AppendUvarint(b, rec.seq)
		b = binary.AppendVarint(b, rec.eol.Unix())
		b = binary.AppendUvarint(b, uint64(rec.eol.Nanosecond()))
		b = binary.AppendUvarint(b, uint64(len(rec.data)))
		bw.Write(append(b, rec.data...))
	}
	for _, e := range st.epochs {
		b := appendStr(bw.AvailableBuffer(), e.Reason)
		b = binary.AppendVarint(b, timeUnixNano(e.Begun))
		b = binary.AppendUvarint(b, uint64(len(e.Lost)))
		bw.Write(b)
		for _, id := range e.Lost {
			bw.Write(appendStr(bw.AvailableBuffer(), id))
		}
		bw.Write(binary.AppendUvarint(bw.AvailableBuffer(), uint64(len(e.Pool))))
		for _, p := range e.Pool {
			b := appendStr(bw.AvailableBuffer(), p.ID)
			b = appendStr(b, p.Domain)
			bw.Write(binary.AppendUvarint(b, p.Free))
		}
	}
	for _, d := range st.damages {
		b := appendStr(bw.AvailableBuffer(), d.Holder)
		b = binary.AppendUvarint(b, uint64(len(d.Key)))
		b = append(b, d.Key...)
		b = appendStr(b, d.Block)
		b = appendStr(b, d.Coding)
		bw.Write(binary.AppendUvarint(b, uint64(d.Index)))
	}
	for _, e := range st.dedup {
		b := append(bw.AvailableBuffer(), e.id[:]...)
		bw.Write(binary.AppendUvarint(b, e.index))
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("consensus: write snapshot: %w", err)
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], cw.crc)
	if _, err := cw.Write(sum[:]); err != nil {
		return cw.n, fmt.Errorf("consensus: write snapshot: %w", err)
	}
	return cw.n, nil
}

// writeTree writes the tree below root (a directory) in pre-order. The
// tree must be frozen (or the FSM locked): it reads the children maps
// directly. It does not recurse (moves can make a tree deeper than any
// stack): a directory's links are written as its map yields them, its
// subdirectories are kept aside and written next, each followed by its
// own subtree.
func writeTree(bw *bufio.Writer, root *tnode) {
	type frame struct {
		names []string
		dirs  []*tnode
	}
	var stack []frame
	dir := func(n *tnode) {
		b := binary.AppendUvarint(bw.AvailableBuffer(), n.rev)
		b = append(b, 1)
		b = binary.AppendUvarint(b, n.dir.at)
		bw.Write(binary.AppendUvarint(b, uint64(n.dir.len())))
		var f frame
		// a frozen directory may have an overlay (a copy of the tree shares
		// its map), which nothing changes while the snapshot holds it
		n.dir.each(func(name string, k *tnode) {
			if k.dir != nil {
				f.names, f.dirs = append(f.names, name), append(f.dirs, k)
				return
			}
			b := appendStr(bw.AvailableBuffer(), name)
			b = binary.AppendUvarint(b, k.rev)
			b = append(b, 0)
			b = appendStr(b, k.link)
			b = binary.AppendUvarint(b, k.size)
			bw.Write(binary.AppendUvarint(b, k.tsize))
		})
		if len(f.dirs) > 0 {
			stack = append(stack, f)
		}
	}
	dir(root)
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		name, d := top.names[0], top.dirs[0]
		top.names, top.dirs = top.names[1:], top.dirs[1:]
		if len(top.dirs) == 0 {
			stack = stack[:len(stack)-1]
		}
		bw.Write(appendStr(bw.AvailableBuffer(), name))
		dir(d)
	}
}

// snapLimits bound what a snapshot may make the reader allocate up front.
type snapLimits struct {
	prealloc int // entries a map may be sized for before they are read
}

// restoreLimits: a snapshot comes from this node's disk or the leader and
// its header is checksummed, so counts are trusted for sizing maps.
var restoreLimits = snapLimits{prealloc: 1 << 27}

// snapReader is a buffered reader that keeps a CRC-32C of the bytes
// consumed, folding them in lazily when the buffer refills.
type snapReader struct {
	src    io.Reader
	buf    []byte
	r, w   int // unread bytes are buf[r:w]
	crcPos int // buf[:crcPos] is already in crc
	crc    uint32
	err    error // sticky source error
}

func newSnapReader(src io.Reader) *snapReader {
	return &snapReader{src: src, buf: make([]byte, 256<<10)}
}

// fill makes at least need (<= len(buf)) bytes available or fails.
func (s *snapReader) fill(need int) error {
	if s.w-s.r >= need {
		return nil
	}
	s.crc = crc32.Update(s.crc, castagnoli, s.buf[s.crcPos:s.r])
	n := copy(s.buf, s.buf[s.r:s.w])
	s.r, s.w, s.crcPos = 0, n, 0
	for s.w < need {
		if s.err != nil {
			if s.err == io.EOF {
				return fmt.Errorf("%w: snapshot truncated", ErrCorrupt)
			}
			return fmt.Errorf("consensus: read snapshot: %w", s.err)
		}
		m, err := s.src.Read(s.buf[s.w:])
		s.w += m
		if err != nil {
			s.err = err
		}
	}
	return nil
}

// sum returns the CRC of everything consumed so far.
func (s *snapReader) sum() uint32 {
	s.crc = crc32.Update(s.crc, castagnoli, s.buf[s.crcPos:s.r])
	s.crcPos = s.r
	return s.crc
}

func (s *snapReader) uvarint() (uint64, error) {
	if s.w-s.r < binary.MaxVarintLen64 {
		if err := s.fill(binary.MaxVarintLen64); err != nil && s.w == s.r {
			return 0, err
		}
	}
	v, n := binary.Uvarint(s.buf[s.r:s.w])
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad uvarint in snapshot", ErrCorrupt)
	}
	s.r += n
	return v, nil
}

func (s *snapReader) varint() (int64, error) {
	u, err := s.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x, err
}

func (s *snapReader) byte() (byte, error) {
	if err := s.fill(1); err != nil {
		return 0, err
	}
	s.r++
	return s.buf[s.r-1], nil
}

// next returns the next n bytes (n <= len(buf)), valid until the next call.
func (s *snapReader) next(n int) ([]byte, error) {
	if err := s.fill(n); err != nil {
		return nil, err
	}
	s.r += n
	return s.buf[s.r-n : s.r], nil
}

// bytesN reads n bytes into new memory. Memory grows with the bytes
// actually read, so a corrupt length fails on the data's end rather than
// on a huge allocation.
func (s *snapReader) bytesN(n int) ([]byte, error) {
	out := make([]byte, 0, min(n, len(s.buf)))
	for len(out) < n {
		chunk := min(n-len(out), len(s.buf))
		b, err := s.next(chunk)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

func (s *snapReader) str(max int) (string, error) {
	n, err := s.uvarint()
	if err != nil {
		return "", err
	}
	if n > uint64(max) {
		return "", fmt.Errorf("%w: snapshot string of %d bytes", ErrCorrupt, n)
	}
	b, err := s.next(int(n))
	return string(b), err
}

// Restore reads records in batches and gives each batch's strings one
// allocation (substrings of one string) and small manifests one buffer:
// two allocations per batch instead of two per entry. The price: a batch's
// memory lives while any of its entries does.
const (
	batchRecords = 1024
	smallValue   = 4096
)

// keyBatch collects length-prefixed strings and hands them out as
// substrings of one string.
type keyBatch struct {
	buf  []byte
	ends []int
}

func (k *keyBatch) reset() {
	k.buf = k.buf[:0]
	k.ends = k.ends[:0]
}

// read appends the next string of s and returns its number in the batch.
func (k *keyBatch) read(s *snapReader) (int, error) {
	n, err := s.uvarint()
	if err != nil {
		return 0, err
	}
	if n > MaxKeyLen {
		return 0, fmt.Errorf("%w: snapshot string of %d bytes", ErrCorrupt, n)
	}
	b, err := s.next(int(n))
	if err != nil {
		return 0, err
	}
	k.buf = append(k.buf, b...)
	k.ends = append(k.ends, len(k.buf))
	return len(k.ends) - 1, nil
}

// strings converts the batch into one string and returns an accessor.
func (k *keyBatch) strings() func(i int) string {
	all := string(k.buf)
	ends := k.ends
	return func(i int) string {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		return all[start:ends[i]]
	}
}

// readSnapshot reads a whole snapshot from r and checks its checksums.
func readSnapshot(r io.Reader, lim snapLimits) (*snapState, error) {
	s := newSnapReader(r)
	magic, err := s.next(len(snapMagic) + 1)
	if err != nil {
		return nil, err
	}
	if string(magic[:len(snapMagic)]) != snapMagic {
		return nil, fmt.Errorf("%w: not a fungi snapshot", ErrCorrupt)
	}
	version := magic[len(snapMagic)]
	if version < snapVersion1 || version > snapVersion {
		return nil, fmt.Errorf("%w: snapshot version %d (this build reads %d to %d)", ErrCorrupt, version, snapVersion1, snapVersion)
	}
	var hdr [9]uint64
	for i := range hdr {
		if hdr[i], err = s.uvarint(); err != nil {
			return nil, err
		}
	}
	var ops [opCount]uint64
	if version >= snapVersion2 {
		nops, err := s.uvarint()
		if err != nil {
			return nil, err
		}
		if nops > 255 {
			return nil, fmt.Errorf("%w: %d op counts", ErrCorrupt, nops)
		}
		for i := range nops {
			v, err := s.uvarint()
			if err != nil {
				return nil, err
			}
			if i < uint64(opCount) { // counts of ops newer than this build are dropped
				ops[i] = v
			}
		}
	}
	var nIPNS, treeRev uint64
	if version >= snapVersion3 {
		if nIPNS, err = s.uvarint(); err != nil {
			return nil, err
		}
	}
	if version >= snapVersion4 {
		if treeRev, err = s.uvarint(); err != nil {
			return nil, err
		}
	}
	var nEpochs, epochsDone, nDamages uint64
	if version >= snapVersion5 {
		for _, p := range []*uint64{&nEpochs, &epochsDone, &nDamages} {
			if *p, err = s.uvarint(); err != nil {
				return nil, err
			}
		}
		if epochsDone > nEpochs {
			return nil, fmt.Errorf("%w: %d of %d epochs done", ErrCorrupt, epochsDone, nEpochs)
		}
	}
	want := s.sum()
	sum, err := s.next(4)
	if err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint32(sum) != want {
		return nil, fmt.Errorf("%w: snapshot header checksum mismatch", ErrCorrupt)
	}
	st := &snapState{applied: hdr[0], commands: hdr[1], duplicates: hdr[2], manifestBytes: hdr[3], ops: ops}
	nMembers, nManifests, nPins, nPaths, nDedup := hdr[4], hdr[5], hdr[6], hdr[7], hdr[8]
	if nDedup > DedupWindow {
		return nil, fmt.Errorf("%w: %d dedup entries (max %d)", ErrCorrupt, nDedup, DedupWindow)
	}
	size := func(n uint64) int { return int(min(n, uint64(lim.prealloc))) }

	st.members = make(map[string]Member, size(nMembers))
	for range nMembers {
		var m Member
		if m.ID, err = s.str(MaxKeyLen); err != nil {
			return nil, err
		}
		naddr, err := s.uvarint()
		if err != nil {
			return nil, err
		}
		if naddr > MaxAddrs {
			return nil, fmt.Errorf("%w: member with %d addresses", ErrCorrupt, naddr)
		}
		for range naddr {
			a, err := s.str(MaxKeyLen)
			if err != nil {
				return nil, err
			}
			m.Addrs = append(m.Addrs, a)
		}
		if m.Capacity, err = s.uvarint(); err != nil {
			return nil, err
		}
		if m.Used, err = s.uvarint(); err != nil {
			return nil, err
		}
		if m.Domain, err = s.str(MaxKeyLen); err != nil {
			return nil, err
		}
		v, err := s.byte()
		if err != nil {
			return nil, err
		}
		if v > 1 {
			return nil, fmt.Errorf("%w: bad bool in snapshot", ErrCorrupt)
		}
		m.Voter = v == 1
		joined, err := s.varint()
		if err != nil {
			return nil, err
		}
		m.Joined = unixNano(joined)
		st.members[m.ID] = m
	}
	if uint64(len(st.members)) != nMembers {
		return nil, fmt.Errorf("%w: duplicate members in snapshot", ErrCorrupt)
	}

	st.manifests = make(map[string]manifestRec, size(nManifests))
	var total uint64
	var kb keyBatch
	type pending struct {
		key        int // index into kb
		size       uint64
		epoch      uint64
		data       []byte // a big manifest, in its own allocation
		start, end int    // else: dbuf[start:end]
	}
	recs := make([]pending, 0, batchRecords)
	var dbuf []byte
	for left := nManifests; left > 0; {
		recs, dbuf = recs[:0], make([]byte, 0, len(dbuf))
		kb.reset()
		for range min(left, batchRecords) {
			var p pending
			if p.key, err = kb.read(s); err != nil {
				return nil, err
			}
			if p.size, err = s.uvarint(); err != nil {
				return nil, err
			}
			if version >= snapVersion5 {
				if p.epoch, err = s.uvarint(); err != nil {
					return nil, err
				}
				if p.epoch > nEpochs {
					return nil, fmt.Errorf("%w: a manifest of epoch %d, of %d", ErrCorrupt, p.epoch, nEpochs)
				}
			}
			n, err := s.uvarint()
			if err != nil {
				return nil, err
			}
			if n > MaxManifestSize {
				return nil, fmt.Errorf("%w: manifest of %d bytes", ErrCorrupt, n)
			}
			if n > smallValue {
				if p.data, err = s.bytesN(int(n)); err != nil {
					return nil, err
				}
			} else {
				b, err := s.next(int(n))
				if err != nil {
					return nil, err
				}
				p.start = len(dbuf)
				dbuf = append(dbuf, b...)
				p.end = len(dbuf)
			}
			total += n
			recs = append(recs, p)
		}
		left -= uint64(len(recs))
		keys := kb.strings()
		for _, p := range recs {
			data := p.data
			if data == nil && p.end > p.start {
				data = dbuf[p.start:p.end:p.end]
			}
			st.manifests[keys(p.key)] = manifestRec{size: p.size, data: data, epoch: p.epoch}
		}
	}
	if uint64(len(st.manifests)) != nManifests {
		return nil, fmt.Errorf("%w: duplicate manifests in snapshot", ErrCorrupt)
	}
	if total != st.manifestBytes {
		return nil, fmt.Errorf("%w: manifest bytes %d, header says %d", ErrCorrupt, total, st.manifestBytes)
	}

	st.pins = make(map[string]struct{}, size(nPins))
	for left := nPins; left > 0; {
		kb.reset()
		n := min(left, batchRecords)
		for range n {
			if _, err := kb.read(s); err != nil {
				return nil, err
			}
		}
		left -= n
		keys := kb.strings()
		for i := range int(n) {
			st.pins[keys(i)] = struct{}{}
		}
	}
	if uint64(len(st.pins)) != nPins {
		return nil, fmt.Errorf("%w: duplicate pins in snapshot", ErrCorrupt)
	}

	if version >= snapVersion4 {
		st.tree, err = readTree(s, nPaths, treeRev, lim)
		st.treeRev, st.treeEntries = treeRev, nPaths
	} else {
		err = readPaths(s, st, nPaths, lim)
	}
	if err != nil {
		return nil, err
	}

	// few and small: no batching
	st.ipns = make(map[string]ipnsRec, size(nIPNS))
	for range nIPNS {
		name, err := s.str(MaxKeyLen)
		if err != nil {
			return nil, err
		}
		var rec ipnsRec
		if rec.seq, err = s.uvarint(); err != nil {
			return nil, err
		}
		sec, err := s.varint()
		if err != nil {
			return nil, err
		}
		nsec, err := s.uvarint()
		if err != nil {
			return nil, err
		}
		if nsec >= 1e9 {
			return nil, fmt.Errorf("%w: IPNS EOL with %d nanoseconds", ErrCorrupt, nsec)
		}
		rec.eol = time.Unix(sec, int64(nsec)).UTC()
		n, err := s.uvarint()
		if err != nil {
			return nil, err
		}
		if n > MaxIPNSRecordSize {
			return nil, fmt.Errorf("%w: IPNS record of %d bytes", ErrCorrupt, n)
		}
		if rec.data, err = s.bytesN(int(n)); err != nil {
			return nil, err
		}
		st.ipns[name] = rec
	}
	if uint64(len(st.ipns)) != nIPNS {
		return nil, fmt.Errorf("%w: duplicate IPNS records in snapshot", ErrCorrupt)
	}
	if st.epochs, err = readEpochs(s, nEpochs, lim); err != nil {
		return nil, err
	}
	st.epochsDone = epochsDone
	if st.damages, err = readDamages(s, nDamages, lim); err != nil {
		return nil, err
	}

	st.dedup = make([]dedupEntry, 0, nDedup)
	seen := make(map[RequestID]struct{}, nDedup)
	for range nDedup {
		var e dedupEntry
		b, err := s.next(16)
		if err != nil {
			return nil, err
		}
		copy(e.id[:], b)
		if e.index, err = s.uvarint(); err != nil {
			return nil, err
		}
		if _, dup := seen[e.id]; dup {
			return nil, fmt.Errorf("%w: duplicate request id in snapshot", ErrCorrupt)
		}
		seen[e.id] = struct{}{}
		st.dedup = append(st.dedup, e)
	}

	want = s.sum()
	sum, err = s.next(4)
	if err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint32(sum) != want {
		return nil, fmt.Errorf("%w: snapshot checksum mismatch", ErrCorrupt)
	}
	if s.w != s.r {
		return nil, fmt.Errorf("%w: bytes after the snapshot's end", ErrCorrupt)
	}
	switch {
	case s.err == nil:
		var one [1]byte
		if n, err := io.ReadFull(s.src, one[:]); n > 0 {
			return nil, fmt.Errorf("%w: bytes after the snapshot's end", ErrCorrupt)
		} else if !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("consensus: read snapshot: %w", err)
		}
	case s.err != io.EOF:
		return nil, fmt.Errorf("consensus: read snapshot: %w", s.err)
	}
	return st, nil
}

// readTree reads the tree of a version 4 snapshot: a root at revision rev
// with entries entries below it. As for keys, each batch of records gets
// one string for its names and link targets, and one slab for its nodes.
func readTree(s *snapReader, entries, rev uint64, lim snapLimits) (*tnode, error) {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: tree: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	size := func(n uint64) int { return int(min(n, uint64(lim.prealloc))) }
	rootRev, err := s.uvarint()
	if err != nil {
		return nil, err
	}
	kind, err := s.byte()
	if err != nil {
		return nil, err
	}
	if kind != 1 {
		return nil, corrupt("the root is not a directory")
	}
	at, err := s.uvarint()
	if err != nil {
		return nil, err
	}
	count, err := s.uvarint()
	if err != nil {
		return nil, err
	}
	if rootRev != rev || count > entries || at != 0 {
		return nil, corrupt("root at revision %d (placed at %d) with %d children; header: revision %d, %d entries", rootRev, at, count, rev, entries)
	}
	root := &tnode{rev: rootRev, dir: &tdir{kids: make(map[string]*tnode, size(count))}}

	type frame struct {
		d         *tdir
		left, rev uint64 // children still to read; their revisions are at most rev
	}
	type pending struct {
		d               *tdir
		n               *tnode
		start, mid, end int // name: buf[start:mid]; link: buf[mid:end]
	}
	var (
		stack = []frame{{root.dir, count, rootRev}}
		pend  = make([]pending, 0, batchRecords)
		buf   []byte
		slab  []tnode
		read  uint64
	)
	flush := func() error {
		all := string(buf)
		for _, p := range pend {
			name := all[p.start:p.mid]
			if _, dup := p.d.kids[name]; dup {
				return corrupt("name %q twice in a directory", name)
			}
			if p.end > p.mid {
				p.n.link = all[p.mid:p.end]
			}
			p.d.kids[name] = p.n
		}
		buf, pend = buf[:0], pend[:0]
		return nil
	}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.left == 0 {
			stack = stack[:len(stack)-1]
			continue
		}
		top.left--
		if read == entries {
			return nil, corrupt("more than the %d entries of the header", entries)
		}
		read++
		p := pending{d: top.d, start: len(buf)}
		n, err := s.uvarint()
		if err != nil {
			return nil, err
		}
		if n == 0 || n > MaxKeyLen {
			return nil, corrupt("a name of %d bytes", n)
		}
		name, err := s.next(int(n))
		if err != nil {
			return nil, err
		}
		if bytes.IndexByte(name, '/') >= 0 || string(name) == "." || string(name) == ".." {
			return nil, corrupt("bad name %q", name)
		}
		buf = append(buf, name...)
		p.mid = len(buf)
		if len(slab) == 0 {
			slab = make([]tnode, batchRecords)
		}
		p.n, slab = &slab[0], slab[1:]
		if p.n.rev, err = s.uvarint(); err != nil {
			return nil, err
		}
		if p.n.rev > top.rev {
			return nil, corrupt("an entry at revision %d in a directory at %d", p.n.rev, top.rev)
		}
		kind, err := s.byte()
		if err != nil {
			return nil, err
		}
		switch kind {
		case 0:
			n, err := s.uvarint()
			if err != nil {
				return nil, err
			}
			if n < 2 || n > 2+MaxKeyLen {
				return nil, corrupt("a link of %d bytes", n)
			}
			link, err := s.next(int(n))
			if err != nil {
				return nil, err
			}
			switch form, data := link[1], link[2:]; {
			case form == linkBase32:
			case form != linkPlain || len(data) == 0:
				return nil, corrupt("a link of form %d, %d bytes", form, len(data))
			case data[0] == 'b':
				if _, ok := compactTarget(string(data)); ok {
					return nil, corrupt("target %q not in its compact form", data)
				}
			}
			buf = append(buf, link...)
			if p.n.size, err = s.uvarint(); err != nil {
				return nil, err
			}
			if p.n.tsize, err = s.uvarint(); err != nil {
				return nil, err
			}
		case 1:
			at, err := s.uvarint()
			if err != nil {
				return nil, err
			}
			if at > p.n.rev {
				return nil, corrupt("a directory at revision %d placed at %d", p.n.rev, at)
			}
			count, err := s.uvarint()
			if err != nil {
				return nil, err
			}
			if count > entries-read {
				return nil, corrupt("a directory of %d entries, more than the header's %d", count, entries)
			}
			p.n.dir = &tdir{kids: make(map[string]*tnode, size(count)), at: at}
			stack = append(stack, frame{p.n.dir, count, p.n.rev})
		default:
			return nil, corrupt("entry kind %d", kind)
		}
		p.end = len(buf)
		pend = append(pend, p)
		if len(pend) == batchRecords {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if read != entries {
		return nil, corrupt("%d entries, header says %d", read, entries)
	}
	return root, nil
}

// readPaths reads the flat path -> CID map of snapshot versions 1 to 3
// and makes it a tree as replaying Link commands in path order would:
// links with their parent directories created. (Where one path was both a
// link and the parent of links, which those versions allowed, the
// directory wins.) The tree revision is then the number of links.
func readPaths(s *snapReader, st *snapState, n uint64, lim snapLimits) error {
	paths := make(map[string]string, min(n, uint64(lim.prealloc)))
	var kb keyBatch
	for left := n; left > 0; {
		kb.reset()
		k := min(left, batchRecords)
		for range 2 * k {
			if _, err := kb.read(s); err != nil {
				return err
			}
		}
		left -= k
		keys := kb.strings()
		for i := range int(k) {
			paths[keys(2*i)] = keys(2*i + 1)
		}
	}
	if uint64(len(paths)) != n {
		return fmt.Errorf("%w: duplicate paths in snapshot", ErrCorrupt)
	}
	t := newFileTree()
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		if !validTreePath(p) || paths[p] == "" {
			return fmt.Errorf("%w: snapshot path %q -> %q", ErrCorrupt, p, paths[p])
		}
		t.linkTotal(p, paths[p])
	}
	st.tree, st.treeRev, st.treeEntries = t.root, t.rev, uint64(t.entries)
	return nil
}

// readEpochs reads n repair epochs, checking what Validate checks of
// them.
func readEpochs(s *snapReader, n uint64, lim snapLimits) ([]Epoch, error) {
	corrupt := func(seq int, format string, args ...any) error {
		return fmt.Errorf("%w: repair epoch %d: %s", ErrCorrupt, seq, fmt.Sprintf(format, args...))
	}
	out := make([]Epoch, 0, min(n, uint64(lim.prealloc)))
	for i := range n {
		seq := int(i) + 1
		e := Epoch{Seq: i + 1}
		var err error
		if e.Reason, err = s.str(MaxReasonLen); err != nil {
			return nil, err
		}
		ns, err := s.varint()
		if err != nil {
			return nil, err
		}
		e.Begun = unixNano(ns)
		nlost, err := s.uvarint()
		if err != nil {
			return nil, err
		}
		if nlost == 0 || nlost > MaxRepairMembers {
			return nil, corrupt(seq, "%d lost members", nlost)
		}
		e.Lost = make([]string, 0, min(nlost, uint64(lim.prealloc)))
		for range nlost {
			id, err := s.str(MaxKeyLen)
			if err != nil {
				return nil, err
			}
			if id == "" || len(e.Lost) > 0 && e.Lost[len(e.Lost)-1] >= id {
				return nil, corrupt(seq, "lost members not sorted and distinct")
			}
			e.Lost = append(e.Lost, id)
		}
		npool, err := s.uvarint()
		if err != nil {
			return nil, err
		}
		if npool > MaxRepairMembers {
			return nil, corrupt(seq, "a pool of %d", npool)
		}
		if npool > 0 {
			e.Pool = make([]Candidate, 0, min(npool, uint64(lim.prealloc)))
		}
		for range npool {
			var p Candidate
			if p.ID, err = s.str(MaxKeyLen); err != nil {
				return nil, err
			}
			if p.Domain, err = s.str(MaxKeyLen); err != nil {
				return nil, err
			}
			if p.Free, err = s.uvarint(); err != nil {
				return nil, err
			}
			if p.ID == "" || len(e.Pool) > 0 && e.Pool[len(e.Pool)-1].ID >= p.ID {
				return nil, corrupt(seq, "pool not sorted and distinct")
			}
			e.Pool = append(e.Pool, p)
		}
		out = append(out, e)
	}
	return out, nil
}

// readDamages reads n damaged fragments.
func readDamages(s *snapReader, n uint64, lim snapLimits) (map[string]Damage, error) {
	out := make(map[string]Damage, min(n, uint64(lim.prealloc)))
	for range n {
		var d Damage
		var err error
		if d.Holder, err = s.str(MaxKeyLen); err != nil {
			return nil, err
		}
		k, err := s.str(MaxFragmentKeyLen)
		if err != nil {
			return nil, err
		}
		d.Key = []byte(k)
		if d.Block, err = s.str(MaxKeyLen); err != nil {
			return nil, err
		}
		if d.Coding, err = s.str(MaxCodingLen); err != nil {
			return nil, err
		}
		idx, err := s.uvarint()
		if err != nil {
			return nil, err
		}
		if d.Holder == "" || len(d.Key) == 0 || d.Block == "" || idx > MaxFragmentIndex {
			return nil, fmt.Errorf("%w: damaged fragment %q/%x of %q, index %d", ErrCorrupt, d.Holder, d.Key, d.Block, idx)
		}
		d.Index = int(idx)
		out[damageKey(d.Holder, d.Key)] = d
	}
	if uint64(len(out)) != n {
		return nil, fmt.Errorf("%w: duplicate damaged fragments in snapshot", ErrCorrupt)
	}
	return out, nil
}
