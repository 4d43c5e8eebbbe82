package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/fungistor/fungistor/node"
)

func runRepo(args []string) error {
	const help = "usage: fungi repo stat [--json] | fungi repo gc [--min-age D] [--json]\n\n" +
		"stat: what this node's ZDB holds (fragments, bytes).\n" +
		"gc:   delete this node's orphan fragments (no object in the cluster uses\n" +
		"      them: left by a failed add) older than --min-age (default: the\n" +
		"      config's cluster.orphan_age, 1h). The daemon also does this by itself.\n"
	if done, err := groupHelp(args, "repo", "stat, gc", help); done {
		return err
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("fungi repo " + sub)
	api := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var minAge *time.Duration
	switch sub {
	case "stat":
	case "gc":
		minAge = fs.Duration("min-age", -1, "only fragments at least this old (e.g. 0s, 10m; default: the config's orphan_age)")
	default:
		return usagef("unknown repo command %q (stat, gc)", sub)
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	d, err := node.Daemon(node.RepoPath(), *api)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	var out any
	if sub == "stat" {
		st, err := d.RepoStat(ctx)
		if err != nil {
			return err
		}
		out = st
		if !*asJSON {
			fmt.Printf("fragments %d (%d bytes); ZDB data files %d bytes\n", st.Fragments, st.FragmentBytes, st.DataBytes)
			if sc := st.Scrub; sc != nil {
				printScrub(sc)
			}
			return nil
		}
	} else {
		res, err := d.GC(ctx, *minAge)
		if err != nil {
			return err
		}
		out = res
		if !*asJSON {
			fmt.Printf("scanned %d fragments: deleted %d orphans (%d bytes), kept %d too young\n", res.Scanned, res.Deleted, res.Bytes, res.Kept)
			return nil
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// printScrub says how far the scrubber is and what it found.
func printScrub(sc *node.ScrubStatus) {
	if sc.Rate == 0 {
		fmt.Println("scrub: off (repair.scrub_rate 0)")
		return
	}
	line := fmt.Sprintf("scrub: %.1f MB/s cap; %d full passes", float64(sc.Rate)/1e6, sc.Passes)
	if sc.Running && sc.Total > 0 {
		line += fmt.Sprintf("; this pass %d of %d fragments", sc.Scanned, sc.Total)
	}
	if !sc.LastPass.IsZero() {
		line += fmt.Sprintf("; last ended %s ago (%.1f s), found %d corrupt, %d missing",
			time.Since(sc.LastPass).Round(time.Second), sc.LastDuration, sc.LastCorrupt, sc.LastMissing)
	}
	fmt.Println(line)
	fmt.Printf("scrub since start: %.1f MB verified, %d corrupt and %d missing fragments found (deleted and reported for repair)\n",
		float64(sc.BytesVerified)/1e6, sc.Corrupt, sc.Missing)
}
