package p2p

// Interoperability with Kubo (built by scripts/kubo.sh): a fungi host and
// a real Kubo daemon negotiate TLS 1.3 with the hybrid post-quantum
// X25519MLKEM768 key exchange, over TCP in both directions and over QUIC.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// kubo is a running Kubo daemon on loopback.
type kubo struct {
	bin  string
	env  []string
	ID   peer.ID
	TCP  multiaddr.Multiaddr
	QUIC multiaddr.Multiaddr
}

// startKubo starts a Kubo daemon in a fresh repo (test profile: loopback
// only, no bootstrap peers) listening on TCP and QUIC; the test stops it.
func startKubo(t *testing.T) *kubo {
	t.Helper()
	bin, _ := filepath.Abs("../.tools/ipfs")
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("Kubo not built: run `make deps` (scripts/kubo.sh)")
	}
	k := &kubo{bin: bin, env: append(os.Environ(), "IPFS_PATH="+t.TempDir(), "IPFS_TELEMETRY=off")}
	k.run(t, "init", "-e", "--profile", "test")
	k.run(t, "config", "--json", "Addresses.Swarm", `["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"]`)

	ctx, cancel := context.WithCancel(context.Background())
	d := exec.CommandContext(ctx, bin, "daemon")
	d.Env = k.env
	var stderr bytes.Buffer
	d.Stderr = &stderr
	out, err := d.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel() // kills it
		d.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("ipfs daemon stderr:\n%s", stderr.Bytes())
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		found := false
		for sc.Scan() {
			if !found && strings.Contains(sc.Text(), "Daemon is ready") {
				found = true
				ready <- true
			}
		}
		if !found {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("ipfs daemon exited before it was ready")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("ipfs daemon not ready after 15s")
	}

	var id struct {
		ID        string
		Addresses []string
	}
	if err := json.Unmarshal(k.run(t, "id"), &id); err != nil {
		t.Fatalf("ipfs id: %v", err)
	}
	if k.ID, err = peer.Decode(id.ID); err != nil {
		t.Fatalf("ipfs id: %v", err)
	}
	for _, s := range id.Addresses {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			t.Fatalf("ipfs id: %v", err)
		}
		a, _ = peer.SplitAddr(a)
		switch {
		case strings.Contains(s, "/quic-v1") && !strings.Contains(s, "/webtransport"):
			k.QUIC = a
		case strings.Contains(s, "/tcp/") && !strings.Contains(s, "/ws"):
			k.TCP = a
		}
	}
	if k.TCP == nil || k.QUIC == nil {
		t.Fatalf("Kubo listens on %v: want a TCP and a QUIC address", id.Addresses)
	}
	return k
}

// run runs an ipfs command against k's repo and returns its output.
func (k *kubo) run(t *testing.T, args ...string) []byte {
	t.Helper()
	c := exec.Command(k.bin, args...)
	c.Env = k.env
	out, err := c.Output()
	if err != nil {
		t.Fatalf("ipfs %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// findConn returns what h's connection to p over transport, in direction
// dir, negotiated.
func findConn(h *Host, p peer.ID, transport string, dir network.Direction) (ConnSecurity, error) {
	all := h.ConnSecurity(p)
	for _, cs := range all {
		if cs.Transport == transport && cs.Direction == dir {
			return cs, nil
		}
	}
	return ConnSecurity{}, fmt.Errorf("no %s %v connection to %s among %+v", transport, dir, p, all)
}

// disconnect closes h's connections to p and forgets p's addresses, so the
// next dial uses only the address given to it.
func disconnect(t *testing.T, h *Host, p peer.ID) {
	t.Helper()
	n := h.LibP2P().Network()
	n.ClosePeer(p)
	h.LibP2P().Peerstore().ClearAddrs(p)
	eventually(t, 5*time.Second, func() error {
		if c := n.ConnsToPeer(p); len(c) > 0 {
			return fmt.Errorf("%d connections to %s left", len(c), p)
		}
		return nil
	})
}

// TestKuboSecurity: between a fungi host and Kubo 0.43 (Go 1.26), TCP and
// QUIC, dialed either way, all run TLS 1.3 with X25519MLKEM768.
func TestKuboSecurity(t *testing.T) {
	k := startKubo(t)
	h := newHost(t, testConfig())
	ours := map[string]multiaddr.Multiaddr{}
	for _, a := range h.Addrs() {
		if _, err := a.ValueForProtocol(multiaddr.P_QUIC_V1); err == nil {
			ours["quic-v1"] = a
		} else if _, err := a.ValueForProtocol(multiaddr.P_TCP); err == nil {
			ours["tcp"] = a
		}
	}
	theirs := map[string]multiaddr.Multiaddr{"tcp": k.TCP, "quic-v1": k.QUIC}

	for _, transport := range []string{"tcp", "quic-v1"} {
		t.Run("kubo dials "+transport, func(t *testing.T) {
			var cs ConnSecurity
			// retried: Kubo may not have seen the last connection close
			// yet, and does not dial while it thinks it is connected
			eventually(t, 5*time.Second, func() error {
				c := exec.Command(k.bin, "swarm", "connect", ours[transport].String())
				c.Env = k.env
				if out, err := c.CombinedOutput(); err != nil {
					return fmt.Errorf("ipfs swarm connect: %v: %s", err, out)
				}
				var err error
				cs, err = findConn(h, k.ID, transport, network.DirInbound)
				return err
			})
			checkPQ(t, "fungi (listener)", cs, transport)
			disconnect(t, h, k.ID)
		})
		t.Run("fungi dials "+transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := h.Connect(ctx, peer.AddrInfo{ID: k.ID, Addrs: []multiaddr.Multiaddr{theirs[transport]}}); err != nil {
				t.Fatal(err)
			}
			cs, err := findConn(h, k.ID, transport, network.DirOutbound)
			if err != nil {
				t.Fatal(err)
			}
			checkPQ(t, "fungi (dialer)", cs, transport)
			disconnect(t, h, k.ID)
		})
	}
}
