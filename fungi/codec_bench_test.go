package fungi

import (
	"crypto/sha256"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// The codec's figures. Run on one core for the published numbers:
//
//	GOMAXPROCS=1 go test -run '^$' -bench Pipeline -benchtime 2s ./fungi/
//
// MB/s counts block bytes (content), not fragment bytes. Custom metrics:
// "overhead" is fragment bytes stored per content byte; "cores" is process
// CPU time (user+system, from getrusage) per wall-clock time over the timed
// loop, so 1.00 means the figure is one core's.

const benchBlock = 1 << 20

func benchBlockData(tb testing.TB) []byte {
	tb.Helper()
	data := make([]byte, benchBlock)
	rng := rand.NewChaCha8([32]byte{7})
	rng.Read(data)
	return data
}

// qssRawCID is what the importer does per leaf: sha2-256 and a CIDv1 raw.
func qssRawCID(data []byte) cid.Cid {
	sum := sha256.Sum256(data)
	m, _ := mh.Encode(sum[:], mh.SHA2_256)
	return cid.NewCidV1(cid.Raw, m)
}

func benchCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loop runs body b.N times and reports the cores metric.
func benchLoop(b *testing.B, body func()) {
	b.Helper()
	b.ResetTimer()
	cpu0, wall0 := benchCPUTime(), time.Now()
	for b.Loop() {
		body()
	}
	wall := time.Since(wall0)
	b.ReportMetric(float64(benchCPUTime()-cpu0)/float64(wall), "cores")
}

var benchDecodeCodings = []struct {
	name string
	c    Coding
	opts []CodecOption
}{
	{"equations-16of20", Coding{K: 16, N: 20, Mode: Equations}, nil},
	{"systematic-16of20", Coding{K: 16, N: 20, Mode: Systematic}, nil},
	{"equations-16of20-serial", Coding{K: 16, N: 20, Mode: Equations}, []CodecOption{WithGoroutines(1)}},
}

// BenchmarkEncodePipeline: the block's CID (sha2-256) plus Encode, on
// incompressible 1 MiB blocks. The writer releases each block's fragments
// once they are stored (EncodedBlock.Release), so their memory is reused;
// the "-noreuse" case leaves them to the garbage collector instead, and
// "-serial" runs with WithGoroutines(1) (Reed-Solomon strictly on the
// calling goroutine, which reedsolomon v1.14.2 does without GFNI).
func BenchmarkEncodePipeline(b *testing.B) {
	data := benchBlockData(b)
	cases := []struct {
		name    string
		c       Coding
		release bool
		opts    []CodecOption
	}{
		{"equations-16of20", Coding{K: 16, N: 20, Mode: Equations}, true, nil},
		{"systematic-16of20", Coding{K: 16, N: 20, Mode: Systematic}, true, nil},
		{"equations-16of20-noreuse", Coding{K: 16, N: 20, Mode: Equations}, false, nil},
		{"equations-16of20-serial", Coding{K: 16, N: 20, Mode: Equations}, true, []CodecOption{WithGoroutines(1)}},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			codec := benchCodec(b, bc.c, bc.opts...)
			b.SetBytes(benchBlock)
			b.ReportAllocs()
			var stored int
			benchLoop(b, func() {
				enc, err := codec.Encode(qssRawCID(data), data)
				if err != nil {
					b.Fatal(err)
				}
				stored = enc.StoredBytes
				if bc.release {
					enc.Release()
				}
			})
			b.ReportMetric(float64(stored)/benchBlock, "overhead")
		})
	}
}

// BenchmarkDecodePipeline: Decode of all fragments (verify K, rebuild,
// decrypt, CID check), and with 4 fragments lost (the first four: in
// systematic mode those are data shards, so it must rebuild).
func BenchmarkDecodePipeline(b *testing.B) {
	data := benchBlockData(b)
	id := qssRawCID(data)
	for _, bc := range benchDecodeCodings {
		codec := benchCodec(b, bc.c, bc.opts...)
		enc, err := codec.Encode(id, data)
		if err != nil {
			b.Fatal(err)
		}
		for _, lost := range []int{0, 4} {
			name := bc.name + "/all"
			if lost > 0 {
				name = bc.name + "/lost4"
			}
			b.Run(name, func(b *testing.B) {
				frags := append([][]byte(nil), enc.Fragments...)
				for i := 0; i < lost; i++ {
					frags[i] = nil
				}
				b.SetBytes(benchBlock)
				b.ReportAllocs()
				benchLoop(b, func() {
					out, err := codec.Decode(id, frags)
					if err != nil || len(out) != len(data) {
						b.Fatal(err)
					}
				})
			})
		}
	}
}

func benchCodec(tb testing.TB, c Coding, opts ...CodecOption) *Codec {
	tb.Helper()
	codec, err := NewCodec([]byte("benchmark cluster secret 0123456"), c, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return codec
}
