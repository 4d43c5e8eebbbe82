package main

import (
	"github.com/fungistor/fungistor/node"
	"path/filepath"
)

func runDaemon(args []string) error {
	fs := newFlagSet("fungi daemon")
	api := fs.String("api", "", "HTTP API address host:port (default: the config's, 127.0.0.1:5980)")
	gw := fs.String("gateway", "", "IPFS gateway address host:port, or off (default: the config's gateway.listen, 127.0.0.1:8080)")
	verbose := fs.Bool("verbose", false, "debug logging")
	mountDir := fs.String("mount", "", "mount the shared tree read-only at this `directory` (default: the config's mount.dir)")
	setUsage(fs, "usage: fungi daemon [--api ADDR] [--gateway ADDR|off] [--mount DIR]\n\n"+
		"Runs the node on the repo in $FUNGI_PATH (default ~/.fungi) until SIGINT or\n"+
		"SIGTERM: the embedded ZDB, the HTTP API and Prometheus metrics at /metrics,\n"+
		"and the read-only IPFS gateway (/ipfs/CID, /ipns/NAME).\n"+
		"Other fungi commands find it through $FUNGI_PATH/api.\n\nflags:\n")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *mountDir != "" {
		abs, err := filepath.Abs(*mountDir)
		if err != nil {
			return usagef("--mount: %v", err)
		}
		*mountDir = abs
	}
	ctx, stop := signalContext()
	defer stop()
	return node.RunDaemon(ctx, node.RepoPath(), node.DaemonOptions{API: *api, Gateway: *gw, Mount: *mountDir, Logger: newLogger(*verbose)})
}
