package node

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/fungistor/fungistor/consensus"
	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/p2p"
)

// The fragment store of a running daemon: any peer may read, only members
// of the pool may write; a peer becomes one by proving the cluster secret.
func TestDaemonFragmentStoreMembersOnly(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "a")
	cfg := DefaultConfig()
	cfg.API = "127.0.0.1:0"
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	if err := Init(repo, InitOptions{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() { done <- RunDaemon(ctx, repo, DaemonOptions{Ready: func(a string) { ready <- a }}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var api string
	select {
	case api = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	d := NewAPIClient(api)
	var id *ID
	var err error
	for range 100 { // until the one-node cluster has elected itself
		if st, err := d.ClusterStatus(ctx); err == nil && st.Role == "leader" && st.Metadata.Members == 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if id, err = d.ID(ctx); err != nil {
		t.Fatal(err)
	}
	target, err := peer.AddrInfoFromString(id.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}

	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pc := p2p.DefaultConfig()
	pc.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	stranger, err := p2p.New(ctx, pc, priv)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if err := stranger.Connect(ctx, *target); err != nil {
		t.Fatal(err)
	}
	fc := stranger.FragmentPeer(target.ID)
	key := []byte("some-fragment-key")
	if err := fc.PutFragment(ctx, key, []byte("forged")); !errors.Is(err, p2p.ErrNotMember) {
		t.Fatalf("a stranger's put: %v, want ErrNotMember", err)
	}
	if err := fc.DeleteFragment(ctx, key); !errors.Is(err, p2p.ErrNotMember) {
		t.Fatalf("a stranger's delete: %v, want ErrNotMember", err)
	}
	if ok, err := fc.HasFragment(ctx, key); ok || !errors.Is(err, p2p.ErrNotMember) {
		t.Fatalf("a stranger's has: %v %v, want ErrNotMember (reads are members-only too)", ok, err)
	}

	// a wrong secret does not admit it; the right one does, and the gate
	// follows the replicated membership
	wrong := make([]byte, 32)
	rand.Read(wrong)
	if err := consensus.Join(ctx, stranger.LibP2P(), *target, wrong); !errors.Is(err, consensus.ErrJoinRefused) {
		t.Fatalf("join with a wrong secret: %v", err)
	}
	if err := fc.PutFragment(ctx, key, []byte("forged")); !errors.Is(err, p2p.ErrNotMember) {
		t.Fatalf("put after a refused join: %v", err)
	}
	sb, _ := os.ReadFile(filepath.Join(repo, secretFile)) // as an operator copies it
	r, err := parseOrMakeSecret(string(sb))
	if err != nil {
		t.Fatal(err)
	}
	if err := consensus.Join(ctx, stranger.LibP2P(), *target, r); err != nil {
		t.Fatalf("join with the secret: %v", err)
	}
	if err := fc.PutFragment(ctx, key, []byte("now a member")); err != nil {
		t.Fatalf("a member's put: %v", err)
	}
	got, err := fc.GetFragment(ctx, key)
	if err != nil || string(got) != "now a member" {
		t.Fatalf("get: %q %v", got, err)
	}
	if _, err := fc.GetFragment(ctx, []byte("absent")); !errors.Is(err, fungi.ErrFragmentNotFound) {
		t.Fatalf("get of an absent key: %v", err)
	}
}
