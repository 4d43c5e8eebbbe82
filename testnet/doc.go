// Package testnet runs local multi-node FungiStor clusters for tests and
// demos: N daemons as separate processes on loopback, one repo each in
// DIR/nodeI, all sharing one cluster secret. DIR/testnet.json records the
// nodes (repo, API address, pid); a node is addressed by a user with
// FUNGI_PATH=DIR/nodeI.
//
// Options.Latency sets a per-pair one-way delay matrix, written into each
// node's p2p.latency and applied inside its libp2p streams (no netem
// needed; ParseLatency reads the CLI's --latency forms), and
// Options.NoStore makes nodes that store no fragments (readers, gateways).
//
// Processes run in their own process groups so they outlive the command
// that started them. Before signalling a recorded pid, testnet checks that
// the process still is that node's daemon (its environment names the
// repo), so a recycled pid is never hit.
//
// testnet depends on node only.
//
//	st, err := testnet.Up(ctx, testnet.Options{N: 5, Dir: "/tmp/tn"})
//	...
//	testnet.Stop("/tmp/tn", []int{2}, true) // SIGKILL node 2
//	testnet.Down("/tmp/tn")
package testnet
