package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/fungistor/fungistor/node"
)

const routingUsage = `usage: fungi routing <command> [flags]

commands:
  put   store a signed IPNS record: put [--allow-offline] /ipns/NAME [FILE|-]
  get   write the IPNS record of a name to stdout: get /ipns/NAME

Signed IPNS records live in the cluster's replicated metadata, as Kubo's
'ipfs routing put|get' keep them in the DHT; the gateway resolves
/ipns/NAME through them.
`

const routingPutUsage = `usage: fungi routing put [--allow-offline] /ipns/NAME [FILE|-]

Stores the signed IPNS record in FILE (stdin when FILE is - or missing; the
marshalled protobuf, as 'ipfs routing get' writes it) for NAME (a peer ID
or a libp2p-key CID) in the cluster's metadata, through the raft leader,
and prints NAME's peer ID. Any node of the cluster can then serve it.

The record is refused (one line, exit 1, nothing stored) unless it is
signed by NAME's key, not expired, at most 10 KiB, and better than the
record the cluster holds: a higher sequence number, or the same one with a
later validity. Putting the record the cluster holds again succeeds.

--allow-offline: a node alone in its cluster (no other member) refuses a
put by default, as Kubo refuses one with no network, since the record would
live on this node only; with the flag it keeps it. It is not needed in a
cluster of two or more nodes, and cannot replace the daemon: with no daemon
running, put fails.

flags:
`

func runRouting(args []string) error {
	if done, err := groupHelp(args, "routing", "put, get", routingUsage); done {
		return err
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("fungi routing " + sub)
	api := apiFlag(fs)
	var allowOffline *bool
	switch sub {
	case "put":
		allowOffline = fs.Bool("allow-offline", false, "keep the record on a node alone in its cluster (see above)")
		setUsage(fs, routingPutUsage)
	case "get":
		setUsage(fs, "usage: fungi routing get /ipns/NAME\n\nWrites the signed IPNS record the cluster holds for NAME (a peer ID or a\nlibp2p-key CID) to stdout, raw, as 'ipfs routing get' does.\n\nflags:\n")
	default:
		return usagef("unknown routing command %q (put, get)", sub)
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case sub == "get" && len(rest) != 1:
		return usagef("get takes one key, /ipns/NAME")
	case sub == "put" && (len(rest) < 1 || len(rest) > 2):
		return usagef("put takes a key, /ipns/NAME, and a FILE holding the record (- or none: stdin)")
	}
	d, err := node.Daemon(node.RepoPath(), *api)
	if errors.Is(err, node.ErrNoDaemon) {
		return fmt.Errorf("%s needs a running daemon (start `fungi daemon`): IPNS records live in the cluster's metadata", sub)
	} else if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	if sub == "get" {
		rec, err := d.RoutingGet(ctx, rest[0])
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(rec)
		return err
	}
	in, what := io.Reader(os.Stdin), "stdin"
	if len(rest) == 2 && rest[1] != "-" {
		f, err := os.Open(rest[1])
		if err != nil {
			return err
		}
		defer f.Close()
		in, what = f, rest[1]
	}
	// a little more than a record may hold: the daemon names the limit
	rec, err := io.ReadAll(io.LimitReader(in, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the record from %s: %w", what, err)
	}
	res, err := d.RoutingPut(ctx, rest[0], rec, *allowOffline)
	if err != nil {
		return err
	}
	fmt.Println(res.Name)
	return nil
}
