package node

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/fungistor/fungistor/consensus"
	"github.com/fungistor/fungistor/p2p"
)

// apiFile holds the running daemon's API address, as Kubo's `api` file
// does: clients find the daemon through it.
const apiFile = "api"

// DaemonOptions configure RunDaemon.
type DaemonOptions struct {
	// API overrides the config's API address.
	API    string
	Logger *slog.Logger
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
	addr := or(o.API, repo.Config.API)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("API listen on %s: %w", addr, err)
	}
	api := newAPI(repo, log)
	api.host, api.cluster = host, cluster
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	apiPath := filepath.Join(path, apiFile)
	if err := os.WriteFile(apiPath, []byte(l.Addr().String()+"\n"), 0o644); err != nil {
		l.Close()
		return err
	}
	defer os.Remove(apiPath)
	log.Info("fungi daemon: API listening", "addr", "http://"+l.Addr().String(), "repo", path)
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

// startCluster opens the node's raft state. A fresh node with no bootstrap
// peers founds a cluster; a fresh node with some joins through them (in the
// background, retrying until it is admitted); a node with state rejoins by
// itself.
func startCluster(ctx context.Context, path string, repo *Repo, host *p2p.Host, log *slog.Logger) (*consensus.Node, error) {
	dir := filepath.Join(path, "raft")
	_, statErr := os.Stat(filepath.Join(dir, "raft.db"))
	fresh := errors.Is(statErr, os.ErrNotExist)
	secret := repo.secret
	cn, err := consensus.New(consensus.Config{
		Dir: dir,
		Authorize: func(p peer.ID, nonce, proof []byte) bool {
			return hmac.Equal(proof, consensus.JoinSecretProof(secret, nonce, p.String()))
		},
		Logger: log,
	}, host.LibP2P())
	if err != nil {
		return nil, err
	}
	if !fresh {
		return cn, nil
	}
	boot := repo.Config.P2P.Bootstrap
	if len(boot) == 0 {
		if err := cn.Bootstrap(); err != nil {
			cn.Close()
			return nil, err
		}
		log.Info("fungi daemon: founded a new cluster")
		return cn, nil
	}
	go func() {
		for attempt := 0; ctx.Err() == nil; attempt++ {
			for _, a := range boot {
				ai, err := peer.AddrInfoFromString(a)
				if err != nil || ai.ID == host.ID() {
					continue
				}
				jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err = cn.Join(jctx, *ai, secret)
				cancel()
				if err == nil {
					log.Info("fungi daemon: joined the cluster", "via", ai.ID.String())
					return
				}
				log.Warn("fungi daemon: join", "via", ai.ID.String(), "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(min(time.Duration(attempt+1)*500*time.Millisecond, 5*time.Second)):
			}
		}
	}()
	return cn, nil
}
