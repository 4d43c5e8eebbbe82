package node

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/fungistor/fungistor/fungi"
)

// CodecBenchOptions configure BenchCodec.
type CodecBenchOptions struct {
	Size     int           // block size (default 1 MiB)
	Coding   string        // default 16/4
	Cores    int           // parallel blocks, and GOMAXPROCS (default 1)
	Duration time.Duration // per phase (default 2 s)
}

// CodecBench is the result of BenchCodec. MB is 10^6 bytes of content.
type CodecBench struct {
	Coding       string  `json:"coding"`
	BlockSize    int     `json:"block_size"`
	Cores        int     `json:"cores"`
	EncodeMBps   float64 `json:"encode_mb_per_s"`
	DecodeMBps   float64 `json:"decode_mb_per_s"`
	Overhead     float64 `json:"overhead"`
	EncodeBlocks int64   `json:"encode_blocks"`
	DecodeBlocks int64   `json:"decode_blocks"`
}

// BenchCodec measures the whole per-block pipelines on incompressible data,
// like `cryptsetup benchmark`: encode = CID hashing (sha2-256), compression
// check, encryption, erasure coding, fragment tags; decode = fragment
// verification, decoding from K fragments (N-K lost), decryption and the
// CID check.
func BenchCodec(o CodecBenchOptions) (CodecBench, error) {
	if o.Size == 0 {
		o.Size = 1 << 20
	}
	if o.Size < 0 || o.Size > 64<<20 {
		return CodecBench{}, fmt.Errorf("size %d out of range (1 byte to 64 MiB)", o.Size)
	}
	if o.Coding == "" {
		o.Coding = fungi.DefaultCoding().String()
	}
	if o.Cores <= 0 {
		o.Cores = 1
	}
	if o.Duration <= 0 {
		o.Duration = 2 * time.Second
	}
	coding, err := fungi.ParseCoding(o.Coding)
	if err != nil {
		return CodecBench{}, err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	codec, err := fungi.NewCodec(secret, coding)
	if err != nil {
		return CodecBench{}, err
	}
	prev := runtime.GOMAXPROCS(o.Cores)
	defer runtime.GOMAXPROCS(prev)

	res := CodecBench{Coding: coding.String(), BlockSize: o.Size, Cores: o.Cores}
	type sample struct {
		c     cid.Cid
		frags [][]byte
	}
	samples := make([]sample, o.Cores)
	datas := make([][]byte, o.Cores)
	for i := range datas {
		datas[i] = make([]byte, o.Size)
		rand.Read(datas[i])
	}
	// encode
	var blocks atomic.Int64
	var stored atomic.Int64
	run := func(fn func(worker int)) time.Duration {
		start := time.Now()
		deadline := start.Add(o.Duration)
		var wg sync.WaitGroup
		for w := 0; w < o.Cores; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					fn(w)
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	var failed atomic.Value
	el := run(func(w int) {
		sum := sha256.Sum256(datas[w])
		digest, _ := mh.Encode(sum[:], mh.SHA2_256)
		c := cid.NewCidV1(cid.Raw, digest)
		enc, err := codec.Encode(c, datas[w])
		if err != nil {
			failed.Store(err)
			return
		}
		if samples[w].frags == nil {
			fr := make([][]byte, len(enc.Fragments))
			for i, f := range enc.Fragments {
				fr[i] = append([]byte(nil), f...)
			}
			samples[w] = sample{c: c, frags: fr}
		}
		stored.Add(int64(enc.StoredBytes))
		enc.Release()
		blocks.Add(1)
	})
	if err, _ := failed.Load().(error); err != nil {
		return res, err
	}
	res.EncodeBlocks = blocks.Load()
	res.EncodeMBps = float64(res.EncodeBlocks) * float64(o.Size) / el.Seconds() / 1e6
	res.Overhead = float64(stored.Load()) / float64(res.EncodeBlocks*int64(o.Size))
	// decode from K fragments: the first N-K are lost
	for i := range samples {
		for j := 0; j < coding.N-coding.K; j++ {
			samples[i].frags[j] = nil
		}
	}
	blocks.Store(0)
	el = run(func(w int) {
		if _, err := codec.Decode(samples[w].c, samples[w].frags); err != nil {
			failed.Store(err)
			return
		}
		blocks.Add(1)
	})
	if err, _ := failed.Load().(error); err != nil {
		return res, err
	}
	res.DecodeBlocks = blocks.Load()
	res.DecodeMBps = float64(res.DecodeBlocks) * float64(o.Size) / el.Seconds() / 1e6
	return res, nil
}
