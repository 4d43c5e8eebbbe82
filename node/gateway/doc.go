// Package gateway serves a node's content over HTTP the IPFS way: the
// path gateway, trustless gateway and subdomain gateway specifications
// (specs.ipfs.tech), implemented by boxo's gateway package over the node's
// blocks.
//
// The node gives the gateway a [Blocks]: presence and sizes from its block
// index (never a fetch), and blocks fetched through its fragment reader
// (nearest K holders, hedging, verification). boxo's blockservice asks a
// blockstore first and an exchange for what the blockstore lacks; here the
// blockstore is only the index (Has, GetSize; identity CIDs inline) and
// every fetch goes to the exchange, whose GetBlocks fetches in parallel, so
// the DAG readers' prefetch reaches the network as one batch instead of
// one block at a time.
//
// Errors become the spec's status codes: an unknown CID is a 404 (the node
// returns ipld.ErrNotFound), content whose holders cannot deliver is a 504
// before the first byte, a bad CID or path a 400. The handler is
// read-only; it is safe to expose.
//
// Usage:
//
//	h, err := gateway.New(gateway.Config{PublicGateways: ...}, node)
//	http.Serve(listener, h)
package gateway
