package node

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipns"
	"github.com/ipfs/boxo/namesys"
	"github.com/ipfs/boxo/path"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/fungistor/fungistor/p2p"
)

// oneNodeContent runs a one-node cluster in-process (raft over a loopback
// libp2p host, no API) and returns its content, for the IPNS store.
func oneNodeContent(t *testing.T) *clusterContent {
	t.Helper()
	repoPath := filepath.Join(t.TempDir(), "repo")
	cfg := DefaultConfig()
	cfg.API = "127.0.0.1:0"
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	if err := Init(repoPath, InitOptions{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	repo, err := OpenRepo(repoPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pc := repo.Config.p2pConfig()
	host, err := p2p.New(ctx, pc, priv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cluster, err := startCluster(ctx, repoPath, repo, host, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !cluster.node().IsLeader() || len(cluster.node().FSM().Members()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the one-node cluster elected no leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return newClusterContent(repo, host, cluster, log)
}

// ipnsRecord signs a record for sk's name pointing at value.
func ipnsRecord(t testing.TB, sk crypto.PrivKey, value string, seq uint64, eol time.Time) []byte {
	t.Helper()
	p, err := path.NewPath(value)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := ipns.NewRecord(sk, p, seq, eol, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ipns.MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newNameKey(t testing.TB) (crypto.PrivKey, ipns.Name) {
	t.Helper()
	sk, pk, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return sk, ipns.NameFromPeer(id)
}

const (
	ipnsTarget1 = "/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	ipnsTarget2 = "/ipfs/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
)

// The store answers boxo's namesys with the keys it asks for (the
// routing key, binary), and keeps the better record by Kubo's rule.
func TestIPNSStore(t *testing.T) {
	cc := oneNodeContent(t)
	vs := cc.ipnsStore()
	ctx := context.Background()
	sk, name := newNameKey(t)
	key := string(name.RoutingKey())
	eol := time.Now().Add(time.Hour)

	if _, err := vs.GetValue(ctx, key); err != routing.ErrNotFound {
		t.Fatalf("get of an unknown name: %v, want routing.ErrNotFound itself", err)
	}
	if _, err := vs.SearchValue(ctx, key); err != routing.ErrNotFound {
		t.Fatalf("search of an unknown name: %v", err)
	}

	r5 := ipnsRecord(t, sk, ipnsTarget1, 5, eol)
	if err := vs.PutValue(ctx, key, r5); err != nil {
		t.Fatal(err)
	}
	// boxo's resolver, as the gateway runs it, finds it
	res, err := namesys.NewIPNSResolver(vs).Resolve(ctx, name.AsPath())
	if err != nil || res.Path.String() != ipnsTarget1 {
		t.Fatalf("namesys resolved %v, %v; want %s", res.Path, err, ipnsTarget1)
	}
	ns, err := namesys.NewNameSystem(vs)
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := path.Join(name.AsPath(), "a", "b")
	if res, err := ns.Resolve(ctx, sub); err != nil || res.Path.String() != ipnsTarget1+"/a/b" {
		t.Fatalf("name system resolved %v, %v", res.Path, err)
	}

	// again: no write; lower: refused; higher: replaces; the text key works
	before := cc.fsm().AppliedIndex()
	if err := vs.PutValue(ctx, key, r5); err != nil || cc.fsm().AppliedIndex() != before {
		t.Fatalf("put of the same record: %v (applied %d -> %d)", err, before, cc.fsm().AppliedIndex())
	}
	if err := vs.PutValue(ctx, key, ipnsRecord(t, sk, ipnsTarget2, 4, eol.Add(time.Hour))); !errors.Is(err, ErrOlderRecord) {
		t.Fatalf("lower sequence: %v", err)
	}
	if err := vs.PutValue(ctx, key, ipnsRecord(t, sk, ipnsTarget2, 5, eol.Add(-time.Minute))); !errors.Is(err, ErrOlderRecord) {
		t.Fatalf("same sequence, earlier EOL: %v", err)
	}
	r6 := ipnsRecord(t, sk, ipnsTarget2, 6, eol)
	if err := vs.PutValue(ctx, "/ipns/"+name.String(), r6); err != nil {
		t.Fatal(err)
	}
	got, err := vs.GetValue(ctx, "/ipns/"+name.Peer().String())
	if err != nil || string(got) != string(r6) {
		t.Fatalf("get after a higher sequence: %v", err)
	}
	ch, err := vs.SearchValue(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if v := <-ch; string(v) != string(r6) {
		t.Fatal("search found another record")
	}
	if _, open := <-ch; open {
		t.Fatal("search channel left open")
	}
	if res, err := ns.Resolve(ctx, name.AsPath()); err != nil || res.Path.String() != ipnsTarget2 {
		t.Fatalf("name system after the update: %v, %v", res.Path, err)
	}

	// bad records change nothing
	otherSK, otherName := newNameKey(t)
	bad := map[string]struct {
		key   string
		value []byte
	}{
		"another key's record":   {key, ipnsRecord(t, otherSK, ipnsTarget1, 99, eol)},
		"expired":                {key, ipnsRecord(t, sk, ipnsTarget1, 99, time.Now().Add(-time.Second))},
		"not a record":           {key, []byte("hello")},
		"empty":                  {key, nil},
		"too big":                {key, make([]byte, ipns.MaxRecordSize+1)},
		"not an IPNS key":        {"/pk/" + string(name.Peer()), r6},
		"a name that is no name": {"/ipns/nonsense", r6},
		"corrupt signature":      {key, corruptSignature(t, ipnsRecord(t, sk, ipnsTarget1, 99, eol))},
	}
	for what, b := range bad {
		if err := vs.PutValue(ctx, b.key, b.value); err == nil {
			t.Errorf("%s: accepted", what)
		} else {
			t.Logf("%s: %v", what, err)
		}
	}
	if got, _ := vs.GetValue(ctx, key); string(got) != string(r6) {
		t.Fatal("a bad put replaced the record")
	}
	if _, err := vs.GetValue(ctx, string(otherName.RoutingKey())); err != routing.ErrNotFound {
		t.Fatalf("another key's record stored: %v", err)
	}
	if st := cc.fsm().Stats(); st.IPNSRecords != 1 || st.Ops["put-ipns"] != 2 {
		t.Fatalf("stats %+v", st)
	}
	// a record that expires in the cluster is no longer served
	sk2, name2 := newNameKey(t)
	short := ipnsRecord(t, sk2, ipnsTarget1, 1, time.Now().Add(1500*time.Millisecond))
	if err := vs.PutValue(ctx, string(name2.RoutingKey()), short); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if _, err := vs.GetValue(ctx, string(name2.RoutingKey())); !errors.Is(err, ipns.ErrExpiredRecord) {
		t.Fatalf("expired record served: %v", err)
	}

	// a node alone in its cluster puts only when allowed to
	sk3, name3 := newNameKey(t)
	if _, err := cc.ipns().put(ctx, name3, ipnsRecord(t, sk3, ipnsTarget1, 1, eol), false); !errors.Is(err, ErrOffline) {
		t.Fatalf("put on a node alone without allow-offline: %v", err)
	}
	if _, err := cc.ipns().put(ctx, name3, ipnsRecord(t, sk3, ipnsTarget1, 1, eol), true); err != nil {
		t.Fatal(err)
	}
}

// corruptSignature flips a bit of the record's V2 signature.
func corruptSignature(t testing.TB, b []byte) []byte {
	t.Helper()
	out := append([]byte{}, b...)
	// the V2 signature is 64 bytes (ed25519), prefixed by its field tag
	// 0x42 (field 8, bytes) and length 0x40
	for i := 0; i+2+64 <= len(out); i++ {
		if out[i] == 0x42 && out[i+1] == 0x40 {
			out[i+2+10] ^= 1
			return out
		}
	}
	t.Fatal("no signature in the record")
	return nil
}

func TestParseIPNSPath(t *testing.T) {
	_, name := newNameKey(t)
	for _, ok := range []string{"/ipns/" + name.String(), "/ipns/" + name.Peer().String()} {
		got, err := parseIPNSPath(ok)
		if err != nil || !got.Equal(name) {
			t.Errorf("%q: %v, %v", ok, got, err)
		}
	}
	for _, bad := range []string{"", "/ipns/", "/ipfs/" + name.String(), name.String(), "/ipns/" + name.String() + "/x", "/ipns/nope", "/pk/" + name.String()} {
		if _, err := parseIPNSPath(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// the routing key is only a ValueStore key
	if _, err := parseIPNSPath(string(name.RoutingKey())); err == nil {
		t.Error("routing key accepted as a path")
	}
	if got, err := parseIPNSKey(string(name.RoutingKey())); err != nil || !got.Equal(name) {
		t.Errorf("routing key: %v, %v", got, err)
	}
}
