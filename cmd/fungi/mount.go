package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fungistor/fungistor/node"
)

func runMount(args []string) error {
	fs := newFlagSet("fungi mount")
	api := apiFlag(fs)
	wait := fs.Bool("wait", false, "stay in the foreground until interrupted (or unmounted), then unmount")
	fs.BoolVar(wait, "f", false, "same as --wait")
	setUsage(fs, "usage: fungi mount [--wait] DIR\n\n"+
		"Asks the daemon to mount the cluster's shared tree read-only at DIR (an empty\n"+
		"directory) and returns once the mount is live; any CID is readable under\n"+
		"DIR/.ipfs/<cid>. fungi unmount DIR (or fusermount3 -u DIR) ends it, and so does\n"+
		"the daemon's shutdown. Needs /dev/fuse and fuse3 (scripts/deps.sh).\n\nflags:\n")
	dir, d, err := mountArgs(fs, args, *api)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	if dir, err = d.Mount(ctx, dir); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "mounted the shared tree at %s\n", dir)
	if !*wait {
		return nil
	}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
			if ms, err := d.Mounts(ctx); err == nil && !slices.Contains(ms, dir) {
				return nil // unmounted from elsewhere
			}
		}
	}
	uctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Unmount(uctx, dir); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "unmounted %s\n", dir)
	return nil
}

func runUnmount(args []string) error {
	fs := newFlagSet("fungi unmount")
	api := apiFlag(fs)
	setUsage(fs, "usage: fungi unmount DIR\n\nEnds the daemon's mount of the shared tree at DIR.\n\nflags:\n")
	dir, d, err := mountArgs(fs, args, *api)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	return d.Unmount(ctx, dir)
}

// mountArgs parses flags and the one DIR of mount and unmount (made
// absolute: the daemon resolves nothing against our working directory)
// and finds the daemon.
func mountArgs(fs *flag.FlagSet, args []string, api string) (string, *node.APIClient, error) {
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return "", nil, err
	}
	if len(rest) != 1 {
		return "", nil, usagef("exactly one DIR is required")
	}
	dir, err := filepath.Abs(rest[0])
	if err != nil {
		return "", nil, usagef("%v", err)
	}
	d, err := node.Daemon(node.RepoPath(), api)
	return dir, d, err
}
