package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/fungistor/fungistor/node"
)

func runBlock(args []string) error {
	const help = "usage: fungi block get CID > block | fungi block stat [--json] CID\n\n" +
		"get:  write one block's bytes (any codec) to stdout, verified against its CID.\n" +
		"stat: print its CID and size, as Kubo's ipfs block stat.\n"
	if done, err := groupHelp(args, "block", "get, stat", help); done {
		return err
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
	d, err := connect(*api)
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
