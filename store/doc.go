// Package store is FungiStor's storage layer: ZDB, an always-append key-value
// store compatible with ThreeFold's 0-db.
//
// Subpackages:
//   - zdb: the engine (append-only data files, index, namespaces); embedded
//     in every node and used in-process, with no TCP hop.
//   - resp: the Redis protocol (RESP2) reader and writer.
//   - server: the 0-db compatible RESP server over TCP and unix sockets
//     (`fungi zdb`).
//   - client: a pooled, pipelining client for remote ZDBs.
//   - storetest: the suite every KV implementation must pass.
//
// The embedded engine and the client both implement KV, so the layers above
// do not care whether a namespace is local or remote.
//
// store never imports p2p or consensus; only node joins them.
package store
