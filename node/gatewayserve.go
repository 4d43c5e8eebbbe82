package node

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	boxogw "github.com/ipfs/boxo/gateway"
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
	}, a.repo)
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
