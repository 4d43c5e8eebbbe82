package zdb

import (
	"encoding/binary"
	"fmt"
	"os"
)

// seqSlotSize is the size of one id's slot in the sequential index file.
const seqSlotSize = 16

const seqDeleted = 1 << 31 // in a slot's valLen word

// seqSlot is where id's latest record lives.
type seqSlot struct {
	loc    pos
	valLen uint32
	time   uint32
	flags  uint8
}

func (s seqSlot) empty() bool { return s.loc.isZero() }

func (s seqSlot) encode(b []byte) {
	binary.LittleEndian.PutUint32(b[0:], s.loc.File)
	binary.LittleEndian.PutUint32(b[4:], s.loc.Off)
	v := s.valLen
	if s.flags&flagDeleted != 0 {
		v |= seqDeleted
	}
	binary.LittleEndian.PutUint32(b[8:], v)
	binary.LittleEndian.PutUint32(b[12:], s.time)
}

func decodeSeqSlot(b []byte) seqSlot {
	v := binary.LittleEndian.Uint32(b[8:])
	s := seqSlot{
		loc:    pos{File: binary.LittleEndian.Uint32(b[0:]), Off: binary.LittleEndian.Uint32(b[4:])},
		valLen: v &^ seqDeleted,
		time:   binary.LittleEndian.Uint32(b[12:]),
	}
	if v&seqDeleted != 0 {
		s.flags = flagDeleted
	}
	return s
}

// seqIndex maps sequential ids to records without a per-key entry in RAM:
// slot i of the index file (16 bytes at offset 16*i) locates id i.
//
// The file only ever points at data that is already fsynced: slots of newer
// writes wait in RAM (tail for new ids, pending for overwrites) until the
// data file has been synced past them, then are written out. So after any
// crash, replaying the data files from the last checkpoint rebuilds exactly
// what was lost, and no slot points into a torn tail. Guarded by the
// namespace lock.
type seqIndex struct {
	f       *os.File
	durable uint64             // slots in the file
	tail    []seqSlot          // ids durable, durable+1, ... not yet written
	pending map[uint64]seqSlot // overwrites of ids < durable not yet written
	live    int64
	payload int64 // value bytes of live ids
}

func openSeqIndex(path string) (*seqIndex, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &seqIndex{f: f, durable: uint64(fi.Size()) / seqSlotSize, pending: map[uint64]seqSlot{}}, nil
}

func (x *seqIndex) next() uint64 { return x.durable + uint64(len(x.tail)) }

func (x *seqIndex) get(id uint64) (seqSlot, error) {
	if id >= x.next() {
		return seqSlot{}, nil
	}
	if id >= x.durable {
		return x.tail[id-x.durable], nil
	}
	if s, ok := x.pending[id]; ok {
		return s, nil
	}
	var b [seqSlotSize]byte
	if _, err := x.f.ReadAt(b[:], int64(id)*seqSlotSize); err != nil {
		return seqSlot{}, fmt.Errorf("read sequential index: %w", err)
	}
	return decodeSeqSlot(b[:]), nil
}

// put records id's new slot; id is at most next().
func (x *seqIndex) put(id uint64, s seqSlot) error {
	old, err := x.get(id)
	if err != nil {
		return err
	}
	wasLive := !old.empty() && old.flags&flagDeleted == 0
	isLive := s.flags&flagDeleted == 0
	switch {
	case id == x.next():
		x.tail = append(x.tail, s)
	case id >= x.durable:
		x.tail[id-x.durable] = s
	default:
		x.pending[id] = s
	}
	if isLive && !wasLive {
		x.live++
	} else if wasLive && !isLive {
		x.live--
	}
	if wasLive {
		x.payload -= int64(old.valLen)
	}
	if isLive {
		x.payload += int64(s.valLen)
	}
	return nil
}

// recount recomputes the live count and payload from the file (after a
// replay, when put could not know what the file already reflected).
func (x *seqIndex) recount() error {
	x.live, x.payload = 0, 0
	buf := make([]byte, 1<<20)
	for off := int64(0); off < int64(x.durable)*seqSlotSize; off += int64(len(buf)) {
		n, err := x.f.ReadAt(buf, off)
		if n == 0 && err != nil {
			return fmt.Errorf("read sequential index: %w", err)
		}
		for i := 0; i+seqSlotSize <= n; i += seqSlotSize {
			s := decodeSeqSlot(buf[i:])
			if !s.empty() && s.flags&flagDeleted == 0 {
				x.live++
				x.payload += int64(s.valLen)
			}
		}
	}
	return nil
}

// writeOut writes the slots of records that end at or before synced.
func (x *seqIndex) writeOut(synced uint64) error {
	for id, s := range x.pending {
		if s.loc.u64() >= synced {
			continue
		}
		var b [seqSlotSize]byte
		s.encode(b[:])
		if _, err := x.f.WriteAt(b[:], int64(id)*seqSlotSize); err != nil {
			return fmt.Errorf("write sequential index: %w", err)
		}
		delete(x.pending, id)
	}
	n := 0
	for n < len(x.tail) && x.tail[n].loc.u64() < synced {
		n++
	}
	if n == 0 {
		return nil
	}
	buf := make([]byte, n*seqSlotSize)
	for i := 0; i < n; i++ {
		x.tail[i].encode(buf[i*seqSlotSize:])
	}
	if _, err := x.f.WriteAt(buf, int64(x.durable)*seqSlotSize); err != nil {
		return fmt.Errorf("write sequential index: %w", err)
	}
	x.durable += uint64(n)
	x.tail = append(x.tail[:0], x.tail[n:]...)
	return nil
}

// reset empties the index (full rebuild).
func (x *seqIndex) reset() error {
	x.durable, x.tail, x.live, x.payload = 0, nil, 0, 0
	clear(x.pending)
	return x.f.Truncate(0)
}

// truncate drops slots at or beyond n from the file (ids a checkpoint does
// not know; replay will put back what the data files hold).
func (x *seqIndex) truncate(n uint64) error {
	if n >= x.durable {
		return nil
	}
	x.durable = n
	return x.f.Truncate(int64(n) * seqSlotSize)
}

func (x *seqIndex) close() error { return x.f.Close() }
