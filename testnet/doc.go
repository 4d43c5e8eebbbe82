// Package testnet runs local multi-node FungiStor clusters for tests and
// demos: N daemons as separate processes on loopback, one repo each.
//
// testnet depends on node only. It arrives with the cluster issue.
package testnet
