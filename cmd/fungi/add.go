package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"github.com/fungistor/fungistor/node"
)

func runAdd(args []string) error {
	fs := newFlagSet("fungi add")
	api := apiFlag(fs)
	onlyHash := fs.Bool("only-hash", false, "only compute the CID; store nothing (no repo or daemon needed)")
	fs.BoolVar(onlyHash, "n", false, "short for --only-hash")
	quiet := fs.Bool("q", false, "print only the root CID")
	fs.BoolVar(quiet, "quiet", false, "same as -q")
	fs.BoolVar(quiet, "Q", false, "print only the root CID (as Kubo's -Q; the same as -q here)")
	fs.BoolVar(quiet, "quieter", false, "same as -Q")
	fs.Bool("r", true, "recursive, as Kubo's -r (directories always are)")
	fs.Bool("recursive", true, "same as -r")
	profile := fs.String("profile", "", "UnixFS profile: unixfs-v1-2025 (default) or kubo-v1-default")
	cidVersion := fs.Int("cid-version", 1, "Kubo's flag: 1 (both profiles)")
	rawLeaves := fs.Bool("raw-leaves", true, "Kubo's flag: true (both profiles)")
	chunker := fs.String("chunker", "", "Kubo's flag: size-1048576 (unixfs-v1-2025) or size-262144 (kubo-v1-default)")
	hidden := fs.Bool("hidden", false, "include files and directories whose names start with '.'")
	coding := fs.String("ec", "", "erasure coding K/M for this add (default: the repo's)")
	toFiles := fs.String("to-files", "", "also link what was added at this `path` of the shared tree (PATH/ : under its name in that directory; needs the daemon)")
	setUsage(fs, "usage: fungi add [--only-hash] [-q] [--profile P] [--ec K/M] [--hidden] [--to-files /DIR/] PATH\n\n"+
		"Adds a file or directory tree to the repo and prints its IPFS CID: the CID Kubo\n"+
		"computes with the same profile (unixfs-v1-2025 = ipfs add --cid-version 1\n"+
		"--chunker size-1048576 --raw-leaves --max-file-links 1024). Blocks are compressed,\n"+
		"encrypted and erasure-coded into fragments. --only-hash stores nothing and needs\n"+
		"no repo. Kubo's -r, -Q, --cid-version, --raw-leaves and --chunker are accepted\n"+
		"when they describe one of the profiles.\n\nflags:\n")
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(paths) != 1 {
		return usagef("exactly one PATH is required")
	}
	if err := node.CheckProfile(*profile); err != nil {
		return usagef("--profile: %v", err)
	}
	// Kubo's DAG flags select a profile; the flags not given take its values
	flags := node.ImportFlags{Profile: *profile}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "cid-version":
			flags.CIDVersion = cidVersion
		case "raw-leaves":
			flags.RawLeaves = rawLeaves
		case "chunker":
			flags.Chunker = *chunker
		}
	})
	if *profile, err = node.ProfileFor(flags); err != nil {
		return usagef("%v", err)
	}
	if *coding != "" {
		if err := checkCoding(*coding); err != nil {
			return usagef("--ec: %v", err)
		}
	}
	if *toFiles != "" && *onlyHash {
		return usagef("--to-files and --only-hash do not go together: --only-hash stores nothing")
	}
	if *toFiles != "" && (*toFiles)[0] != '/' {
		return usagef("--to-files %q: paths of the shared tree are absolute (start with /)", *toFiles)
	}
	if !*onlyHash {
		return runStore(*api, *quiet, node.AddOptions{Profile: *profile, Coding: *coding, Hidden: *hidden, ToFiles: *toFiles}, paths[0])
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	prog := newProgress(*quiet, "hashing")
	var done atomic.Int64
	c, err := node.HashPath(ctx, paths[0], node.HashOptions{Profile: *profile, Hidden: *hidden,
		Progress: func(n int64) { prog.update(done.Add(n)) }})
	prog.done()
	if err != nil {
		return err
	}
	if *quiet {
		fmt.Println(c)
	} else {
		fmt.Printf("added %s %s\n", c, filepath.Base(filepath.Clean(paths[0])))
	}
	return nil
}

func checkCoding(s string) error { return node.CheckCoding(s) }
