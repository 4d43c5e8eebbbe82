package node

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	boxogw "github.com/ipfs/boxo/gateway"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/fungistor/fungistor/node/gateway"
)

// gatewayOff is what --gateway takes to run no gateway.
const gatewayOff = "off"

// startGateway serves the IPFS gateway on addr (the config's unless the
// daemon overrides it) until ctx ends; "" or "off" serves none. It returns
// the address it listens on and a function that stops it.
func (a *api) startGateway(addr string, vs routing.ValueStore) (string, func(), error) {
	if addr == "" || addr == gatewayOff {
		return "", func() {}, nil
	}
	gc := a.repo.Config.Gateway
	timeout, err := gc.retrievalTimeout()
	if err != nil {
		return "", nil, err
	}
	pub := map[string]*boxogw.PublicGateway{}
	for host, pg := range gc.PublicGateways {
		if pg == nil {
			pub[host] = nil
			continue
		}
		des := true
		if pg.DeserializedResponses != nil {
			des = *pg.DeserializedResponses
		}
		pub[host] = &boxogw.PublicGateway{Paths: pg.Paths, UseSubdomains: pg.UseSubdomains,
			NoDNSLink: pg.NoDNSLink, InlineDNSLink: pg.InlineDNSLink, DeserializedResponses: des}
	}
	h, err := gateway.New(gateway.Config{
		PublicGateways:        pub,
		NoDNSLink:             gc.NoDNSLink,
		RetrievalTimeout:      timeout,
		MaxConcurrentRequests: gc.MaxConcurrentRequests,
		MaxRequestsPerClient:  gc.MaxRequestsPerClient,
		ValueStore:            vs,
		Registry:              a.reg,
		Logger:                a.log,
	}, a.gatewayNode())
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("gateway listen on %s: %w (set gateway.listen, or --gateway off)", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go srv.Serve(l)
	a.log.Info("fungi daemon: gateway listening", "addr", "http://"+l.Addr().String())
	return l.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// valueStore is where the gateway finds IPNS records: the cluster's
// metadata.
func (a *api) valueStore() routing.ValueStore { return a.content.ipnsStore() }

// gatewayNode is what the gateway reads: the repo, and with
// gateway.fetch_remote also IPFS peers for what the cluster lacks.
func (a *api) gatewayNode() gateway.Node {
	if !a.repo.Config.Gateway.FetchRemote || a.ipfs == nil {
		return a.repo
	}
	return remoteBlocks{Repo: a.repo, remote: &peerGetter{local: a.repo, remote: a.ipfs.bitswap}}
}

// remoteBlocks reads blocks from the cluster, and those it lacks from IPFS
// peers over bitswap (verified against their CIDs, not stored).
type remoteBlocks struct {
	*Repo
	remote *peerGetter
}

func (r remoteBlocks) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	return r.remote.GetBlock(ctx, c)
}

func (r remoteBlocks) GetBlocks(ctx context.Context, cs []cid.Cid) <-chan blocks.Block {
	return r.remote.GetBlocks(ctx, cs)
}
