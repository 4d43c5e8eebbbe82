package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/fungistor/fungistor/consensus"
	"github.com/fungistor/fungistor/p2p"
)

// apiFile holds the running daemon's API address, as Kubo's `api` file
// does: clients find the daemon through it.
const apiFile = "api"

// daemonGCPercent is the daemon's GOGC unless the environment sets one:
// it took ~7% off the CPU of a publish on a 2-core machine.
const daemonGCPercent = 400

// DaemonOptions configure RunDaemon.
type DaemonOptions struct {
	// API overrides the config's API address.
	API string
	// Gateway overrides the config's gateway address ("off": none).
	Gateway string
	Logger  *slog.Logger
	// Mount, if set, mounts the shared tree there at start (as the
	// config's mount.dir does).
	Mount string
	// Ready, if set, is called once the API listens, with its address.
	Ready func(addr string)
}

// RunDaemon runs a node from the repo at path until ctx is done: the
// embedded ZDB and the HTTP API (with Prometheus metrics at /metrics). It
// writes $FUNGI_PATH/api while it runs and removes it on a clean stop.
func RunDaemon(ctx context.Context, path string, o DaemonOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if os.Getenv("GOGC") == "" {
		// the live heap is small (block buffers are pooled) and the daemon
		// streams content through it: collect less often (GOGC overrides)
		debug.SetGCPercent(daemonGCPercent)
	}
	repo, err := OpenRepo(path, log)
	if err != nil {
		return err
	}
	defer repo.Close()
	priv, err := p2p.LoadOrCreateIdentity(filepath.Join(path, identityFile))
	if err != nil {
		return err
	}
	pc := repo.Config.p2pConfig()
	pc.Logger = log
	host, err := p2p.New(ctx, pc, priv)
	if err != nil {
		return err
	}
	defer host.Close()
	log.Info("fungi daemon: p2p", "peer", host.ID().String(), "addrs", fmt.Sprint(host.Addrs()))
	cluster, err := startCluster(ctx, path, repo, host, log)
	if err != nil {
		return err
	}
	defer cluster.Close()
	// member-only protocols (fragment writes) let in the pool's members
	host.SetAllowed(cluster.isMember)
	go recheckMembers(ctx, host)
	served := &faultStore{FragmentStore: kvFragments{repo.frags}}
	host.ServeFragments(served)
	content := newClusterContent(repo, host, cluster, log)
	orphanAge, err := repo.Config.orphanAge()
	if err != nil {
		return err
	}
	go content.orphanLoop(ctx, orphanAge)
	addr := or(o.API, repo.Config.API)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("API listen on %s: %w", addr, err)
	}
	api := newAPI(repo, log)
	api.host, api.cluster, api.content, api.served = host, cluster, content, served
	api.handleCluster()
	api.handleRouting()
	api.handleDAG()
	repo.cluster = content
	// the shared tree: its API, its directories' hashes, FUSE mounts
	api.tree, err = newTreeHasher(repo, func() *consensus.FSM { return cluster.node().FSM() })
	if err != nil {
		l.Close()
		return err
	}
	repo.tree = api.tree
	api.handleFiles()
	api.mounts = newMounts(ctx, repo, cluster, log)
	defer api.mounts.Close()
	api.handleMounts()
	// self-healing: scrubber, audits, monitor and repairs
	if api.repairs, err = startRepair(ctx, repo, content); err != nil {
		l.Close()
		return err
	}
	api.handleRepair()
	api.handleWebUI()
	// bitswap for IPFS peers, and the IPFS DHT when on
	ipfs, err := startIPFS(ctx, repo, host, api, log)
	if err != nil {
		l.Close()
		return err
	}
	api.ipfs = ipfs
	api.handle("GET /api/v0/ipfs/status", api.ipfsStatusHandler)
	// adds on other nodes are forwarded here when this node leads
	forwarded := api.serveForwarded()
	defer forwarded.Close()
	gwAddr, stopGateway, err := api.startGateway(or(o.Gateway, repo.Config.Gateway.Listen), api.valueStore())
	if err != nil {
		l.Close()
		return err
	}
	defer stopGateway()
	api.gateway = gwAddr
	if dir := or(o.Mount, repo.Config.Mount.Dir); dir != "" {
		if _, err := api.mounts.Mount(dir); err != nil {
			l.Close()
			return err
		}
	}
	srv := &http.Server{Handler: guardBrowsers(api), ReadHeaderTimeout: 10 * time.Second}
	apiPath := filepath.Join(path, apiFile)
	if err := os.WriteFile(apiPath, []byte(l.Addr().String()+"\n"), 0o644); err != nil {
		l.Close()
		return err
	}
	defer os.Remove(apiPath)
	log.Info("fungi daemon: API listening", "addr", "http://"+l.Addr().String(), "console", "http://"+l.Addr().String()+"/webui/", "repo", path)
	if o.Ready != nil {
		o.Ready(l.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	log.Info("fungi daemon: stopped")
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if cerr := repo.Close(); err == nil {
		err = cerr
	}
	return err
}

// APIAddr returns the address of the daemon running on the repo at path, or
// "" when there is none (no api file, or nothing answers there: a stale
// file from a crash).
func APIAddr(path string) string {
	b, err := os.ReadFile(filepath.Join(path, apiFile))
	if err != nil {
		return ""
	}
	addr := strings.TrimSpace(string(b))
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	c.Close()
	return addr
}

// recheckMembers gives peers that became members (or stopped being ones)
// while connected their new resource limits and connection protection.
func recheckMembers(ctx context.Context, host *p2p.Host) {
	ticks(ctx, 10*time.Second, func() bool { host.RecheckMembers(); return true })
}

// ticks calls fn every d until ctx ends or fn returns false.
func ticks(ctx context.Context, d time.Duration, fn func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !fn() {
			return
		}
	}
}
