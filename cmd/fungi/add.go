package main

import (
	"context"
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
	onlyHash := fs.Bool("only-hash", false, "only compute the CID; store nothing (no repo or daemon needed)")
	fs.BoolVar(onlyHash, "n", false, "short for --only-hash")
	quiet := fs.Bool("q", false, "print only the root CID")
	fs.BoolVar(quiet, "quiet", false, "same as -q")
	profile := fs.String("profile", "", "UnixFS profile: unixfs-v1-2025 (default) or kubo-v1-default")
	hidden := fs.Bool("hidden", false, "include files and directories whose names start with '.'")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: fungi add --only-hash [-q] [--profile P] [--hidden] PATH\n\n"+
			"Prints the IPFS CID of a file or directory tree: the CID Kubo computes with\n"+
			"the same profile (unixfs-v1-2025 = ipfs add --cid-version 1 --chunker size-1048576\n"+
			"--raw-leaves --max-file-links 1024).\n\nflags:\n")
		fs.PrintDefaults()
	}
	// flags may follow the path, as with ipfs add
	var paths []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return parseFlags(fs, args)
		}
		if fs.NArg() == 0 {
			break
		}
		paths = append(paths, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(paths) != 1 {
		return usagef("exactly one PATH is required")
	}
	if err := node.CheckProfile(*profile); err != nil {
		return usagef("--profile: %v", err)
	}
	if !*onlyHash {
		return usagef("storing content is not available yet: use --only-hash")
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
