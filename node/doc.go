// Package node wires FungiStor's layers into the programs a user runs: the
// daemon (RunDaemon: the embedded ZDB, the libp2p host, RAFT and the
// dispersal engine, with their configuration, HTTP API and metrics), the
// standalone 0-db compatible server (RunZDB) and its offline tools, and a
// repo opened directly when no daemon runs.
//
// node is the only package that joins store, p2p and consensus; cmd talks
// to node alone. A capability of its own lives in a subpackage behind a
// small interface node implements: node/gateway (the IPFS HTTP gateway,
// over Repo's GetBlock/GetBlocks/HasBlock/BlockSize and OpenFile).
package node
