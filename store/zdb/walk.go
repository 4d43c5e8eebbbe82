package zdb

import (
	"bufio"
	"io"
	"os"
)

// walkFile calls fn for every valid record of a data file from off to size,
// in order. Damaged bytes are skipped by searching for the next valid record
// (both checksums must match, so a false match is ~2^-64 likely); each
// damaged stretch is returned as a Problem, the last one as a "torn tail"
// when no valid record follows it. progress, if set, gets the bytes walked.
func walkFile(f *os.File, off, size int64, fn func(h recHeader, key []byte, at int64) error, progress func(int64)) ([]Problem, error) {
	var problems []Problem
	buf := make([]byte, 0, 64<<10)
	for off < size {
		r := bufio.NewReaderSize(io.NewSectionReader(f, off, size-off), 1<<20)
		for off < size {
			h, key, n, ok := readOne(r, &buf, size-off)
			if !ok {
				break
			}
			if err := fn(h, key, off); err != nil {
				return problems, err
			}
			off += n
			if progress != nil {
				progress(n)
			}
		}
		if off >= size {
			break
		}
		next := findRecord(f, off+1, size)
		if next < 0 {
			problems = append(problems, Problem{Offset: off, Bytes: size - off, Kind: "torn tail"})
			break
		}
		problems = append(problems, Problem{Offset: off, Bytes: next - off, Kind: "corrupt record"})
		off = next
	}
	return problems, nil
}

// readOne reads and verifies the next record from r; ok is false (and r's
// position unspecified) when the bytes there are not a valid record.
func readOne(r *bufio.Reader, buf *[]byte, left int64) (recHeader, []byte, int64, bool) {
	hk, err := r.Peek(recHeaderSize)
	if err != nil {
		return recHeader{}, nil, 0, false
	}
	hk, err = r.Peek(recHeaderSize + int(hk[5]))
	if err != nil {
		return recHeader{}, nil, 0, false
	}
	h, _, err := decodeHeader(hk)
	if err != nil || h.size() > left {
		return recHeader{}, nil, 0, false
	}
	if int64(cap(*buf)) < h.size() {
		*buf = make([]byte, h.size())
	}
	rec := (*buf)[:h.size()]
	if _, err := io.ReadFull(r, rec); err != nil {
		return recHeader{}, nil, 0, false
	}
	_, key, _, err := decodeRecord(rec)
	if err != nil {
		return recHeader{}, nil, 0, false
	}
	return h, key, h.size(), true
}

// findRecord returns the offset of the first valid record at or after from,
// or -1. It is the slow path of recovery from damage.
func findRecord(f *os.File, from, size int64) int64 {
	const window = 4 << 20
	buf := make([]byte, window+recHeaderSize+256)
	for base := from; base+recHeaderSize <= size; base += window {
		n, _ := f.ReadAt(buf, base)
		for i := 0; i+recHeaderSize <= n && int64(i) < window; i++ {
			b := buf[i:n]
			// cheap rejections before any checksum
			if b[4]&^knownFlags != 0 || b[5] == 0 || b[6] != 0 || b[7] != 0 || b[11] != 0 || b[10] > 0x80 {
				continue
			}
			h, _, err := decodeHeader(b)
			if err != nil || base+int64(i)+h.size() > size {
				continue
			}
			rec := make([]byte, h.size())
			if _, err := f.ReadAt(rec, base+int64(i)); err != nil {
				continue
			}
			if _, _, _, err := decodeRecord(rec); err == nil {
				return base + int64(i)
			}
		}
	}
	return -1
}
