package zdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/fungistor/fungistor/store"
)

const (
	wbufFlush = 1 << 20 // flush the write buffer once it holds this much
	wbufKeep  = 4 << 20 // largest write buffer kept after a flush
)

// ErrClosed is returned by a namespace that was closed, deleted or flushed
// under the caller.
var ErrClosed = errors.New("namespace closed")

// Namespace is one ZDB namespace: its data files, its index and settings.
// All methods are safe for concurrent use.
//
// Writes append a record to an in-process buffer and update the index under
// the namespace lock; Write returns the position the caller must pass to
// Flush before it acknowledges the write (the server batches one Flush per
// round of pipelined commands). Set and Del do both.
type Namespace struct {
	db       *DB
	name     string
	dataDir  string
	indexDir string

	mu         sync.RWMutex
	settings   Settings
	locked     bool // read-only until unlocked (not persisted, as in 0-db)
	frozen     bool // no reads or writes (not persisted)
	files      []*os.File
	firstID    uint32 // id of files[0]
	curSize    int64  // logical size of the current (last) file, buffer included
	wbuf       []byte
	wbufOff    int64  // offset in the current file of wbuf[0]
	scratch    []byte // for comparisons under mu (write lock)
	reserved   int64  // bytes of the current file reserved with fallocate
	noPrealloc bool   // the filesystem refused fallocate
	dataSize   int64  // logical bytes of all data files
	keys       *keyIndex
	seq        *seqIndex
	failed     error // a write to disk failed; the namespace refuses writes
	closed     bool
	gone       atomic.Bool // closed, for lock-free checks

	flushed atomic.Uint64 // pos.u64 up to which records are in the OS
	syncMu  sync.Mutex
	synced  atomic.Uint64 // pos.u64 up to which records are fsynced

	ckptMu sync.Mutex // one checkpoint at a time
}

// Closed reports whether this handle was closed (namespace deleted, reloaded
// or compacted): look the namespace up again by name.
func (ns *Namespace) Closed() bool { return ns.gone.Load() }

// Name returns the namespace's name.
func (ns *Namespace) Name() string { return ns.name }

// Settings returns a copy of the persistent settings.
func (ns *Namespace) Settings() Settings {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.settings
}

// Mode returns the key mode.
func (ns *Namespace) Mode() Mode { return ns.Settings().Mode }

func (ns *Namespace) curID() uint32 { return ns.firstID + uint32(len(ns.files)) - 1 }

func (ns *Namespace) cur() *os.File { return ns.files[len(ns.files)-1] }

func (ns *Namespace) endPos() pos { return pos{File: ns.curID(), Off: uint32(ns.curSize)} }

func (ns *Namespace) file(id uint32) *os.File {
	if id < ns.firstID || int(id-ns.firstID) >= len(ns.files) {
		return nil
	}
	return ns.files[id-ns.firstID]
}

func dataFileName(id uint32) string { return fmt.Sprintf("zdb-data-%08d", id) }

// --- writes ---

// checkWritable reports why a write is refused, under mu.
func (ns *Namespace) checkWritable() error {
	switch {
	case ns.closed:
		return ErrClosed
	case ns.failed != nil:
		return fmt.Errorf("namespace %s is read-only after a write error: %w", ns.name, ns.failed)
	case ns.frozen:
		return store.ErrFrozen
	case ns.locked:
		return store.ErrReadOnly
	}
	return nil
}

func (ns *Namespace) checkReadable() error {
	switch {
	case ns.closed:
		return ErrClosed
	case ns.frozen:
		return store.ErrFrozen
	}
	return nil
}

// Write stores value under key without waiting for the disk: pass the
// returned commit position to Flush before acknowledging. In a sequential
// namespace a nil key appends a new id. changed is false (and nothing is
// written) when key already holds an equal value.
func (ns *Namespace) Write(key, value []byte) (stored []byte, changed bool, commit uint64, err error) {
	return ns.WriteTime(key, value, ns.db.now())
}

