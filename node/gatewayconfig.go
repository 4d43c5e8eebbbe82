package node

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// DefaultGatewayListen is where `fungi init` puts the gateway: Kubo's
// default address.
const DefaultGatewayListen = "127.0.0.1:8080"

// GatewayConfig is the gateway part of the config. The gateway is
// read-only and safe to expose publicly.
type GatewayConfig struct {
	// Listen is the gateway's address (host:port); empty turns the gateway
	// off. `fungi init` writes 127.0.0.1:8080, as Kubo does.
	Listen string `json:"listen"`
	// PublicGateways configures hostnames as Kubo's Gateway.PublicGateways
	// (same field names): subdomain gateways, inline DNSLink, paths.
	PublicGateways map[string]*PublicGateway `json:"public_gateways,omitempty"`
	// NoDNSLink: do not resolve DNSLink for Host headers that are not a
	// known gateway hostname.
	NoDNSLink bool `json:"no_dnslink,omitempty"`
	// RetrievalTimeout: a request that cannot send its first byte, or its
	// next bytes, within this long ends with 504 (default "30s").
	RetrievalTimeout string `json:"retrieval_timeout,omitempty"`
	// MaxConcurrentRequests caps requests in flight (default 4096; 429
	// beyond it).
	MaxConcurrentRequests int `json:"max_concurrent_requests,omitempty"`
	// MaxRequestsPerClient caps one client's (remote IP's) requests in
	// flight, so one client cannot starve the others (default 64).
	MaxRequestsPerClient int `json:"max_requests_per_client,omitempty"`
	// FetchRemote: content the cluster does not hold is fetched from IPFS
	// peers over bitswap (connected peers, IPFS DHT providers) and served,
	// not stored. Off by default: the gateway serves the cluster's content
	// only, and an unknown CID is a 404 at once.
	FetchRemote bool `json:"fetch_remote,omitempty"`
}

// PublicGateway is one hostname's settings, as Kubo's
// Gateway.PublicGateways entries.
type PublicGateway struct {
	Paths                 []string `json:"Paths"`
	UseSubdomains         bool     `json:"UseSubdomains"`
	NoDNSLink             bool     `json:"NoDNSLink,omitempty"`
	InlineDNSLink         bool     `json:"InlineDNSLink,omitempty"`
	DeserializedResponses *bool    `json:"DeserializedResponses,omitempty"`
}

func (g GatewayConfig) validate() error {
	if g.Listen != "" {
		if _, port, err := net.SplitHostPort(g.Listen); err != nil || port == "" {
			return fmt.Errorf("gateway.listen %q: want host:port (or \"\" for no gateway)", g.Listen)
		}
	}
	if _, err := g.retrievalTimeout(); err != nil {
		return err
	}
	if g.MaxConcurrentRequests < 0 || g.MaxRequestsPerClient < 0 {
		return fmt.Errorf("gateway: request limits must not be negative")
	}
	for host, pg := range g.PublicGateways {
		if host == "" || strings.ContainsAny(host, "/ ") {
			return fmt.Errorf("gateway.public_gateways: bad hostname %q", host)
		}
		if pg == nil {
			continue
		}
		for _, p := range pg.Paths {
			if !strings.HasPrefix(p, "/") {
				return fmt.Errorf("gateway.public_gateways[%q].Paths: %q must start with /", host, p)
			}
		}
	}
	return nil
}

func (g GatewayConfig) retrievalTimeout() (time.Duration, error) {
	if g.RetrievalTimeout == "" {
		return 30 * time.Second, nil
	}
	d, err := time.ParseDuration(g.RetrievalTimeout)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("gateway.retrieval_timeout %q: want a duration such as \"30s\"", g.RetrievalTimeout)
	}
	return d, nil
}
