package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/fungistor/fungistor/testnet"
)

func runTestnet(args []string) error {
	usage := "usage: fungi testnet up -n N --dir DIR [--ec K/M] [--latency SPEC] [--no-store I,J...] [--ipfs-dht] [--set KEY=VALUE]... | status --dir DIR [--json] | stop --dir DIR [--kill] I... | start --dir DIR I... | down --dir DIR"
	if len(args) == 0 {
		return usagef("%s", usage)
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("fungi testnet " + sub)
	dir := fs.String("dir", "", "the testnet's directory (one repo per node in DIR/nodeI)")
	var n *int
	var coding, latency, noStore *string
	var asJSON, kill *bool
	var sets stringList
	ipfsDHT := new(bool)
	switch sub {
	case "up":
		n = fs.Int("n", 5, "number of nodes")
		coding = fs.String("ec", "", "erasure coding K/M of every node")
		latency = fs.String("latency", "", testnet.LatencySyntax)
		noStore = fs.String("no-store", "", "comma-separated `indices` of nodes that hold no fragments (readers, gateways), e.g. 4,5")
		ipfsDHT = fs.Bool("ipfs-dht", false, "nodes join the IPFS DHT (loopback peers admitted; add a Kubo peer with --set 'ipfs.bootstrap=[\"/ip4/…/p2p/…\"]')")
		fs.Var(&sets, "set", "set a config `KEY=VALUE` on every node (as fungi config; VALUE is JSON if it parses, else a string); repeatable")
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
		o := testnet.Options{N: *n, Dir: *dir, Coding: *coding, IPFSDHT: *ipfsDHT}
		if *latency != "" {
			if o.Latency, err = testnet.ParseLatency(*latency, *n); err != nil {
				return usagef("--%v", err)
			}
		}
		if o.NoStore, err = parseNodeList(*noStore, *n); err != nil {
			return usagef("--no-store: %v", err)
		}
		if o.Set, err = testnet.ParseSettings(sets); err != nil {
			return usagef("--set: %v", err)
		}
		st, err := testnet.Up(ctx, o)
		if err != nil {
			return err
		}
		for _, nd := range st.Nodes {
			extra := ""
			if nd.NoStore {
				extra = ", no-store"
			}
			fmt.Printf("node %d: FUNGI_PATH=%s (api %s, gateway %s, pid %d, peer %s%s)\n", nd.Index, nd.Path, nd.API, orNone(nd.Gateway), nd.PID, nd.Peer, extra)
			fmt.Printf("        swarm %s\n", nd.Swarm)
		}
		if len(st.Nodes) > 0 {
			fmt.Printf("web console: http://%s/webui/\n", st.Nodes[0].API)
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
			fmt.Printf("node %d  %-5s  %-8s  %s  api %s  gateway %s  pid %d\n", s.Index, state, role, s.PeerID, s.API, orNone(s.Gateway), s.PID)
			if s.Swarm != "" {
				fmt.Printf("        swarm %s\n", s.Swarm)
			}
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

// orNone is s, or "none" when it is empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// parseNodeList parses "1,3" into node indices from 1 to n ("" is none).
func parseNodeList(s string, n int) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		i, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || i < 1 || i > n {
			return nil, fmt.Errorf("%q is not a node index from 1 to %d", f, n)
		}
		if !slices.Contains(out, i) {
			out = append(out, i)
		}
	}
	return out, nil
}
