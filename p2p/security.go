package p2p

import (
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
)

// securityTable records what each connection's security handshake
// negotiated. (Placeholder: filled in by the post-quantum work.)
type securityTable struct{}

func newSecurityTable() *securityTable { return &securityTable{} }

// options are the host's security transports: TLS first (TLS 1.3 picks
// AES-GCM, which AES-NI makes several times cheaper than Noise's
// ChaCha20-Poly1305 for bulk fragments), then Noise.
func (t *securityTable) options() []libp2p.Option {
	return []libp2p.Option{
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
	}
}
