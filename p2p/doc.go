// Package p2p is FungiStor's network layer: the libp2p host, the Kademlia
// DHT for peer and provider routing, per-peer latency tracking and the
// fragment exchange protocol.
//
// p2p never imports store or consensus; node joins them. It arrives with the
// cluster issue.
package p2p
