package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/fungistor/fungistor/testnet"
)

func runTestnet(args []string) error {
	usage := "usage: fungi testnet up -n N --dir DIR [--ec K/M] | status --dir DIR [--json] | stop --dir DIR [--kill] I... | start --dir DIR I... | down --dir DIR"
	if len(args) == 0 {
		return usagef("%s", usage)
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("fungi testnet " + sub)
	dir := fs.String("dir", "", "the testnet's directory (one repo per node in DIR/nodeI)")
	var n *int
	var coding *string
	var asJSON, kill *bool
	switch sub {
	case "up":
		n = fs.Int("n", 5, "number of nodes")
		coding = fs.String("ec", "", "erasure coding K/M of every node")
	case "status":
		asJSON = fs.Bool("json", false, "print a JSON array")
	case "stop":
		kill = fs.Bool("kill", false, "SIGKILL instead of SIGTERM")
	case "start", "down":
	default:
		return usagef("unknown testnet command %q; %s", sub, usage)
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *dir == "" {
		return usagef("--dir is required")
	}
	var idx []int
	for _, a := range rest {
		i, err := strconv.Atoi(a)
		if err != nil || i < 1 {
			return usagef("%q is not a node index", a)
		}
		idx = append(idx, i)
	}
	if (sub == "stop" || sub == "start") != (len(idx) > 0) {
		if len(idx) == 0 {
			return usagef("name the nodes to %s (indices from 1)", sub)
		}
		return usagef("testnet %s takes no node indices", sub)
	}
	ctx, stop := signalContext()
	defer stop()
	switch sub {
	case "up":
		if *n < 1 || *n > 100 {
			return usagef("-n must be 1 to 100")
		}
		if *coding != "" {
			if err := checkCoding(*coding); err != nil {
				return usagef("--ec: %v", err)
			}
		}
		st, err := testnet.Up(ctx, testnet.Options{N: *n, Dir: *dir, Coding: *coding})
		if err != nil {
			return err
		}
		for _, nd := range st.Nodes {
			fmt.Printf("node %d: FUNGI_PATH=%s (api %s, pid %d)\n", nd.Index, nd.Path, nd.API, nd.PID)
		}
		return nil
	case "status":
		sts, err := testnet.Status(*dir)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(os.Stdout).Encode(sts)
		}
		for _, s := range sts {
			state := "dead"
			if s.Alive {
				state = "alive"
			}
			role := s.Role
			if role == "" {
				role = "-"
			}
			fmt.Printf("node %d  %-5s  %-8s  %s  api %s  pid %d\n", s.Index, state, role, s.PeerID, s.API, s.PID)
		}
		return nil
	case "stop":
		return testnet.Stop(*dir, idx, *kill)
	case "start":
		return testnet.Start(ctx, *dir, idx)
	default:
		return testnet.Down(*dir)
	}
}