// WriteTime is Write with the record's timestamp given (replication: 0-db's
// admin-only SET key value timestamp).
func (ns *Namespace) WriteTime(key, value []byte, now uint32) (stored []byte, changed bool, commit uint64, err error) {
	if len(value) > store.MaxValueSize {
		return nil, false, 0, store.ErrValueTooLarge
	}
	if len(key) > store.MaxKeySize {
		return nil, false, 0, store.ErrKeyTooLong
	}
	valCRC := crc(value)

	ns.mu.Lock()
	defer ns.mu.Unlock()
	if err := ns.checkWritable(); err != nil {
		return nil, false, 0, err
	}
	if ns.settings.Mode == ModeSeq {
		return ns.writeSeq(key, value, valCRC, now)
	}
	if len(key) == 0 {
		return nil, false, 0, errEmptyKey
	}
	var prev pos
	var oldLen uint32
	if e, ok := ns.keys.get(key); ok {
		prev = e.loc
		if !e.deleted() {
			oldLen = e.valLen
			if ns.settings.Worm {
				return nil, false, 0, ErrWorm
			}
			if e.valLen == uint32(len(value)) && e.valCRC == valCRC {
				if same, err := ns.sameValueLocked(e.loc, len(key), value); err != nil {
					return nil, false, 0, err
				} else if same {
					return key, false, 0, nil
				}
			}
		}
	}
	if err := ns.checkSpace(len(value), oldLen); err != nil {
		return nil, false, 0, err
	}
	h := recHeader{KeyLen: uint8(len(key)), ValLen: uint32(len(value)), Time: now, Prev: prev, ValCRC: valCRC}
	loc, err := ns.appendLocked(h, key, value)
	if err != nil {
		return nil, false, 0, err
	}
	ns.keys.put(key, entry{loc: loc, valLen: h.ValLen, time: now, valCRC: valCRC})
	return key, true, ns.endPos().u64(), nil
}

// ErrWorm: the namespace is in worm mode (write once, read many) and the
// key exists, so it may be neither overwritten nor deleted.
var ErrWorm = fmt.Errorf("%w: worm mode forbids overwrite and delete", store.ErrReadOnly)

func (ns *Namespace) writeSeq(key, value []byte, valCRC, now uint32) ([]byte, bool, uint64, error) {
	id := ns.seq.next()
	var prev pos
	var oldLen uint32
	if len(key) > 0 {
		var err error
		id, err = seqID(key)
		if err != nil {
			return nil, false, 0, ErrOnlyUpdate
		}
		old, err := ns.seq.get(id)
		if err != nil {
			return nil, false, 0, err
		}
		if old.empty() || old.flags&flagDeleted != 0 {
			return nil, false, 0, ErrOnlyUpdate
		}
		if ns.settings.Worm {
			return nil, false, 0, ErrWorm
		}
		prev, oldLen = old.loc, old.valLen
		if old.valLen == uint32(len(value)) {
			if same, err := ns.sameValueLocked(old.loc, 8, value); err != nil {
				return nil, false, 0, err
			} else if same {
				return seqKey(id), false, 0, nil
			}
		}
	}
	if err := ns.checkSpace(len(value), oldLen); err != nil {
		return nil, false, 0, err
	}
	k := seqKey(id)
	h := recHeader{KeyLen: 8, ValLen: uint32(len(value)), Time: now, Prev: prev, ValCRC: valCRC}
	loc, err := ns.appendLocked(h, k, value)
	if err != nil {
		return nil, false, 0, err
	}
	if err := ns.seq.put(id, seqSlot{loc: loc, valLen: h.ValLen, time: now}); err != nil {
		ns.failed = err
		return nil, false, 0, err
	}
	ns.maybeWriteOutLocked()
	return k, true, ns.endPos().u64(), nil
}

// seqKey encodes an id as 0-db does: 8 bytes, little endian.
func seqKey(id uint64) []byte {
	k := make([]byte, 8)
	binary.LittleEndian.PutUint64(k, id)
	return k
}

func seqID(key []byte) (uint64, error) {
	switch len(key) {
	case 8:
		return binary.LittleEndian.Uint64(key), nil
	case 4: // 0-db v1 clients sent 32-bit ids
		return uint64(binary.LittleEndian.Uint32(key)), nil
	}
	return 0, fmt.Errorf("%w: sequential keys are 8-byte little-endian ids", store.ErrInvalidKey)
}

