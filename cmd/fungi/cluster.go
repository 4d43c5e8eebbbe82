package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

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
	const subs = "status, peers, join, leave"
	if done, err := groupHelp(args, "cluster", subs, clusterUsage); done {
		return err
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("fungi cluster " + sub)
	api := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var secret *string
	var force *bool
	switch sub {
	case "status":
		setUsage(fs, "usage: fungi cluster status [--json]\n\nThe leader, voters, non-voters and their health, the members and the metadata,\nas this node sees them.\n\nflags:\n")
	case "peers":
		setUsage(fs, "usage: fungi cluster peers [--json]\n\nThe libp2p peers of this node: round-trip time, member of the cluster or\nnot, and what the connection negotiated (transport, security, key exchange:\nX25519MLKEM768 is post-quantum).\n\nflags:\n")
	case "join":
		secret = fs.String("secret", "", "the cluster's secret, hex (default: this repo's; see $FUNGI_PATH/secret on a member)")
		force = fs.Bool("force", false, "join even if this node's own cluster holds metadata (it is forgotten)")
		setUsage(fs, "usage: fungi cluster join [--secret HEX] [--force] MULTIADDR\n\nJoins the cluster of the member at MULTIADDR (/ip4/HOST/tcp/PORT/p2p/PEERID),\nproving the cluster secret. A node alone in its own cluster gives it up.\n\nflags:\n")
	case "leave":
		setUsage(fs, "usage: fungi cluster leave [--json]\n\nTakes this node out of its cluster; it then runs a cluster of its own.\n\nflags:\n")
	default:
		return usagef("unknown cluster command %q (%s)", sub, subs)
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	want := 0
	if sub == "join" {
		want = 1
	}
	if len(rest) != want {
		if want == 1 {
			return usagef("join takes one multiaddr (of a cluster member, with /p2p/PEERID)")
		}
		return usagef("unexpected argument %q", rest[0])
	}
	d, err := node.Daemon(node.RepoPath(), *api)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	var st *node.ClusterStatus
	switch sub {
	case "peers":
		return printPeers(ctx, d, *asJSON)
	case "status":
		st, err = d.ClusterStatus(ctx)
	case "join":
		st, err = d.Join(ctx, rest[0], *secret, *force)
	case "leave":
		st, err = d.Leave(ctx)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(st)
	}
	switch sub {
	case "join":
		fmt.Printf("joined: leader %s\n", or(st.Leader, "(none yet)"))
	case "leave":
		fmt.Println("left the cluster; this node now runs a cluster of its own")
	}
	printStatus(st)
	return nil
}

const clusterUsage = `usage: fungi cluster <command> [flags]

commands:
  status   the leader, voters, non-voters, health, members (--json)
  peers    libp2p peers with their round-trip times (--json)
  join     join the cluster of a member: join [--secret HEX] MULTIADDR
  leave    leave the cluster
`

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func printPeers(ctx context.Context, d *node.APIClient, asJSON bool) error {
	peers, err := d.Peers(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(peers)
	}
	for _, p := range peers {
		state := "connected"
		if !p.Connected {
			state = "known"
		}
		kind := "other"
		if p.Member {
			kind = "member"
		}
		sec := "-"
		if len(p.Conns) > 0 {
			c := p.Conns[0]
			sec = c.Transport + " " + strings.TrimPrefix(c.Security, "/") + " " + or(c.KeyExchange, "?")
		}
		fmt.Printf("%s  %8.2f ms  %-9s  %-6s  %-32s  %s\n", p.PeerID, p.RTTMillis, state, kind, sec, strings.Join(p.Addrs, " "))
	}
	return nil
}

func printStatus(st *node.ClusterStatus) {
	health := "healthy"
	if !st.Healthy {
		health = "UNHEALTHY (no leader, or no majority of voters reachable)"
	}
	fmt.Printf("cluster:   %s; leader %s, term %d\n", health, or(st.Leader, "(none)"), st.Term)
	fmt.Printf("this node: %s, %s, applied index %d\n", st.PeerID, st.Role, st.Applied)
	domains := map[string]string{}
	for _, m := range st.Members {
		domains[m.ID] = m.Domain
	}
	fmt.Printf("servers (%d voters, %d non-voters):\n", len(st.Voters), len(st.Nonvoters))
	for _, s := range st.Servers {
		h := "healthy"
		if !s.Healthy {
			h = "DOWN"
		}
		fmt.Printf("  %s  %-8s  %-7s  %7.2f ms  %s\n", s.ID, s.Role, h, s.RTTMillis, domains[s.ID])
	}
	md := st.Metadata
	fmt.Printf("metadata:  %d members, %d objects, %d pins, %d paths, %d IPNS records\n", md.Members, md.Manifests, md.Pins, md.Paths, md.IPNS)
	fmt.Printf("policy:    %s\n", st.Policy)
	if r := st.Repair; r != nil {
		o := r.Objects
		fmt.Printf("content:   %d objects full, %d degraded, %d at risk (no spare left), %d lost\n", o.Full, o.Degraded, o.AtRisk, o.Lost)
		fmt.Printf("repair:    backlog %d fragments; %d waiting on members down within the grace", r.Backlog, r.Stranded)
		if r.Pending > 0 {
			fmt.Printf("; %d epoch(s) in progress", r.Pending)
		}
		fmt.Println()
		if len(r.Down) > 0 {
			fmt.Printf("down:      %s (within the grace: no repair yet)\n", strings.Join(r.Down, ", "))
		}
		if len(r.Lost) > 0 {
			fmt.Printf("lost:      %s (their fragments are being re-created on others)\n", strings.Join(r.Lost, ", "))
		}
		if len(r.Replaced) > 0 {
			fmt.Printf("replaced:  %s (repaired around; nothing needed is left on them)\n", strings.Join(r.Replaced, ", "))
		}
		if r.Partition != "" {
			fmt.Printf("PARTITION: %s\n", r.Partition)
		}
		for _, a := range r.Audits {
			if a.Failing || a.Failed > 0 {
				state := "failed some audits"
				if a.Failing {
					state = "FAILING AUDITS (replaced)"
				}
				fmt.Printf("audit:     %s %s: %d passed, %d failed; last: %s\n", a.ID, state, a.Passed, a.Failed, a.LastFailure)
			}
		}
	}
}

func runPin(args []string) error {
	if done, err := groupHelp(args, "pin", "add, rm, ls", "usage: fungi pin add [--timeout D] [--quiet] CID... | fungi pin rm CID... | fungi pin ls [--json]\n"); done {
		return err
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("fungi pin " + sub)
	api := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var timeout *time.Duration
	quiet := new(bool)
	switch sub {
	case "add":
		timeout = fs.Duration("timeout", 0, "for content the cluster lacks, fetched from IPFS peers: give up when no block arrives for this `long` (default: the daemon's ipfs.fetch_timeout, 2m)")
		quiet = fs.Bool("quiet", false, "no progress")
		fs.BoolVar(quiet, "q", false, "same as --quiet")
	case "rm", "ls":
	default:
		return usagef("unknown pin command %q (add, rm, ls)", sub)
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if sub == "ls" && len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	if sub != "ls" {
		if len(rest) == 0 {
			return usagef("pin %s takes one or more CIDs", sub)
		}
		for _, a := range rest {
			if _, err := node.ParseCID(a); err != nil {
				return usagef("%v", err)
			}
		}
	}
	d, err := node.Daemon(node.RepoPath(), *api)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	if sub == "ls" {
		pins, err := d.Pins(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(os.Stdout).Encode(pins)
		}
		for _, p := range pins {
			fmt.Println(p)
		}
		return nil
	}
	var res *node.PinResult
	if sub == "add" {
		p := newProgress(*quiet, "fetched")
		res, err = d.PinAdd(ctx, node.PinAddOptions{Timeout: *timeout, Progress: func(ip node.IngestProgress) { p.update(ip.Bytes) }}, rest...)
		p.done()
	} else {
		res, err = d.Pin(ctx, false, rest...)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	verb := "pinned"
	if sub == "rm" {
		verb = "unpinned"
	}
	for _, p := range res.Pins {
		fmt.Println(verb, p)
	}
	return nil
}
