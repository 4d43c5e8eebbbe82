package fungi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// qssHeader is a version-1 header of fragment 3 of a 1 MiB block at 16/4.
func qssHeader(tb testing.TB) []byte {
	tb.Helper()
	h := FragmentHeader{
		Version:   FragmentVersion,
		Coding:    DefaultCoding(),
		Index:     3,
		CipherLen: 1<<20 + gcmTagSize,
		ShardSize: shardSizeFor(1<<20+gcmTagSize, 16),
		Nonce:     [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
	}
	b := make([]byte, HeaderSize)
	putHeader(b, &h)
	return b
}

func TestFragmentHeaderRoundTrip(t *testing.T) {
	b := qssHeader(t)
	h, err := ParseFragmentHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := FragmentHeader{Version: 1, Coding: DefaultCoding(), Index: 3, CipherLen: 1<<20 + 16, ShardSize: 65600,
		Nonce: [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}}
	if h != want {
		t.Fatalf("parsed %+v, want %+v", h, want)
	}
	if h.FragmentSize() != HeaderSize+65600+TagSize {
		t.Errorf("FragmentSize %d", h.FragmentSize())
	}
	// The layout is the documented one (docs/fragment-format.md).
	if got := string(b[:4]); got != "QSSF" || b[4] != 1 || b[5] != 0 || b[6] != 0 ||
		binary.BigEndian.Uint16(b[8:]) != 16 || binary.BigEndian.Uint16(b[10:]) != 20 ||
		binary.BigEndian.Uint16(b[12:]) != 3 || binary.BigEndian.Uint32(b[16:]) != 1<<20+16 ||
		binary.BigEndian.Uint32(b[20:]) != 65600 || b[24] != 1 || b[35] != 12 {
		t.Errorf("layout % x", b)
	}
	h.Coding.Mode, h.Compressed, h.Index = Systematic, true, 19
	putHeader(b, &h)
	back, err := ParseFragmentHeader(append(b, "shard bytes follow"...))
	if err != nil || back != h {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func TestParseFragmentHeaderRejects(t *testing.T) {
	cases := []struct {
		name string
		edit func(b []byte) []byte
		want string
	}{
		{"empty", func(b []byte) []byte { return nil }, "0 bytes"},
		{"short", func(b []byte) []byte { return b[:HeaderSize-1] }, "35 bytes"},
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, "magic"},
		{"version-0", func(b []byte) []byte { b[4] = 0; return b }, "version 0"},
		{"version-2", func(b []byte) []byte { b[4] = 2; return b }, "version 2"},
		{"mode", func(b []byte) []byte { b[5] = 2; return b }, "unknown mode"},
		{"flags", func(b []byte) []byte { b[6] = 0x80; return b }, "unknown flags"},
		{"reserved-7", func(b []byte) []byte { b[7] = 1; return b }, "reserved"},
		{"reserved-14", func(b []byte) []byte { b[15] = 1; return b }, "reserved"},
		{"k-zero", func(b []byte) []byte { binary.BigEndian.PutUint16(b[8:], 0); return b }, "K must be"},
		{"n-equals-k", func(b []byte) []byte { binary.BigEndian.PutUint16(b[10:], 16); return b }, "extra fragment"},
		{"too-many-shards", func(b []byte) []byte { binary.BigEndian.PutUint16(b[10:], 241); return b }, "K+N <= 256"},
		{"huge-n", func(b []byte) []byte { binary.BigEndian.PutUint16(b[10:], 0xffff); return b }, "invalid coding"},
		{"index-n", func(b []byte) []byte { binary.BigEndian.PutUint16(b[12:], 20); return b }, "index 20 of 20"},
		{"index-max", func(b []byte) []byte { binary.BigEndian.PutUint16(b[12:], 0xffff); return b }, "index 65535"},
		{"cipher-short", func(b []byte) []byte { binary.BigEndian.PutUint32(b[16:], 15); return b }, "ciphertext length 15"},
		{"cipher-huge", func(b []byte) []byte { binary.BigEndian.PutUint32(b[16:], MaxBlockSize+17); return b }, "out of range"},
		{"cipher-max-u32", func(b []byte) []byte { binary.BigEndian.PutUint32(b[16:], 0xffffffff); return b }, "out of range"},
		{"shard-plus-64", func(b []byte) []byte { binary.BigEndian.PutUint32(b[20:], 65664); return b }, "shard size 65664"},
		{"shard-minus-64", func(b []byte) []byte { binary.BigEndian.PutUint32(b[20:], 65536); return b }, "want 65600"},
		{"shard-unaligned", func(b []byte) []byte { binary.BigEndian.PutUint32(b[20:], 65537); return b }, "shard size"},
		{"shard-zero", func(b []byte) []byte { binary.BigEndian.PutUint32(b[20:], 0); return b }, "shard size 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.edit(qssHeader(t))
			_, err := ParseFragmentHeader(b)
			if !errors.Is(err, ErrFragmentHeader) {
				t.Fatalf("err %v, want ErrFragmentHeader", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestFragmentShardSize(t *testing.T) {
	cases := []struct{ n, k, want int }{
		{16, 1, 64}, {16, 16, 64}, {16, 32, 64}, {64, 1, 64}, {65, 1, 128},
		{1<<20 + 16, 16, 65600}, {1 << 20, 16, 65536}, {1<<20 + 16, 10, 104896},
	}
	for _, tc := range cases {
		if got := shardSizeFor(tc.n, tc.k); got != tc.want || got%ShardAlign != 0 || got*tc.k < tc.n {
			t.Errorf("shardSizeFor(%d, %d) = %d, want %d", tc.n, tc.k, got, tc.want)
		}
	}
}

// TestFragmentHeadersOfEncode: every fragment Encode writes parses, and
// only the index differs between them.
func TestFragmentHeadersOfEncode(t *testing.T) {
	codec := qssCodec(t, Coding{K: 10, N: 14, Mode: Systematic})
	_, enc := qssEncode(t, codec, qssBlock(123_456, true, 30))
	var first FragmentHeader
	for i, f := range enc.Fragments {
		h, err := ParseFragmentHeader(f)
		if err != nil {
			t.Fatal(err)
		}
		if h.Index != i || len(f) != h.FragmentSize() || !h.Compressed {
			t.Fatalf("fragment %d: %+v, %d bytes", i, h, len(f))
		}
		if i == 0 {
			first = h
		}
		h.Index = 0
		if h != first {
			t.Fatalf("fragment %d header %+v differs from fragment 0's %+v", i, h, first)
		}
	}
}

// FuzzParseFragmentHeader: never panics; what it accepts is within bounds
// and re-encodes to the same bytes (one encoding per header).
func FuzzParseFragmentHeader(f *testing.F) {
	f.Add(qssHeader(f))
	f.Add([]byte("QSSF"))
	f.Add(bytes.Repeat([]byte{0xff}, HeaderSize))
	codec := qssCodec(f, Coding{K: 4, N: 6})
	_, enc := qssEncode(f, codec, []byte("seed"))
	f.Add(enc.Fragments[5])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseFragmentHeader(b)
		if err != nil {
			if !errors.Is(err, ErrFragmentHeader) {
				t.Fatalf("error %v does not wrap ErrFragmentHeader", err)
			}
			return
		}
		if err := h.Coding.Validate(); err != nil || h.Index < 0 || h.Index >= h.Coding.N ||
			h.CipherLen < gcmTagSize || h.CipherLen > maxCiphertext || h.ShardSize%ShardAlign != 0 ||
			h.ShardSize*h.Coding.K < h.CipherLen || h.FragmentSize() > HeaderSize+maxCiphertext+ShardAlign+TagSize {
			t.Fatalf("accepted out-of-bounds header %+v", h)
		}
		out := make([]byte, HeaderSize)
		putHeader(out, &h)
		if !bytes.Equal(out, b[:HeaderSize]) {
			t.Fatalf("header % x re-encodes as % x", b[:HeaderSize], out)
		}
	})
}
