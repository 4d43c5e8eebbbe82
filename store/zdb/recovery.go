package zdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

const (
	checkpointFile = "zdb-index.ckpt"
	seqIndexFile   = "zdb-seq.idx"
	ckptMagic      = "FZCK"
	ckptHeader     = 49
)

// openNamespace opens the namespace's files and rebuilds its index: from the
// last checkpoint plus a replay of the records after it, or from all the
// data files when the checkpoint is missing or stale. A torn record at the
// end of the last data file is cut off. create, when not nil, gives the
// settings of a namespace that does not exist yet.
func (db *DB) openNamespace(name string, create *Settings) (*Namespace, error) {
	ns := &Namespace{
		db:       db,
		name:     name,
		dataDir:  filepath.Join(db.cfg.DataDir, name),
		indexDir: filepath.Join(db.cfg.IndexDir, name),
	}
	for _, d := range []string{ns.dataDir, ns.indexDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	ids, err := sortedIDs(ns.dataDir)
	if err != nil {
		return nil, err
	}
	settings, ok, err := loadSettings(ns.indexDir)
	if err != nil {
		return nil, err
	}
	if !ok {
		if create != nil {
			settings = *create
		} else {
			settings = Settings{Mode: db.cfg.Mode, Public: true}
			if len(ids) > 0 {
				db.log.Warn("zdb: namespace settings missing; using defaults", "namespace", name)
			}
		}
		settings.Generation = newGeneration()
		if len(ids) > 0 {
			if gen, err := fileGeneration(filepath.Join(ns.dataDir, dataFileName(ids[0]))); err == nil {
				settings.Generation = gen
			}
		}
		if err := saveSettings(ns.indexDir, settings); err != nil {
			return nil, err
		}
	}
	ns.settings = settings
	if err := ns.openFiles(ids); err != nil {
		ns.closeFiles()
		return nil, err
	}
	if err := ns.loadIndex(); err != nil {
		ns.closeFiles()
		return nil, err
	}
	return ns, nil
}

func fileGeneration(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b := make([]byte, fileHeaderSize)
	if _, err := io.ReadFull(f, b); err != nil {
		return 0, err
	}
	h, err := decodeFileHeader(b)
	return h.Generation, err
}

// openFiles opens the data files (creating the first) and checks headers.
func (ns *Namespace) openFiles(ids []uint32) error {
	if len(ids) == 0 {
		f, err := createDataFile(ns.dataDir, 0, ns.settings.Generation)
		if err != nil {
			return err
		}
		ns.files, ns.firstID = []*os.File{f}, 0
		ns.curSize, ns.dataSize = fileHeaderSize, fileHeaderSize
		return nil
	}
	for i, id := range ids {
		if i > 0 && id != ids[i-1]+1 {
			return fmt.Errorf("data file %s is missing", dataFileName(ids[i-1]+1))
		}
	}
	ns.firstID = ids[0]
	for i, id := range ids {
		path := filepath.Join(ns.dataDir, dataFileName(id))
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		ns.files = append(ns.files, f)
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		size := fi.Size()
		b := make([]byte, fileHeaderSize)
		_, rerr := f.ReadAt(b, 0)
		h, herr := decodeFileHeader(b)
		if rerr != nil || herr != nil {
			if i == len(ids)-1 && size <= fileHeaderSize {
				// crashed while creating it: nothing was ever written there
				ns.db.log.Warn("zdb: rewriting torn data file header", "namespace", ns.name, "file", path)
				if _, err := f.WriteAt(fileHeader{ID: id, Generation: ns.settings.Generation}.encode(), 0); err != nil {
					return err
				}
				if err := f.Truncate(fileHeaderSize); err != nil {
					return err
				}
				size = fileHeaderSize
			} else {
				return fmt.Errorf("%s: %w", path, errBadFileHeader)
			}
		} else if h.ID != id {
			return fmt.Errorf("%s: header says file %d", path, h.ID)
		} else if h.Generation != ns.settings.Generation {
			if i > 0 {
				return fmt.Errorf("%s: file belongs to another generation than %s", path, dataFileName(ids[0]))
			}
			// the data files were replaced (compaction finished, settings
			// not yet updated): adopt them; the stale checkpoint will not match
			ns.db.log.Warn("zdb: data files of a new generation; rebuilding index", "namespace", ns.name)
			ns.settings.Generation = h.Generation
			if err := saveSettings(ns.indexDir, ns.settings); err != nil {
				return err
			}
		}
		ns.dataSize += size
		if i == len(ids)-1 {
			ns.curSize = size
			f.Truncate(size) // frees blocks a crash left reserved past the end
		}
	}
	return nil
}

// loadIndex restores the index from the checkpoint and replays the rest.
func (ns *Namespace) loadIndex() error {
	if ns.settings.Mode == ModeSeq {
		x, err := openSeqIndex(filepath.Join(ns.indexDir, seqIndexFile))
		if err != nil {
			return err
		}
		ns.seq = x
	} else {
		ns.keys = newKeyIndex()
		os.Remove(filepath.Join(ns.indexDir, seqIndexFile))
	}
	start := pos{File: ns.firstID, Off: fileHeaderSize}
	ck, err := ns.readCheckpoint()
	switch {
	case err == nil:
		start = ck.at
	case errors.Is(err, os.ErrNotExist):
		if ns.dataSize > fileHeaderSize*int64(len(ns.files)) {
			ns.db.log.Warn("zdb: no index checkpoint; rebuilding from data files", "namespace", ns.name)
		}
	default:
		ns.db.log.Warn("zdb: index checkpoint unusable; rebuilding from data files", "namespace", ns.name, "err", err)
	}
	if err != nil {
		ns.keys = nil
		if ns.seq != nil {
			if err := ns.seq.reset(); err != nil {
				return err
			}
		} else {
			ns.keys = newKeyIndex()
		}
	}
	applied, err := ns.replay(start)
	if err != nil {
		return err
	}
	end := ns.endPos()
	ns.wbufOff = ns.curSize
	ns.flushed.Store(end.u64())
	ns.synced.Store(end.u64())
	if applied == 0 && err == nil && ck != nil {
		return nil
	}
	// what was replayed may sit only in the page cache: make it durable
	// before the index points at it, then checkpoint so the next start is
	// fast.
	if err := ns.cur().Sync(); err != nil {
		return err
	}
	if ns.seq != nil {
		if err := ns.seq.writeOut(end.u64() + 1); err != nil {
			return err
		}
		if err := ns.seq.recount(); err != nil {
			return err
		}
	}
	return ns.checkpoint()
}

type checkpoint struct {
	at pos
}

// ckptInfo is a checkpoint's header.
type ckptInfo struct {
	gen     uint64
	at      pos
	mode    Mode
	live    uint64
	count   uint64
	payload int64
}

// decodeCheckpoint checks a checkpoint file's framing and calls fn for each
// user-mode entry in order. It trusts nothing: counts are bounded by the
// bytes present.
func decodeCheckpoint(b []byte, fn func(e entry, key []byte) error) (ckptInfo, error) {
	var ci ckptInfo
	if len(b) < ckptHeader+4 || string(b[:4]) != ckptMagic {
		return ci, errors.New("bad checkpoint header")
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc(body) != sum {
		return ci, errors.New("checkpoint checksum mismatch")
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[4:]); v != formatVersion {
		return ci, fmt.Errorf("checkpoint version %d", v)
	}
	ci = ckptInfo{gen: le.Uint64(b[8:]), at: posFromU64(le.Uint64(b[16:])), mode: Mode(b[24]),
		live: le.Uint64(b[25:]), count: le.Uint64(b[33:]), payload: int64(le.Uint64(b[41:]))}
	if ci.mode != ModeUser && ci.mode != ModeSeq || ci.live > ci.count || ci.payload < 0 {
		return ci, errors.New("checkpoint is inconsistent")
	}
	rest := body[ckptHeader:]
	if ci.mode == ModeSeq {
		if len(rest) != 0 {
			return ci, errors.New("checkpoint is inconsistent")
		}
		return ci, nil
	}
	if ci.count > uint64(len(rest)/23) {
		return ci, errors.New("checkpoint truncated")
	}
	var live uint64
	for i := uint64(0); i < ci.count; i++ {
		if len(rest) < 22 {
			return ci, errors.New("checkpoint truncated")
		}
		e := entry{
			loc:    pos{File: le.Uint32(rest[0:]), Off: le.Uint32(rest[4:])},
			valLen: le.Uint32(rest[8:]),
			time:   le.Uint32(rest[12:]),
			valCRC: le.Uint32(rest[16:]),
			flags:  rest[20],
		}
		klen := int(rest[21])
		if len(rest) < 22+klen || klen == 0 || e.flags&^knownFlags != 0 || e.loc.isZero() {
			return ci, errors.New("checkpoint is inconsistent")
		}
		if !e.deleted() {
			live++
		}
		if err := fn(e, rest[22:22+klen]); err != nil {
			return ci, err
		}
		rest = rest[22+klen:]
	}
	if live != ci.live || len(rest) != 0 {
		return ci, errors.New("checkpoint is inconsistent")
	}
	return ci, nil
}

// readCheckpoint loads the checkpoint into the (empty) index when it matches
// the data files.
func (ns *Namespace) readCheckpoint() (*checkpoint, error) {
	b, err := os.ReadFile(filepath.Join(ns.indexDir, checkpointFile))
	if err != nil {
		return nil, err
	}
	ci, err := decodeCheckpoint(b, func(entry, []byte) error { return nil }) // validate first
	if err != nil {
		return nil, err
	}
	if ci.gen != ns.settings.Generation || ci.mode != ns.settings.Mode {
		return nil, errors.New("checkpoint is of other data files")
	}
	f := ns.file(ci.at.File)
	if f == nil {
		return nil, errors.New("checkpoint position is past the data files")
	}
	if fi, err := f.Stat(); err != nil || fi.Size() < int64(ci.at.Off) {
		return nil, errors.New("checkpoint position is past the data files")
	}
	if ns.seq != nil {
		if err := ns.seq.truncate(ci.count); err != nil {
			return nil, err
		}
		if ns.seq.durable < ci.count {
			return nil, errors.New("sequential index file is shorter than its checkpoint")
		}
		ns.seq.live, ns.seq.payload = int64(ci.live), ci.payload
		return &checkpoint{at: ci.at}, nil
	}
	x := ns.keys
	x.reserve(int(ci.count))
	_, err = decodeCheckpoint(b, func(e entry, key []byte) error {
		if x.find(key) >= 0 {
			return errors.New("checkpoint holds a key twice")
		}
		e.keyOff, e.keyLen = x.storeKey(key), uint8(len(key))
		x.insertSlot(key, uint32(x.add(e)+1))
		if !e.deleted() {
			x.live++
			x.payload += int64(e.valLen)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if x.payload != ci.payload {
		return nil, errors.New("checkpoint is inconsistent")
	}
	return &checkpoint{at: ci.at}, nil
}

// checkpoint makes the data durable and writes the index as of the current
// end, so a restart replays only what comes after.
func (ns *Namespace) checkpoint() error {
	ns.ckptMu.Lock()
	defer ns.ckptMu.Unlock()

	ns.mu.Lock()
	if ns.closed {
		ns.mu.Unlock()
		return ErrClosed
	}
	if err := ns.flushLocked(); err != nil {
		ns.mu.Unlock()
		return err
	}
	if err := ns.cur().Sync(); err != nil {
		ns.mu.Unlock()
		return err
	}
	at := ns.endPos()
	ns.synced.Store(at.u64())
	var entries []entry
	var arena [][]byte
	var live, count uint64
	var payload int64
	if ns.seq != nil {
		if err := ns.seq.writeOut(at.u64() + 1); err != nil {
			ns.mu.Unlock()
			return err
		}
		if err := ns.seq.f.Sync(); err != nil {
			ns.mu.Unlock()
			return err
		}
		live, count, payload = uint64(ns.seq.live), ns.seq.durable, ns.seq.payload
	} else {
		entries = ns.keys.snapshot()
		arena = append([][]byte(nil), ns.keys.arena...) // chunks only grow past their len
		live, count, payload = uint64(ns.keys.live), uint64(len(entries)), ns.keys.payload
	}
	gen, mode := ns.settings.Generation, ns.settings.Mode
	ns.mu.Unlock()

	path := filepath.Join(ns.indexDir, checkpointFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	h := crc32.New(castagnoli)
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	le := binary.LittleEndian
	hdr := make([]byte, ckptHeader)
	copy(hdr, ckptMagic)
	le.PutUint32(hdr[4:], formatVersion)
	le.PutUint64(hdr[8:], gen)
	le.PutUint64(hdr[16:], at.u64())
	hdr[24] = byte(mode)
	le.PutUint64(hdr[25:], live)
	le.PutUint64(hdr[33:], count)
	le.PutUint64(hdr[41:], uint64(payload))
	w.Write(hdr)
	var rec [22]byte
	for i := range entries {
		e := &entries[i]
		le.PutUint32(rec[0:], e.loc.File)
		le.PutUint32(rec[4:], e.loc.Off)
		le.PutUint32(rec[8:], e.valLen)
		le.PutUint32(rec[12:], e.time)
		le.PutUint32(rec[16:], e.valCRC)
		rec[20], rec[21] = e.flags, e.keyLen
		w.Write(rec[:])
		c := arena[e.keyOff/arenaChunk]
		o := e.keyOff % arenaChunk
		w.Write(c[o : o+uint32(e.keyLen)])
	}
	err = w.Flush()
	if err == nil {
		var sum [4]byte
		le.PutUint32(sum[:], h.Sum32())
		_, err = f.Write(sum[:])
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return syncDir(ns.indexDir)
}

// replay applies every record from start to the end of the data files to
// the index. A torn tail of the last file is cut off; damaged records
// elsewhere are skipped and logged (`fungi zdb check` reports them).
func (ns *Namespace) replay(start pos) (int, error) {
	applied := 0
	for id := start.File; ns.file(id) != nil; id++ {
		off := int64(fileHeaderSize)
		if id == start.File {
			off = int64(start.Off)
		}
		f := ns.file(id)
		fi, err := f.Stat()
		if err != nil {
			return applied, err
		}
		size := fi.Size()
		problems, err := walkFile(f, off, size, func(h recHeader, key []byte, at int64) error {
			applied++
			return ns.apply(h, key, pos{File: id, Off: uint32(at)})
		}, nil)
		if err != nil {
			return applied, err
		}
		for _, p := range problems {
			if p.Kind == "torn tail" && id == ns.curID() {
				ns.db.log.Warn("zdb: cutting torn tail", "namespace", ns.name,
					"file", dataFileName(id), "offset", p.Offset, "bytes", p.Bytes)
				if err := f.Truncate(p.Offset); err != nil {
					return applied, err
				}
				ns.dataSize -= p.Bytes
				ns.curSize = p.Offset
				continue
			}
			ns.db.log.Error("zdb: damaged bytes in data file skipped (run fungi zdb check)",
				"namespace", ns.name, "file", dataFileName(id), "offset", p.Offset, "bytes", p.Bytes)
		}
	}
	return applied, nil
}

// apply puts one replayed record into the index.
func (ns *Namespace) apply(h recHeader, key []byte, loc pos) error {
	if ns.seq != nil {
		id, err := seqID(key)
		if err != nil {
			return nil // not a sequential record; skip it
		}
		for ns.seq.next() < id {
			// ids are assigned in order, but be robust to gaps
			if err := ns.seq.put(ns.seq.next(), seqSlot{}); err != nil {
				return err
			}
		}
		return ns.seq.put(id, seqSlot{loc: loc, valLen: h.ValLen, time: h.Time, flags: h.Flags & flagDeleted})
	}
	ns.keys.put(key, entry{loc: loc, valLen: h.ValLen, time: h.Time, valCRC: h.ValCRC, flags: h.Flags & flagDeleted})
	return nil
}

// close flushes, fsyncs and (with ckpt) checkpoints, then closes the files.
func (ns *Namespace) close(ckpt bool) error {
	var err error
	if ckpt {
		err = ns.checkpoint()
		if errors.Is(err, ErrClosed) {
			err = nil
		}
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if !ns.closed && !ckpt {
		ns.flushLocked()
	}
	if !ns.closed {
		ns.releaseReserveLocked()
	}
	ns.closed = true
	ns.gone.Store(true)
	ns.closeFiles()
	return err
}

func (ns *Namespace) closeFiles() {
	for _, f := range ns.files {
		f.Close()
	}
	ns.files = nil
	if ns.seq != nil {
		ns.seq.close()
	}
}

// Reset deletes every key and all history (FLUSH): the data files are
// removed and the namespace starts over with its settings kept.
func (ns *Namespace) Reset() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.closed {
		return ErrClosed
	}
	if ns.frozen || ns.locked {
		return ns.checkWritable()
	}
	for i, f := range ns.files {
		f.Close()
		os.Remove(filepath.Join(ns.dataDir, dataFileName(ns.firstID+uint32(i))))
	}
	os.Remove(filepath.Join(ns.indexDir, checkpointFile))
	ns.settings.Generation = newGeneration()
	if err := saveSettings(ns.indexDir, ns.settings); err != nil {
		ns.failed = err
		return err
	}
	f, err := createDataFile(ns.dataDir, 0, ns.settings.Generation)
	if err != nil {
		ns.failed = err
		return err
	}
	ns.files, ns.firstID = []*os.File{f}, 0
	ns.curSize, ns.dataSize, ns.wbufOff, ns.wbuf = fileHeaderSize, fileHeaderSize, fileHeaderSize, ns.wbuf[:0]
	ns.failed, ns.reserved = nil, 0
	if ns.seq != nil {
		if err := ns.seq.reset(); err != nil {
			return err
		}
	} else {
		ns.keys = newKeyIndex()
	}
	end := ns.endPos().u64()
	ns.flushed.Store(end)
	ns.synced.Store(end)
	return nil
}
