package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/fungistor/fungistor/node"
)

func runRepair(args []string) error {
	fs := newFlagSet("fungi repair")
	setUsage(fs, "usage: fungi repair [--dry-run] [--json] [--quiet] CID... | --all\n"+
		"       fungi repair --rate RATE\n\n"+
		"Re-creates the missing or corrupt fragments of the objects named (or of\n"+
		"all) now, from K good ones, onto live members. Members that are down\n"+
		"count as lost at once (the daemon's own monitor waits repair.grace),\n"+
		"unless so many are down that it looks like a partition. --rate sets the\n"+
		"daemon's repair rate cap while it runs (e.g. 50MB, 0 for none).\n")
	api := apiFlag(fs)
	all := fs.Bool("all", false, "repair every object")
	dry := fs.Bool("dry-run", false, "say what would be repaired; write nothing")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	quiet := fs.Bool("quiet", false, "no progress")
	fs.BoolVar(quiet, "q", false, "same as --quiet")
	rate := fs.String("rate", "", "set the daemon's repair rate cap (bytes per second) and exit")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *rate != "" {
		if len(rest) > 0 || *all || *dry {
			return usagef("--rate takes no CIDs, --all or --dry-run")
		}
		if _, err := node.ParseRate(*rate); err != nil {
			return usagef("--rate %v", err)
		}
	} else {
		if err := cidsOrAll("repair", rest, *all); err != nil {
			return err
		}
	}
	d, err := node.Daemon(node.RepoPath(), *api)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	if *rate != "" {
		if err := d.SetRepairRate(ctx, *rate); err != nil {
			return err
		}
		fmt.Printf("repair rate cap set to %s on this node (the leader's caps the monitor's repairs)\n", *rate)
		return nil
	}
	p := newProgress(*quiet || *asJSON, "repair")
	rep, err := d.Repair(ctx, node.RepairOptions{All: *all, DryRun: *dry, Progress: func(pr node.RepairProgress) {
		p.show(fmt.Sprintf("%d / %d blocks, %d fragments, %.1f MB written", pr.Blocks, pr.Total, pr.Fragments, float64(pr.Bytes)/1e6))
	}}, rest...)
	p.done()
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(rep)
	}
	printRepair(rep)
	if len(rep.Lost) > 0 {
		return fmt.Errorf("%d object(s) cannot be rebuilt: fewer than K fragments are left", len(rep.Lost))
	}
	return nil
}

func printRepair(rep *node.RepairReport) {
	verb := "repaired"
	if rep.DryRun {
		verb = "would repair"
	}
	if len(rep.Moved) > 0 {
		fmt.Printf("members replaced (their fragments move to others): %s\n", strings.Join(rep.Moved, ", "))
	}
	if rep.DryRun {
		fmt.Printf("%s %d blocks: %d fragments to write\n", verb, rep.Blocks, rep.Fragments)
	} else {
		fmt.Printf("%s %d of %d blocks: %d fragments, %.1f MB written\n", verb, rep.Repaired, rep.Blocks, rep.Fragments, float64(rep.Bytes)/1e6)
	}
	o := rep.Objects
	fmt.Printf("objects: %d full, %d degraded, %d at risk, %d lost\n", o.Full, o.Degraded, o.AtRisk, o.Lost)
	if rep.Waiting > 0 {
		fmt.Printf("waiting: %d fragments on members that are down and could not move\n", rep.Waiting)
	}
	for _, r := range rep.AtRisk {
		fmt.Printf("at risk (no spare left): %s\n", r)
	}
	for _, r := range rep.Lost {
		fmt.Printf("LOST (fewer than K fragments): %s\n", r)
	}
	if rep.Note != "" {
		fmt.Printf("note: %s\n", rep.Note)
	}
}

func runCheck(args []string) error {
	fs := newFlagSet("fungi check")
	setUsage(fs, "usage: fungi check [--json] CID... | --all\n\n"+
		"Fetches every fragment of the objects from their holders and verifies\n"+
		"it; what is missing or corrupt on a member that answered is reported\n"+
		"for repair. Exits non-zero when an object is not fully whole.\n")
	api := apiFlag(fs)
	all := fs.Bool("all", false, "check every object")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := cidsOrAll("check", rest, *all); err != nil {
		return err
	}
	d, err := node.Daemon(node.RepoPath(), *api)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	rep, err := d.Check(ctx, *all, rest...)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
			return err
		}
	} else {
		for _, o := range rep.Objects {
			line := fmt.Sprintf("%s  %-8s  %d blocks, spare %d", o.Root, o.Health, o.Blocks, o.Spare)
			if o.Missing+o.Corrupt > 0 {
				line += fmt.Sprintf(", %d missing, %d corrupt", o.Missing, o.Corrupt)
			}
			if len(o.Unreachable) > 0 {
				line += fmt.Sprintf(", %d holders unreachable", len(o.Unreachable))
			}
			if o.Error != "" {
				line += ": " + o.Error
			}
			fmt.Println(line)
		}
		h := rep.Health
		fmt.Printf("checked %d objects: %d full, %d degraded, %d at risk, %d lost; %d fragments reported for repair\n",
			len(rep.Objects), h.Full, h.Degraded, h.AtRisk, h.Lost, rep.Reported)
	}
	if n := len(rep.Objects) - rep.Health.Full; n > 0 {
		return fmt.Errorf("%d of %d objects are not whole", n, len(rep.Objects))
	}
	return nil
}

// cidsOrAll checks the arguments of a command that takes CIDs or --all.
func cidsOrAll(verb string, cids []string, all bool) error {
	switch {
	case len(cids) == 0 && !all:
		return usagef("name the CIDs to %s, or --all", verb)
	case len(cids) > 0 && all:
		return usagef("give CIDs or --all, not both")
	}
	for _, a := range cids {
		if _, err := node.ParseCID(a); err != nil {
			return usagef("%v", err)
		}
	}
	return nil
}
