package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/fungistor/fungistor/node"
)

func runBench(args []string) error {
	if len(args) == 0 || args[0] != "codec" {
		return usagef("usage: fungi bench codec [--size BYTES] [--ec K/M] [--cores N] [--json]")
	}
	fs := newFlagSet("fungi bench codec")
	var size byteSize = 1 << 20
	fs.Var(&size, "size", "block size (K/M suffixes; default 1M)")
	coding := fs.String("ec", "16/4", "erasure coding K/M (\":sys\" suffix: systematic)")
	cores := fs.Int("cores", 1, "cores to use (blocks coded in parallel)")
	dur := fs.Duration("time", 2*time.Second, "duration of each phase")
	asJSON := fs.Bool("json", false, "print one JSON object")
	setUsage(fs, "usage: fungi bench codec [--size BYTES] [--ec K/M] [--cores N] [--json]\n\n"+
		"Measures the per-block encode and decode pipelines on this machine, on\n"+
		"incompressible data (MB = 10^6 bytes of content per second).\n\nflags:\n")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := node.CheckCoding(*coding); err != nil {
		return usagef("--ec: %v", err)
	}
	if *cores < 1 {
		return usagef("--cores must be at least 1")
	}
	if size < 1 || size > 64<<20 {
		return usagef("--size must be 1 byte to 64 MiB")
	}
	if !*asJSON {
		fmt.Fprintf(os.Stderr, "benchmarking %s blocks of %d bytes on %d core(s), %v per phase...\n", *coding, size, *cores, *dur)
	}
	res, err := node.BenchCodec(node.CodecBenchOptions{Size: int(size), Coding: *coding, Cores: *cores, Duration: *dur})
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("coding %s, %d-byte blocks, %d core(s)\n", res.Coding, res.BlockSize, res.Cores)
	fmt.Printf("  encode  %8.1f MB/s  (hash, compress check, encrypt, erasure-code, tag)\n", res.EncodeMBps)
	fmt.Printf("  decode  %8.1f MB/s  (verify, rebuild from K fragments, decrypt, check CID)\n", res.DecodeMBps)
	fmt.Printf("  stored  %8.3f bytes of fragments per byte of content\n", res.Overhead)
	return nil
}
