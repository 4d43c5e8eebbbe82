package p2p

// ipfsNet is the host's part in the IPFS network: the IPFS DHT and the
// provider announcing this host's content in it.
type ipfsNet struct{}
