package p2p

import "github.com/libp2p/go-libp2p"

// limitOptions are the resource manager's options for cfg. (Placeholder:
// libp2p's default resource manager.)
func limitOptions(cfg Config) ([]libp2p.Option, error) { return nil, nil }

// protectMembers keeps the connection manager from trimming members'
// connections. (Placeholder.)
func (h *Host) protectMembers() {}
