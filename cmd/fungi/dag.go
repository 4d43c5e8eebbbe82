package main

import (
	"bufio"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/fungistor/fungistor/node"
)

func runDag(args []string) error {
	const help = "usage: fungi dag import [--pin-roots=true|false] [--stats] [-q] FILE.car... | fungi dag export CID > out.car\n\n" +
		"import: store every block of the CAR files (CARv1 or CARv2, '-' for stdin) in\n" +
		"        the cluster, whatever their codec, as one import: all of it or nothing.\n" +
		"        The roots of the CAR headers are pinned unless --pin-roots=false.\n" +
		"export: write the DAG under CID as a CARv1, as Kubo's ipfs dag export.\n"
	if done, err := groupHelp(args, "dag", "import, export", help); done {
		return err
	}
	switch sub := args[0]; sub {
	case "import":
		return runDagImport(args[1:])
	case "export":
		return runDagExport(args[1:])
	default:
		return usagef("unknown dag command %q (import, export)", sub)
	}
}

func runDagImport(args []string) error {
	fs := newFlagSet("fungi dag import")
	api := apiFlag(fs)
	pinRoots := fs.Bool("pin-roots", true, "pin the roots of the CAR headers (as Kubo)")
	stats := fs.Bool("stats", false, "print the blocks and bytes imported")
	quiet := fs.Bool("q", false, "no output (and no progress)")
	fs.BoolVar(quiet, "silent", false, "same as -q (Kubo's name)")
	bigBlock := fs.Bool("allow-big-block", false, "accept blocks over 2 MiB (up to 4 MiB)")
	coding := fs.String("ec", "", "erasure coding K/M of the dispersed blocks (default: the repo's)")
	setUsage(fs, "usage: fungi dag import [--pin-roots=true|false] [--stats] [-q] FILE.car...\n\n"+
		"Stores every block of the CAR files (CARv1 or CARv2; '-' reads stdin) in the\n"+
		"cluster as one import, whatever their codec: big blocks as fragments, small\n"+
		"ones and nodes with links in the replicated metadata. Partial DAGs are fine.\n"+
		"With --pin-roots (the default) each root of the CAR headers is pinned, and\n"+
		"printed as Kubo does; a root whose DAG is incomplete is an error.\n\nflags:\n")
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return usagef("name one or more CAR files ('-' for stdin)")
	}
	if *coding != "" {
		if err := checkCoding(*coding); err != nil {
			return usagef("--ec: %v", err)
		}
	}
	var cars []node.CARInput
	var total int64
	for _, p := range paths {
		if p != "-" {
			fi, err := os.Stat(p)
			if err != nil {
				return fmt.Errorf("%s: %w", p, unwrapPathErr(err))
			}
			if fi.IsDir() {
				return fmt.Errorf("%s: is a directory, not a CAR file", p)
			}
			total += fi.Size()
		}
		cars = append(cars, node.FileCAR(p))
	}
	d, err := connect(*api)
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, stop := signalContext()
	defer stop()
	prog := newProgress(*quiet, "importing")
	var done atomic.Int64
	res, err := d.ImportFiles(ctx, cars, node.DAGImportOptions{PinRoots: *pinRoots, Coding: *coding,
		AllowBigBlock: *bigBlock, Progress: func(n int64) { prog.updateOf(done.Add(n), total) }})
	prog.done()
	if err != nil {
		return err
	}
	if !*quiet {
		for _, r := range res.Roots {
			if r.PinErrorMsg != "" {
				return fmt.Errorf("pinning root %q FAILED: %s", r.Cid, r.PinErrorMsg)
			}
			fmt.Printf("Pinned root\t%s\tsuccess\n", r.Cid)
		}
		if *stats {
			fmt.Printf("Imported %d blocks (%d bytes)\n", res.Stats.BlockCount, res.Stats.BlockBytesCount)
		}
	} else {
		for _, r := range res.Roots {
			if r.PinErrorMsg != "" {
				return fmt.Errorf("pinning root %q FAILED: %s", r.Cid, r.PinErrorMsg)
			}
		}
	}
	return d.Close()
}

func runDagExport(args []string) error {
	fs := newFlagSet("fungi dag export")
	api := apiFlag(fs)
	quiet := fs.Bool("q", false, "no progress on stderr")
	setUsage(fs, "usage: fungi dag export CID > out.car\n\n"+
		"Writes the DAG under CID as a CARv1 to stdout: byte for byte what Kubo's\n"+
		"ipfs dag export writes for the same DAG. Progress goes to stderr when it is\n"+
		"a terminal.\n\nflags:\n")
	c, err := parseCIDArgs(fs, args)
	if err != nil {
		return err
	}
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return usagef("refusing to write a CAR to a terminal: redirect stdout (fungi dag export CID > out.car)")
	}
	d, err := connect(*api)
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, stop := signalContext()
	defer stop()
	prog := newProgress(*quiet, "exporting")
	var done atomic.Int64
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	err = d.ExportCAR(ctx, c, out, func(n int64) { prog.update(done.Add(n)) })
	prog.done()
	if err != nil {
		out.Flush()
		return err
	}
	return out.Flush()
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
