package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"text/tabwriter"

	"github.com/fungistor/fungistor/node"
)

const filesHelp = `usage: fungi files <command> [flags] ...

The cluster's shared file tree (QSFS), like Kubo's MFS: directories and
names linked to content, the same on every node. Every change is one write
through the cluster's leader; mount the tree with fungi mount.

  ls [-l] [--json] [PATH]          list a directory (default /)
  stat [--hash] [--json] PATH      describe a path; --hash: only its CID
                                   (a directory of the tree as UnixFS)
  mkdir [-p] PATH                  make a directory (-p: parents too, no error if it exists)
  cp [-p] SRC DST                  link content at DST: SRC is /ipfs/CID[/path] or a
                                   path of the tree; DST ending in / means "into it"
  mv SRC DST                       move or rename (into DST when it is a directory)
  rm [-r] PATH...                  remove (-r: directories and what they hold)
  write [-p] PATH [FILE]           add FILE (or stdin) and link it at PATH, replacing
                                   a file there
`

func runFiles(args []string) error {
	if done, err := groupHelp(args, "files", "ls, stat, mkdir, cp, mv, rm, write", filesHelp); done {
		return err
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("fungi files " + sub)
	api := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	parents, recursive, long, hash, quiet := new(bool), new(bool), new(bool), new(bool), new(bool)
	nargs := [2]int{1, 1} // min, max paths
	switch sub {
	case "ls":
		fs.BoolVar(long, "l", false, "long listing: type, size and CID")
		nargs = [2]int{0, 1}
	case "stat":
		fs.BoolVar(hash, "hash", false, "print only the CID (a directory of the tree is hashed as UnixFS)")
	case "mkdir":
		fs.BoolVar(parents, "p", false, "make parents as needed; no error if it exists")
		fs.BoolVar(parents, "parents", false, "same as -p")
	case "cp":
		fs.BoolVar(parents, "p", false, "make DST's parents as needed")
		fs.BoolVar(parents, "parents", false, "same as -p")
		nargs = [2]int{2, 2}
	case "mv":
		nargs = [2]int{2, 2}
	case "rm":
		fs.BoolVar(recursive, "r", false, "remove directories and everything in them")
		fs.BoolVar(recursive, "recursive", false, "same as -r")
		nargs = [2]int{1, 1 << 16}
	case "write":
		fs.BoolVar(parents, "p", false, "make parents as needed")
		fs.BoolVar(parents, "parents", false, "same as -p (parents are always made)")
		fs.BoolVar(quiet, "q", false, "no progress")
		nargs = [2]int{1, 2}
	default:
		return usagef("unknown files command %q (ls, stat, mkdir, cp, mv, rm, write)", sub)
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(rest) < nargs[0] || len(rest) > nargs[1] {
		return usagef("%s: wrong number of arguments (see fungi files --help)", sub)
	}
	for i, p := range rest {
		if sub == "cp" && i == 0 || sub == "write" && i == 1 {
			continue // content, a local file
		}
		if p == "" || p[0] != '/' {
			return usagef("%q: paths of the shared tree are absolute (start with /)", p)
		}
	}
	d, err := node.Daemon(node.RepoPath(), *api)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	out := func(v any, text func()) error {
		if *asJSON {
			return json.NewEncoder(os.Stdout).Encode(v)
		}
		text()
		return nil
	}
	var res *node.FilesResult
	switch sub {
	case "ls":
		p := "/"
		if len(rest) == 1 {
			p = rest[0]
		}
		ents, err := d.FilesLs(ctx, p)
		if err != nil {
			return err
		}
		return out(ents, func() {
			tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
			for _, e := range ents {
				name := e.Name
				if e.Type == "directory" {
					name += "/"
				}
				if *long {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", e.Type, name, e.Size, e.CID)
				} else {
					fmt.Fprintln(tw, name)
				}
			}
			tw.Flush()
		})
	case "stat":
		e, err := d.FilesStat(ctx, rest[0], *hash)
		if err != nil {
			return err
		}
		if *hash && !*asJSON {
			fmt.Println(e.CID)
			return nil
		}
		return out(e, func() {
			if e.CID != "" {
				fmt.Println(e.CID)
			}
			fmt.Printf("Type: %s\nSize: %d\n", e.Type, e.Size)
			if e.CumulativeSize > 0 {
				fmt.Printf("CumulativeSize: %d\n", e.CumulativeSize)
			}
			if e.Type == "directory" && e.Tree {
				fmt.Printf("Children: %d\n", e.Children)
			}
		})
	case "mkdir":
		res, err = d.FilesMkdir(ctx, rest[0], *parents)
	case "cp":
		res, err = d.FilesCp(ctx, rest[0], rest[1], *parents)
	case "mv":
		res, err = d.FilesMv(ctx, rest[0], rest[1])
	case "rm":
		res, err = d.FilesRm(ctx, *recursive, rest...)
	case "write":
		src, name := io.Reader(os.Stdin), "stdin"
		if len(rest) == 2 && rest[1] != "-" {
			f, err := os.Open(rest[1])
			if err != nil {
				return err
			}
			defer f.Close()
			if fi, err := f.Stat(); err == nil && fi.IsDir() {
				return usagef("%s is a directory (add it with fungi add --to-files)", rest[1])
			}
			src, name = f, filepath.Base(rest[1])
		}
		prog := newProgress(*quiet, "writing")
		var done atomic.Int64
		ar, err := d.AddReader(ctx, name, src, node.AddOptions{ToFiles: rest[0], FilesReplace: true,
			Progress: func(n int64) { prog.update(done.Add(n)) }})
		prog.done()
		if err != nil {
			return err
		}
		res = &node.FilesResult{Index: ar.Index, Path: ar.Files, CID: ar.Root}
	}
	if err != nil {
		return err
	}
	return out(res, func() {
		if sub == "cp" || sub == "write" {
			fmt.Printf("%s %s\n", res.CID, res.Path)
		}
	})
}
