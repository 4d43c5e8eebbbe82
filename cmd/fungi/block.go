package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/fungistor/fungistor/node"
)

func runBlock(args []string) error {
	const usage = "usage: fungi block get CID > block | fungi block stat [--json] CID"
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, usage+"\n\n"+
			"get:  write one block's bytes (any codec) to stdout, verified against its CID.\n"+
			"stat: print its CID and size, as Kubo's ipfs block stat.")
		if len(args) == 0 {
			return usagef("name a block command (get, stat)")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	if sub != "get" && sub != "stat" {
		return usagef("unknown block command %q (get, stat)", sub)
	}
	fs := newFlagSet("fungi block " + sub)
	api := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON (stat)")
	setUsage(fs, "usage: fungi block "+sub+" CID\n\nflags:\n")
	c, err := parseCIDArgs(fs, args)
	if err != nil {
		return err
	}
	d, err := node.ConnectDAGs(node.RepoPath(), *api)
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, stop := signalContext()
	defer stop()
	if sub == "get" {
		blk, err := d.GetBlock(ctx, c)
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(blk.RawData())
		return err
	}
	n, err := d.BlockSize(ctx, c)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(node.BlockStatOutput{Key: c.String(), Size: n})
	}
	fmt.Printf("Key: %s\nSize: %d\n", c, n)
	return nil
}
