// Package consensus keeps FungiStor's replicated metadata: a hashicorp/raft
// group over libp2p streams whose state machine holds pool membership,
// manifests, pins and the shared file tree, with leader forwarding.
//
// consensus never imports store or p2p; node joins them. It arrives with the
// cluster issue.
package consensus