// checkSpace applies maxsize as 0-db does: to the value bytes of live keys,
// so overwriting a value with one no larger always fits.
func (ns *Namespace) checkSpace(valLen int, oldLen uint32) error {
	if ns.settings.MaxSize > 0 && ns.payloadLocked()+int64(valLen) > ns.settings.MaxSize+int64(oldLen) {
		return store.ErrNamespaceFull
	}
	return nil
}

func (ns *Namespace) payloadLocked() int64 {
	if ns.seq != nil {
		return ns.seq.payload
	}
	return ns.keys.payload
}

var errEmptyKey = fmt.Errorf("%w: empty key", store.ErrInvalidKey)

// ErrOnlyUpdate: in a sequential namespace, a key given to SET must be an
// id that holds a value.
var ErrOnlyUpdate = fmt.Errorf("%w: only update of an existing id is allowed", store.ErrInvalidKey)

// sameValueLocked reports whether the record at loc (of keyLen and len(value)
// bytes) holds exactly value. It runs only when length and checksum already
// match, so it nearly always confirms an idempotent rewrite; comparing bytes
// rather than trusting a 32-bit checksum means a new value is never dropped.
func (ns *Namespace) sameValueLocked(loc pos, keyLen int, value []byte) (bool, error) {
	size := int64(recHeaderSize) + int64(keyLen) + int64(len(value))
	_, _, old, rec, err := ns.readRecordInto(loc, size, ns.scratch)
	if cap(rec) <= 1<<20 {
		ns.scratch = rec
	}
	if err != nil {
		return false, err
	}
	return bytes.Equal(old, value), nil
}

// Delete writes a deletion marker for key without waiting for the disk, and
// returns the commit position for Flush.
func (ns *Namespace) Delete(key []byte) (uint64, error) {
	return ns.DeleteTime(key, ns.db.now())
}

