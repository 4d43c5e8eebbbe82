package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/fungistor/fungistor/node"
)

func runID(args []string) error {
	fs := newFlagSet("fungi id")
	api := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	d, err := node.Daemon(node.RepoPath(), *api)
	if err != nil {
		// without a daemon, the identity is still in the repo
		id, perr := node.PeerID(node.RepoPath())
		if perr != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(os.Stdout).Encode(node.ID{PeerID: id, Addrs: []string{}})
		}
		fmt.Println(id)
		return nil
	}
	ctx, stop := signalContext()
	defer stop()
	id, err := d.ID(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(id)
	}
	fmt.Println(id.PeerID)
	for _, a := range id.Addrs {
		fmt.Println("  " + a)
	}
	return nil
}

func runCluster(args []string) error {
	if len(args) == 0 {
		return usagef("usage: fungi cluster peers [--json]")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("fungi cluster " + sub)
	api := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	switch sub {
	case "peers":
	default:
		return usagef("unknown cluster command %q (peers)", sub)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	d, err := node.Daemon(node.RepoPath(), *api)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	peers, err := d.Peers(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(peers)
	}
	for _, p := range peers {
		state := "connected"
		if !p.Connected {
			state = "known"
		}
		fmt.Printf("%s  %8.2f ms  %-9s  %s\n", p.PeerID, p.RTTMillis, state, strings.Join(p.Addrs, " "))
	}
	return nil
}
