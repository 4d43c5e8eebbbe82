// Package p2p is FungiStor's network layer: a libp2p host with its identity,
// the Kademlia DHT for peer and provider routing, per-peer latency tracking,
// the membership gate for cluster-only protocols, and a latency shim for
// tests.
//
// # What it owns
//
//   - The node's identity: an Ed25519 key in a file of the repo
//     (LoadOrCreateIdentity). A corrupt key file is an error
//     (ErrCorruptIdentity), never silently replaced: the peer ID is the
//     node's name in the cluster.
//   - A libp2p host (Host) listening on TCP and QUIC, secured by TLS (or
//     Noise), multiplexed by yamux, with a connection manager
//     (ConnLow/ConnHigh). Dials try TCP first and QUIC 300 ms later: bulk
//     fragment traffic is much cheaper over TCP.
//   - The fragment exchange (Host.ServeFragments, Host.FragmentPeer) and
//     HTTP over member-only streams (Host.ListenMember, Host.DialMember):
//     the daemon forwards adds to the raft leader with them.
//   - A DHT in server mode under its own protocol prefix (Config.DHTPrefix,
//     "/fungi" by default, so the cluster's DHT is apart from the public
//     IPFS one; "/ipfs" speaks the IPFS DHT). Host.FindPeer, Host.Provide and
//     Host.FindProviders go through it.
//   - RTT estimates: every connected peer is pinged (libp2p's ping protocol)
//     when it connects and every Config.PingInterval; Host.RTT and
//     Host.Peers report the smoothed RTTs, Config.OnRTT / Host.SetOnRTT feed
//     them to another table (the reader's).
//   - The membership gate: streams of protocols registered with
//     Host.HandleMember are reset, before their handler runs, when the
//     predicate set with Host.SetAllowed rejects the remote peer. The DHT,
//     ping and Host.Handle protocols stay open.
//   - The IPFS network: boxo's bitswap, server and client (Host.StartBitswap:
//     any peer fetches the blocks of a BlockSource; Bitswap.Session fetches
//     from connected peers and IPFS DHT providers), and the IPFS DHT
//     (/ipfs/kad/1.0.0) beside the cluster's with boxo's provider system
//     announcing and reannouncing keys (Host.JoinIPFS, Host.IPFSProvide).
//   - Limits for an open service: an explicit resource manager scaled to
//     Config.MaxMemory and Config.MaxFileDescriptors, tight per-peer limits
//     for strangers, members' raised and their connections protected from
//     trimming (limits.go).
//   - What each connection negotiated (Host.ConnSecurity): TLS 1.3 with the
//     hybrid post-quantum key exchange X25519MLKEM768 is offered first,
//     Noise second (security.go).
//   - Partitions for tests: Host.Block refuses and closes every connection
//     with the given peers until Host.Unblock (a connection gater), and
//     Config.ExtraLatency / DelayStream add a simulated delay, since the
//     machine has no netem.
//
// p2p imports no other layer of this module (see docs/architecture.md):
// what a member is, which protocols carry RAFT or fragments, is decided by
// node, which hands p2p a predicate and handlers.
//
// # Invariants
//
//   - Every goroutine a Host starts is owned by it; Close stops them, closes
//     the DHT and the libp2p host, and waits for the goroutines and for the
//     stream handlers registered through Handle/HandleMember to return. After
//     Close, Connect, NewStream, FindPeer, Provide and FindProviders return
//     ErrClosed.
//   - Configuration errors are one line naming the field and the value
//     (Config.Validate, New).
//   - A gated stream never reaches its handler unless the gate allowed the
//     remote peer at the time the stream arrived. The gate is per stream,
//     not per connection: changing it affects the next streams.
//   - Config.ExtraLatency only touches streams opened with Host.NewStream or
//     accepted through Handle/HandleMember, and this package's pings; see
//     DelayStream for what it simulates.
//
// # Example
//
//	priv, err := p2p.LoadOrCreateIdentity(filepath.Join(repo, "identity.key"))
//	if err != nil {
//		return err
//	}
//	cfg := p2p.DefaultConfig()
//	cfg.Bootstrap = []string{"/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW..."}
//	if err := cfg.Validate(); err != nil {
//		return err // e.g. p2p: bootstrap address "...": ...
//	}
//	h, err := p2p.New(ctx, cfg, priv)
//	if err != nil {
//		return err
//	}
//	defer h.Close()
//
//	h.SetAllowed(pool.IsMember)  // who may put and delete fragments
//	h.ServeFragments(localStore) // /fungi/fragments/1.0.0: members only
//	frag, err := h.FragmentPeer(holder).GetFragment(ctx, key)
//	if err := h.Provide(ctx, root); err != nil {
//		return err
//	}
//	holders, err := h.FindProviders(ctx, root, 20)
//	for _, pi := range h.Peers() { // nearest first
//		fmt.Println(pi.ID, pi.RTT)
//	}
package p2p
