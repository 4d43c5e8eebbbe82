package zdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/fungistor/fungistor/store"
)

// On-disk format; docs/zdb-format.md is the reference and must change with it.
const (
	fileMagic      = "FZDB"
	formatVersion  = 1
	fileHeaderSize = 24 // magic, version, file id, generation, reserved
	recHeaderSize  = 28

	flagDeleted = 1 << 0
	knownFlags  = flagDeleted
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// fileHeader starts every data file.
type fileHeader struct {
	ID         uint32
	Generation uint64
}

func (h fileHeader) encode() []byte {
	b := make([]byte, fileHeaderSize)
	copy(b, fileMagic)
	binary.LittleEndian.PutUint32(b[4:], formatVersion)
	binary.LittleEndian.PutUint32(b[8:], h.ID)
	binary.LittleEndian.PutUint64(b[12:], h.Generation)
	binary.LittleEndian.PutUint32(b[20:], crc(b[:20]))
	return b
}

var errBadFileHeader = errors.New("bad data file header")

func decodeFileHeader(b []byte) (fileHeader, error) {
	if len(b) < fileHeaderSize || string(b[:4]) != fileMagic {
		return fileHeader{}, errBadFileHeader
	}
	if crc(b[:20]) != binary.LittleEndian.Uint32(b[20:]) {
		return fileHeader{}, errBadFileHeader
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != formatVersion {
		return fileHeader{}, fmt.Errorf("data file format version %d not supported", v)
	}
	return fileHeader{ID: binary.LittleEndian.Uint32(b[8:]), Generation: binary.LittleEndian.Uint64(b[12:])}, nil
}

// recHeader is the fixed part of a record:
//
//	0  crc      uint32  CRC32C of bytes 4..28 of the header and the key
//	4  flags    uint8   bit 0: deletion marker
//	5  keyLen   uint8
//	6  reserved uint16  zero
//	8  valLen   uint32
//	12 time     uint32  unix seconds of the write
//	16 prevFile uint32  location of the key's previous record (HISTORY);
//	20 prevOff  uint32  prevOff 0 means none
//	24 valCRC   uint32  CRC32C of the value
//
// followed by key and value. The two checksums let the engine verify a key
// without reading the value, and compare values by checksum.
type recHeader struct {
	Flags  uint8
	KeyLen uint8
	ValLen uint32
	Time   uint32
	Prev   pos
	ValCRC uint32
}

func (h recHeader) deleted() bool { return h.Flags&flagDeleted != 0 }

func (h recHeader) size() int64 { return recHeaderSize + int64(h.KeyLen) + int64(h.ValLen) }

// appendRecord encodes a record onto dst.
func appendRecord(dst []byte, h recHeader, key, value []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, recHeaderSize)...)
	b := dst[start:]
	b[4] = h.Flags
	b[5] = h.KeyLen
	binary.LittleEndian.PutUint32(b[8:], h.ValLen)
	binary.LittleEndian.PutUint32(b[12:], h.Time)
	binary.LittleEndian.PutUint32(b[16:], h.Prev.File)
	binary.LittleEndian.PutUint32(b[20:], h.Prev.Off)
	binary.LittleEndian.PutUint32(b[24:], h.ValCRC)
	dst = append(dst, key...)
	c := crc32.Update(0, castagnoli, dst[start+4:start+recHeaderSize])
	c = crc32.Update(c, castagnoli, key)
	binary.LittleEndian.PutUint32(dst[start:], c)
	return append(dst, value...)
}

// errBadRecord marks bytes that are not a valid record: a torn tail or rot.
var errBadRecord = fmt.Errorf("%w: bad record", store.ErrCorrupt)

// decodeHeader parses and checks a header and key (b holds at least the
// header and key). It does not check the value.
func decodeHeader(b []byte) (recHeader, []byte, error) {
	if len(b) < recHeaderSize {
		return recHeader{}, nil, errBadRecord
	}
	h := recHeader{
		Flags:  b[4],
		KeyLen: b[5],
		ValLen: binary.LittleEndian.Uint32(b[8:]),
		Time:   binary.LittleEndian.Uint32(b[12:]),
		Prev:   pos{File: binary.LittleEndian.Uint32(b[16:]), Off: binary.LittleEndian.Uint32(b[20:])},
		ValCRC: binary.LittleEndian.Uint32(b[24:]),
	}
	if h.Flags&^knownFlags != 0 || b[6] != 0 || b[7] != 0 || h.ValLen > store.MaxValueSize || h.KeyLen == 0 {
		return recHeader{}, nil, errBadRecord
	}
	if h.deleted() && h.ValLen != 0 {
		return recHeader{}, nil, errBadRecord
	}
	end := recHeaderSize + int(h.KeyLen)
	if len(b) < end {
		return recHeader{}, nil, errBadRecord
	}
	c := crc32.Update(0, castagnoli, b[4:recHeaderSize])
	c = crc32.Update(c, castagnoli, b[recHeaderSize:end])
	if c != binary.LittleEndian.Uint32(b) {
		return recHeader{}, nil, errBadRecord
	}
	return h, b[recHeaderSize:end], nil
}

// decodeRecord parses and fully verifies one record at the start of b and
// returns its header, key and value (aliasing b).
func decodeRecord(b []byte) (recHeader, []byte, []byte, error) {
	h, key, err := decodeHeader(b)
	if err != nil {
		return h, nil, nil, err
	}
	if int64(len(b)) < h.size() {
		return h, nil, nil, errBadRecord
	}
	val := b[recHeaderSize+int(h.KeyLen) : h.size()]
	if crc(val) != h.ValCRC {
		return h, nil, nil, errBadRecord
	}
	return h, key, val, nil
}

// pos locates a record: data file id and byte offset. Offset 0 is never a
// record (the file header is there), so the zero pos means "none".
type pos struct {
	File uint32
	Off  uint32
}

func (p pos) isZero() bool { return p.Off == 0 }

// u64 orders positions: later writes have larger values.
func (p pos) u64() uint64 { return uint64(p.File)<<32 | uint64(p.Off) }

func posFromU64(v uint64) pos { return pos{File: uint32(v >> 32), Off: uint32(v)} }

func (p pos) String() string { return fmt.Sprintf("%d:%d", p.File, p.Off) }
