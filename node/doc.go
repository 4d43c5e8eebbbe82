// Package node wires FungiStor's layers into the programs a user runs: the
// embedded ZDB, the libp2p host, RAFT and the dispersal engine, with their
// configuration, HTTP API, gateway, FUSE mount and metrics.
//
// node is the only package that joins store, p2p and consensus; cmd talks
// to node alone. For now it runs the standalone 0-db compatible server
// (RunZDB) and its offline tools.
package node
