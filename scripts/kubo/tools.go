//go:build tools

// Package tools pins Kubo for scripts/kubo.sh.
package tools

import _ "github.com/ipfs/kubo/cmd/ipfs"
