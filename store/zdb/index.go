package zdb

import (
	"bytes"
	"hash/maphash"
)

// entry is the in-RAM index record of one user-mode key: where its latest
// record lives and enough about it to answer EXISTS, LENGTH, KEYTIME and the
// "unchanged" check of SET without touching the disk. It holds no pointers,
// so a million of them cost the garbage collector nothing to scan.
type entry struct {
	loc    pos    // latest record (a deletion marker when deleted)
	valLen uint32 //
	time   uint32 // unix seconds
	valCRC uint32
	keyOff uint32 // into the key arena
	keyLen uint8
	flags  uint8 // flagDeleted
}

func (e *entry) deleted() bool { return e.flags&flagDeleted != 0 }

// entryChunk is the number of entries per chunk (2 MiB).
const entryChunk = 1 << 16

// at returns entry number i.
func (x *keyIndex) at(i int) *entry { return &x.chunks[i/entryChunk][i%entryChunk] }

// add appends an entry and returns its number.
func (x *keyIndex) add(e entry) int {
	if x.n%entryChunk == 0 && x.n/entryChunk == len(x.chunks) {
		x.chunks = append(x.chunks, make([]entry, entryChunk))
	}
	*x.at(x.n) = e
	x.n++
	return x.n - 1
}

// arenaChunk is the size of one key arena chunk; a key never straddles two.
const arenaChunk = 1 << 20

// keyIndex maps user keys to entries: an open-addressing hash table of entry
// numbers over a dense entry slice and a chunked key arena. Entries keep
// their insertion order, which is the order SCAN walks. A deleted key keeps
// its entry (marked deleted) so a later SET reuses it; compaction drops them.
//
// About 28 bytes per entry, 4-8 per table slot and the key itself: ~70 MB
// for a million 32-byte keys. Not safe for concurrent use; the namespace
// lock guards it.
type keyIndex struct {
	seed    maphash.Seed
	slots   []uint32  // entry number + 1; 0 is empty
	chunks  [][]entry // entries, entryChunk per chunk: growth never copies
	n       int       // entries
	arena   [][]byte
	live    int
	payload int64 // value bytes of live keys
}

func newKeyIndex() *keyIndex {
	return &keyIndex{seed: maphash.MakeSeed(), slots: make([]uint32, 1024)}
}

func (x *keyIndex) key(e *entry) []byte {
	c := x.arena[e.keyOff/arenaChunk]
	o := e.keyOff % arenaChunk
	return c[o : o+uint32(e.keyLen)]
}

// find returns the entry number of key, or -1.
func (x *keyIndex) find(key []byte) int {
	mask := uint64(len(x.slots) - 1)
	i := maphash.Bytes(x.seed, key) & mask
	for {
		s := x.slots[i]
		if s == 0 {
			return -1
		}
		e := x.at(int(s - 1))
		if int(e.keyLen) == len(key) && bytes.Equal(x.key(e), key) {
			return int(s - 1)
		}
		i = (i + 1) & mask
	}
}

func (x *keyIndex) get(key []byte) (*entry, bool) {
	n := x.find(key)
	if n < 0 {
		return nil, false
	}
	return x.at(n), true
}

// put inserts or replaces key's entry (e.keyOff and keyLen are filled in)
// and keeps the live count.
func (x *keyIndex) put(key []byte, e entry) {
	if n := x.find(key); n >= 0 {
		old := x.at(n)
		if old.deleted() && !e.deleted() {
			x.live++
		} else if !old.deleted() && e.deleted() {
			x.live--
		}
		if !old.deleted() {
			x.payload -= int64(old.valLen)
		}
		if !e.deleted() {
			x.payload += int64(e.valLen)
		}
		e.keyOff, e.keyLen = old.keyOff, old.keyLen
		*old = e
		return
	}
	if e.deleted() {
		// a deletion of a key we never saw (replay after compaction of its
		// set); remember nothing
		return
	}
	if (x.n+1)*4 > len(x.slots)*3 {
		x.grow()
	}
	e.keyOff, e.keyLen = x.storeKey(key), uint8(len(key))
	n := x.add(e)
	x.insertSlot(key, uint32(n+1))
	x.live++
	x.payload += int64(e.valLen)
}

func (x *keyIndex) storeKey(key []byte) uint32 {
	last := len(x.arena) - 1
	if last < 0 || len(x.arena[last])+len(key) > arenaChunk {
		x.arena = append(x.arena, make([]byte, 0, arenaChunk))
		last++
	}
	off := uint32(last)*arenaChunk + uint32(len(x.arena[last]))
	x.arena[last] = append(x.arena[last], key...)
	return off
}

func (x *keyIndex) insertSlot(key []byte, v uint32) {
	mask := uint64(len(x.slots) - 1)
	i := maphash.Bytes(x.seed, key) & mask
	for x.slots[i] != 0 {
		i = (i + 1) & mask
	}
	x.slots[i] = v
}

func (x *keyIndex) grow() {
	x.slots = make([]uint32, len(x.slots)*2)
	for n := 0; n < x.n; n++ {
		x.insertSlot(x.key(x.at(n)), uint32(n+1))
	}
}

// reserve sizes the table for n entries (used when loading a checkpoint).
func (x *keyIndex) reserve(n int) {
	size := len(x.slots)
	for n*4 > size*3 {
		size *= 2
	}
	if size != len(x.slots) {
		x.slots = make([]uint32, size)
		for i := 0; i < x.n; i++ {
			x.insertSlot(x.key(x.at(i)), uint32(i+1))
		}
	}
}

// snapshot copies the entries in order (for a checkpoint).
func (x *keyIndex) snapshot() []entry {
	out := make([]entry, 0, x.n)
	for c := 0; c*entryChunk < x.n; c++ {
		out = append(out, x.chunks[c][:min(entryChunk, x.n-c*entryChunk)]...)
	}
	return out
}

// memory estimates the index's bytes.
func (x *keyIndex) memory() int64 {
	n := int64(len(x.slots))*4 + int64(len(x.chunks))*entryChunk*32
	for _, c := range x.arena {
		n += int64(cap(c))
	}
	return n
}