// DeleteTime is Delete with the marker's timestamp given.
func (ns *Namespace) DeleteTime(key []byte, now uint32) (uint64, error) {
	if len(key) > store.MaxKeySize {
		return 0, store.ErrKeyTooLong
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if err := ns.checkWritable(); err != nil {
		return 0, err
	}
	if len(key) == 0 {
		return 0, errEmptyKey
	}
	if ns.settings.Worm {
		return 0, ErrWorm
	}
	if ns.settings.Mode == ModeSeq {
		id, err := seqID(key)
		if err != nil {
			return 0, store.ErrNotFound
		}
		old, err := ns.seq.get(id)
		if err != nil {
			return 0, err
		}
		if old.empty() || old.flags&flagDeleted != 0 {
			return 0, store.ErrNotFound
		}
		k := seqKey(id)
		h := recHeader{Flags: flagDeleted, KeyLen: 8, Time: now, Prev: old.loc, ValCRC: crc(nil)}
		loc, err := ns.appendLocked(h, k, nil)
		if err != nil {
			return 0, err
		}
		if err := ns.seq.put(id, seqSlot{loc: loc, time: now, flags: flagDeleted}); err != nil {
			ns.failed = err
			return 0, err
		}
		ns.maybeWriteOutLocked()
		return ns.endPos().u64(), nil
	}
	e, ok := ns.keys.get(key)
	if !ok || e.deleted() {
		return 0, store.ErrNotFound
	}
	h := recHeader{Flags: flagDeleted, KeyLen: uint8(len(key)), Time: now, Prev: e.loc, ValCRC: crc(nil)}
	loc, err := ns.appendLocked(h, key, nil)
	if err != nil {
		return 0, err
	}
	ns.keys.put(key, entry{loc: loc, time: now, flags: flagDeleted, valCRC: h.ValCRC})
	return ns.endPos().u64(), nil
}

// appendLocked adds a record to the write buffer, rotating the data file
// when it would grow past the configured size.
func (ns *Namespace) appendLocked(h recHeader, key, value []byte) (pos, error) {
	size := h.size()
	if ns.curSize+size > ns.db.cfg.DataSize && ns.curSize > fileHeaderSize {
		if err := ns.rotateLocked(); err != nil {
			return pos{}, err
		}
	}
	loc := ns.endPos()
	ns.wbuf = appendRecord(ns.wbuf, h, key, value)
	ns.curSize += size
	ns.dataSize += size
	if len(ns.wbuf) >= wbufFlush {
		if err := ns.flushLocked(); err != nil {
			return pos{}, err
		}
	}
	return loc, nil
}

// flushLocked writes the buffer to the current data file.
func (ns *Namespace) flushLocked() error {
	if len(ns.wbuf) > 0 {
		ns.preallocLocked(ns.wbufOff + int64(len(ns.wbuf)))
		if _, err := ns.cur().WriteAt(ns.wbuf, ns.wbufOff); err != nil {
			ns.db.stats.DataWriteErrors.Add(1)
			ns.failed = err
			ns.db.log.Error("zdb: write failed; namespace is read-only until restart", "namespace", ns.name, "err", err)
			return fmt.Errorf("zdb write: %w", err)
		}
		ns.wbufOff += int64(len(ns.wbuf))
		ns.db.stats.DataWriteBytes.Add(int64(len(ns.wbuf)))
		if cap(ns.wbuf) > wbufKeep {
			ns.wbuf = nil
		}
		ns.wbuf = ns.wbuf[:0]
	}
	ns.flushed.Store(ns.endPos().u64())
	return nil
}

// preallocStep is how much disk space is reserved ahead of the appends.
const preallocStep = 32 << 20

// preallocLocked reserves disk blocks beyond the current file's end
// (without changing its size) before appends reach them: on ext4 and xfs,
// many small appends that each extend a file cost ~10x more than writes
// into reserved blocks (measured: 64 KiB appends 0.43 GB/s, into reserved
// space 5.5 GB/s). At most preallocStep is reserved ahead; the reserve is
// released when the file is closed or rotated. Filesystems without
// fallocate simply skip it.
func (ns *Namespace) preallocLocked(end int64) {
	if end <= ns.reserved || ns.noPrealloc {
		return
	}
	want := min(max(end, ns.reserved)+preallocStep, max(ns.db.cfg.DataSize, end))
	if err := syscall.Fallocate(int(ns.cur().Fd()), 1 /* FALLOC_FL_KEEP_SIZE */, ns.reserved, want-ns.reserved); err != nil {
		ns.noPrealloc = true
		return
	}
	ns.reserved = want
}

// releaseReserveLocked gives back the blocks reserved past the end of the
// current file.
func (ns *Namespace) releaseReserveLocked() {
	if ns.reserved > ns.curSize && len(ns.files) > 0 {
		ns.cur().Truncate(ns.wbufOff)
	}
	ns.reserved = 0
}

// rotateLocked closes the current data file (synced, so everything before a
// rotation is durable) and starts the next one.
func (ns *Namespace) rotateLocked() error {
	if err := ns.flushLocked(); err != nil {
		return err
	}
	ns.releaseReserveLocked()
	if err := ns.cur().Sync(); err != nil {
		ns.failed = err
		return fmt.Errorf("zdb sync: %w", err)
	}
	ns.synced.Store(ns.endPos().u64())
	if ns.seq != nil {
		if err := ns.seq.writeOut(ns.synced.Load()); err != nil {
			ns.failed = err
			return err
		}
	}
	id := ns.curID() + 1
	f, err := createDataFile(ns.dataDir, id, ns.settings.Generation)
	if err != nil {
		ns.failed = err
		return err
	}
	ns.files = append(ns.files, f)
	ns.curSize, ns.wbufOff = fileHeaderSize, fileHeaderSize
	ns.dataSize += fileHeaderSize
	ns.flushed.Store(ns.endPos().u64())
	ns.db.checkpointSoon(ns)
	return nil
}

func createDataFile(dir string, id uint32, gen uint64) (*os.File, error) {
	path := filepath.Join(dir, dataFileName(id))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(fileHeader{ID: id, Generation: gen}.encode()); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// maybeWriteOutLocked bounds the sequential index's RAM: when too many slots
// wait for a sync, sync now.
func (ns *Namespace) maybeWriteOutLocked() {
	if len(ns.seq.tail)+len(ns.seq.pending) < 1<<16 {
		return
	}
	if err := ns.flushLocked(); err != nil {
		return
	}
	if err := ns.cur().Sync(); err != nil {
		ns.failed = err
		return
	}
	ns.synced.Store(ns.endPos().u64())
	if err := ns.seq.writeOut(ns.synced.Load()); err != nil {
		ns.failed = err
	}
}

// Flush makes every write up to commit (from Write or Delete) reach the OS,
// and the disk when the DB syncs every write. Concurrent callers share one
// write and one fsync (group commit).
func (ns *Namespace) Flush(commit uint64) error {
	if ns.flushed.Load() < commit {
		ns.mu.Lock()
		var err error
		if ns.closed {
			err = ErrClosed
		} else if ns.flushed.Load() < commit {
			err = ns.flushLocked()
		}
		ns.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if ns.db.cfg.Sync {
		return ns.syncTo(commit)
	}
	return nil
}

// Committed reports whether Flush(commit) would return without any I/O.
func (ns *Namespace) Committed(commit uint64) bool {
	if ns.flushed.Load() < commit {
		return false
	}
	return !ns.db.cfg.Sync || ns.synced.Load() >= commit
}

// syncTo fsyncs the current data file so that commit is durable.
func (ns *Namespace) syncTo(commit uint64) error {
	if ns.synced.Load() >= commit {
		return nil
	}
	ns.syncMu.Lock()
	defer ns.syncMu.Unlock()
	if ns.synced.Load() >= commit {
		return nil
	}
	ns.mu.RLock()
	if ns.closed {
		ns.mu.RUnlock()
		return ErrClosed
	}
	target := ns.flushed.Load()
	f := ns.cur()
	ns.mu.RUnlock()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("zdb sync: %w", err)
	}
	if ns.synced.Load() < target {
		ns.synced.Store(target)
	}
	if ns.seq != nil {
		ns.mu.Lock()
		if !ns.closed {
			if err := ns.seq.writeOut(ns.synced.Load()); err != nil {
				ns.failed = err
			}
		}
		ns.mu.Unlock()
	}
	return nil
}

// Sync flushes and fsyncs everything written so far.
func (ns *Namespace) Sync() error {
	ns.mu.Lock()
	err := ns.checkReadable()
	if err == nil {
		err = ns.flushLocked()
	}
	end := ns.endPos().u64()
	ns.mu.Unlock()
	if err != nil {
		return err
	}
	return ns.syncTo(end)
}

// --- reads ---

// readRecordLocked reads and verifies the record at loc, from the write
// buffer or the data file. The returned slices are freshly allocated.
func (ns *Namespace) readRecordLocked(loc pos) (recHeader, []byte, []byte, error) {
	h, k, v, _, err := ns.readRecordInto(loc, 0, nil)
	if err != nil {
		return h, nil, nil, err
	}
	return h, bytes.Clone(k), v, nil
}

// readRecordInto reads and verifies the record at loc into buf (grown as
// needed; the key and value alias it). size, when known from the index,
// saves a second read.
func (ns *Namespace) readRecordInto(loc pos, size int64, buf []byte) (h recHeader, key, val, rec []byte, err error) {
	if loc.File == ns.curID() && int64(loc.Off) >= ns.wbufOff {
		b := ns.wbuf[int64(loc.Off)-ns.wbufOff:]
		h, k, _, err := decodeRecord(b)
		if err != nil {
			return h, nil, nil, buf, fmt.Errorf("record %s: %w", loc, err)
		}
		buf = append(buf[:0], b[:h.size()]...)
		return h, buf[recHeaderSize : recHeaderSize+len(k)], buf[recHeaderSize+len(k) : h.size()], buf, nil
	}
	f := ns.file(loc.File)
	if f == nil {
		return recHeader{}, nil, nil, buf, fmt.Errorf("record %s: %w: data file missing", loc, store.ErrCorrupt)
	}
	if size <= 0 {
		var hb [recHeaderSize + store.MaxKeySize]byte
		n, err := f.ReadAt(hb[:], int64(loc.Off))
		if n < recHeaderSize {
			ns.db.stats.DataReadErrors.Add(1)
			return recHeader{}, nil, nil, buf, fmt.Errorf("record %s: %w: short read (%v)", loc, store.ErrCorrupt, err)
		}
		hh, _, err := decodeHeader(hb[:n])
		if err != nil {
			ns.db.stats.DataReadErrors.Add(1)
			return hh, nil, nil, buf, fmt.Errorf("record %s: %w", loc, err)
		}
		size = hh.size()
	}
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := f.ReadAt(buf, int64(loc.Off)); err != nil {
		ns.db.stats.DataReadErrors.Add(1)
		return recHeader{}, nil, nil, buf, fmt.Errorf("record %s: %w: %v", loc, store.ErrCorrupt, err)
	}
	ns.db.stats.DataReadBytes.Add(size)
	h, k, v, err := decodeRecord(buf)
	if err == nil && h.size() != size {
		err = errBadRecord
	}
	if err != nil {
		ns.db.stats.DataReadErrors.Add(1)
		return h, nil, nil, buf, fmt.Errorf("record %s: %w", loc, err)
	}
	return h, k, v, buf, nil
}

// Meta describes a key's latest record.
type Meta struct {
	Key    []byte
	Size   uint32 // value length
	Time   uint32 // unix seconds of the last write
	loc    pos
	exists bool
}

// lookupLocked finds key's latest live record.
//
// An empty key is store.ErrInvalidKey; in a sequential namespace a key that
// cannot be an id is simply not found (0-db answers nil).
func (ns *Namespace) lookupLocked(key []byte) (Meta, error) {
	if len(key) > store.MaxKeySize {
		return Meta{}, store.ErrKeyTooLong
	}
	if len(key) == 0 {
		return Meta{}, errEmptyKey
	}
	if ns.settings.Mode == ModeSeq {
		id, err := seqID(key)
		if err != nil {
			return Meta{}, store.ErrNotFound
		}
		s, err := ns.seq.get(id)
		if err != nil {
			return Meta{}, err
		}
		if s.empty() || s.flags&flagDeleted != 0 {
			return Meta{}, store.ErrNotFound
		}
		return Meta{Key: seqKey(id), Size: s.valLen, Time: s.time, loc: s.loc, exists: true}, nil
	}
	e, ok := ns.keys.get(key)
	if !ok || e.deleted() {
		return Meta{}, store.ErrNotFound
	}
	return Meta{Key: key, Size: e.valLen, Time: e.time, loc: e.loc, exists: true}, nil
}

// Get returns key's value, verified against its checksum, or
// store.ErrNotFound.
func (ns *Namespace) Get(_ context.Context, key []byte) ([]byte, error) {
	v, _, err := ns.GetBuf(key, nil)
	return v, err
}

// GetBuf is Get reading into buf (grown as needed): it returns the value,
// which aliases the returned buffer, for reuse by the next call.
func (ns *Namespace) GetBuf(key, buf []byte) (value, newBuf []byte, err error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if err := ns.checkReadable(); err != nil {
		return nil, buf, err
	}
	m, err := ns.lookupLocked(key)
	if err != nil {
		return nil, buf, err
	}
	size := int64(recHeaderSize) + int64(len(m.Key)) + int64(m.Size)
	_, _, v, rec, err := ns.readRecordInto(m.loc, size, buf)
	return v, rec, err
}

// Stat returns key's size and time without reading its value.
func (ns *Namespace) Stat(key []byte) (Meta, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if err := ns.checkReadable(); err != nil {
		return Meta{}, err
	}
	return ns.lookupLocked(key)
}

// Check verifies key's latest record against its checksums; nil means
// intact, store.ErrCorrupt not.
func (ns *Namespace) Check(key []byte) error {
	_, err := ns.Get(context.Background(), key)
	return err
}

// Version is one record of a key's history, newest first.
type Version struct {
	Time    uint32
	Deleted bool
	Value   []byte
	cursor  pos
}

// History returns up to max versions of key, newest first, starting after
// the version at cursor (nil: the latest), and the cursor of the next older
// version (nil when there is none).
func (ns *Namespace) History(key, cursor []byte, max int) ([]Version, []byte, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if err := ns.checkReadable(); err != nil {
		return nil, nil, err
	}
	var at pos
	if cursor == nil {
		if ns.settings.Mode == ModeSeq {
			id, err := seqID(key)
			if err != nil {
				return nil, nil, err
			}
			s, err := ns.seq.get(id)
			if err != nil {
				return nil, nil, err
			}
			at = s.loc
			key = seqKey(id)
		} else if e, ok := ns.keys.get(key); ok {
			at = e.loc
		}
		if at.isZero() {
			return nil, nil, store.ErrNotFound
		}
	} else {
		if len(cursor) != 8 {
			return nil, nil, fmt.Errorf("%w: bad history cursor", store.ErrInvalidKey)
		}
		at = posFromU64(binary.LittleEndian.Uint64(cursor))
	}
	var out []Version
	for !at.isZero() && len(out) < max {
		h, k, v, err := ns.readRecordLocked(at)
		if err != nil {
			return out, nil, err
		}
		if !bytes.Equal(k, key) {
			return out, nil, fmt.Errorf("history of %q: %w: record %s holds another key", key, store.ErrCorrupt, at)
		}
		out = append(out, Version{Time: h.Time, Deleted: h.deleted(), Value: v, cursor: at})
		at = h.Prev
	}
	if at.isZero() {
		return out, nil, nil
	}
	next := make([]byte, 8)
	binary.LittleEndian.PutUint64(next, at.u64())
	return out, next, nil
}

// Len returns the number of live keys.
func (ns *Namespace) Len() int64 {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if ns.seq != nil {
		return ns.seq.live
	}
	return int64(ns.keys.live)
}

// NextID returns the next id a sequential namespace will assign.
func (ns *Namespace) NextID() uint64 {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if ns.seq == nil {
		return 0
	}
	return ns.seq.next()
}

// Payload returns the value bytes of live keys (what maxsize limits).
func (ns *Namespace) Payload() int64 {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.payloadLocked()
}

// DataSize returns the bytes of the namespace's data files.
func (ns *Namespace) DataSize() int64 {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.dataSize
}

// IndexSize returns an estimate of the index's bytes (in RAM for user mode,
// on disk for sequential mode).
func (ns *Namespace) IndexSize() int64 {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if ns.seq != nil {
		return int64(ns.seq.next()) * seqSlotSize
	}
	return ns.keys.memory()
}

// DataFiles returns the number of data files.
func (ns *Namespace) DataFiles() int {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return len(ns.files)
}

// --- scan ---

// Item is one key in a scan.
type Item struct {
	Key  []byte
	Size uint32
	Time uint32
}

// Cursor returns the scan cursor that designates key (KEYCUR): SCAN from it
// continues after key, RSCAN before it.
func (ns *Namespace) Cursor(key []byte) ([]byte, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if err := ns.checkReadable(); err != nil {
		return nil, err
	}
	if ns.seq != nil {
		m, err := ns.lookupLocked(key)
		if err != nil {
			return nil, err
		}
		return m.Key, nil
	}
	n := ns.keys.find(key)
	if n < 0 || ns.keys.at(n).deleted() {
		return nil, store.ErrNotFound
	}
	return encodeCursor(uint64(n)), nil
}

func encodeCursor(n uint64) []byte {
	c := make([]byte, 8)
	binary.LittleEndian.PutUint64(c, n)
	return c
}

// Scan returns up to max live keys after cursor (nil: from the start) in
// write order, or before it in reverse order, and the cursor of the last
// one returned. It returns no items (and a nil cursor) at the end.
//
// A cursor is 8 bytes: the key's position in the index (user mode) or the
// id itself (sequential mode).
func (ns *Namespace) Scan(cursor []byte, max int, reverse bool) ([]Item, []byte, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if err := ns.checkReadable(); err != nil {
		return nil, nil, err
	}
	var at int64 = -1
	if cursor != nil {
		if len(cursor) != 8 {
			return nil, nil, fmt.Errorf("%w: bad cursor", store.ErrInvalidKey)
		}
		at = int64(binary.LittleEndian.Uint64(cursor))
		if at < 0 {
			return nil, nil, fmt.Errorf("%w: bad cursor", store.ErrInvalidKey)
		}
	}
	step := int64(1)
	if reverse {
		step = -1
	}
	var total int64
	if ns.seq != nil {
		total = int64(ns.seq.next())
	} else {
		total = int64(ns.keys.n)
	}
	if cursor == nil {
		if reverse {
			at = total
		} else {
			at = -1
		}
	}
	var items []Item
	var last int64 = -1
	for i := at + step; i >= 0 && i < total && len(items) < max; i += step {
		if ns.seq != nil {
			s, err := ns.seq.get(uint64(i))
			if err != nil {
				return nil, nil, err
			}
			if s.empty() || s.flags&flagDeleted != 0 {
				continue
			}
			items = append(items, Item{Key: seqKey(uint64(i)), Size: s.valLen, Time: s.time})
		} else {
			e := ns.keys.at(int(i))
			if e.deleted() {
				continue
			}
			items = append(items, Item{Key: bytes.Clone(ns.keys.key(e)), Size: e.valLen, Time: e.time})
		}
		last = i
	}
	if len(items) == 0 {
		return nil, nil, nil
	}
	return items, encodeCursor(uint64(last)), nil
}

// --- store.KV ---

var _ store.KV = (*Namespace)(nil)

// Set stores value under key and waits for durability per the DB's policy.
func (ns *Namespace) Set(_ context.Context, key, value []byte) ([]byte, bool, error) {
	k, changed, commit, err := ns.Write(key, value)
	if err != nil || !changed {
		return k, changed, err
	}
	return k, true, ns.Flush(commit)
}

// GetMany returns one value per key, nil for missing keys.
func (ns *Namespace) GetMany(ctx context.Context, keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		v, err := ns.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// Exists reports whether key holds a value.
func (ns *Namespace) Exists(_ context.Context, key []byte) (bool, error) {
	_, err := ns.Stat(key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Del deletes key and waits for durability per the DB's policy.
func (ns *Namespace) Del(_ context.Context, key []byte) error {
	commit, err := ns.Delete(key)
	if err != nil {
		return err
	}
	return ns.Flush(commit)
}

// --- settings ---

// Update changes persistent settings through fn; a mode change is refused
// unless the namespace is empty.
func (ns *Namespace) Update(fn func(*Settings) error) error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.closed {
		return ErrClosed
	}
	s := ns.settings
	if err := fn(&s); err != nil {
		return err
	}
	if s.Mode != ns.settings.Mode {
		if ns.dataSize > fileHeaderSize*int64(len(ns.files)) {
			return ErrNotEmpty
		}
		if err := ns.switchModeLocked(s.Mode); err != nil {
			return err
		}
	}
	if err := saveSettings(ns.indexDir, s); err != nil {
		return err
	}
	ns.settings = s
	return nil
}

// ErrNotEmpty: the mode of a namespace can change only while it is empty.
var ErrNotEmpty = errors.New("namespace is not empty")

func (ns *Namespace) switchModeLocked(m Mode) error {
	if m == ModeSeq {
		x, err := openSeqIndex(filepath.Join(ns.indexDir, seqIndexFile))
		if err != nil {
			return err
		}
		if err := x.reset(); err != nil {
			x.close()
			return err
		}
		ns.seq, ns.keys = x, nil
		return nil
	}
	if ns.seq != nil {
		ns.seq.close()
		os.Remove(filepath.Join(ns.indexDir, seqIndexFile))
	}
	ns.seq, ns.keys = nil, newKeyIndex()
	return nil
}

// Jump closes the current data file and starts the next one (NSJUMP).
func (ns *Namespace) Jump() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if err := ns.checkWritable(); err != nil {
		return err
	}
	return ns.rotateLocked()
}

// CurrentFile returns the id and end offset of the data file being written.
func (ns *Namespace) CurrentFile() (uint32, int64) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.curID(), ns.curSize
}

// SetLocked makes the namespace read-only (or writable again).
func (ns *Namespace) SetLocked(v bool) {
	ns.mu.Lock()
	ns.locked = v
	ns.mu.Unlock()
}

// SetFrozen stops (or resumes) all reads and writes.
func (ns *Namespace) SetFrozen(v bool) {
	ns.mu.Lock()
	ns.frozen = v
	ns.mu.Unlock()
}

// State reports the runtime lock and freeze flags.
func (ns *Namespace) State() (locked, frozen bool) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.locked, ns.frozen
}

// sortedIDs lists data file ids in a directory.
func sortedIDs(dir string) ([]uint32, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []uint32
	for _, e := range ents {
		var id uint32
		if _, err := fmt.Sscanf(e.Name(), "zdb-data-%08d", &id); err == nil && e.Name() == dataFileName(id) {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}
