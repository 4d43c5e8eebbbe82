package gateway

// Imports that pin this package's dependencies until the code that uses
// them lands (removed then).
import (
	_ "github.com/ipfs/boxo/blockservice"
	_ "github.com/ipfs/boxo/gateway"
	_ "github.com/ipfs/boxo/ipns"
	_ "github.com/ipfs/boxo/namesys"
	_ "github.com/ipfs/go-unixfsnode"
	_ "github.com/ipld/go-car/v2"
	_ "github.com/ipld/go-codec-dagpb"
	_ "github.com/ipld/go-ipld-prime"
	_ "github.com/ipld/go-ipld-prime/codec/dagcbor"
	_ "github.com/ipld/go-ipld-prime/codec/dagjson"
)
