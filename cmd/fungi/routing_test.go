package main

// Signed IPNS records in the cluster's metadata, through real daemons:
// `fungi routing put|get` as Kubo's `ipfs routing put|get`.

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipns"
	"github.com/ipfs/boxo/path"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ipnsKey is a fresh ed25519 IPNS key and its name.
type ipnsKey struct {
	sk   crypto.PrivKey
	name ipns.Name
}

func newIPNSKey(t testing.TB) ipnsKey {
	t.Helper()
	sk, pk, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return ipnsKey{sk: sk, name: ipns.NameFromPeer(id)}
}

// key is the name as the CLI takes it.
func (k ipnsKey) key() string { return "/ipns/" + k.name.String() }

// record signs a record pointing at /ipfs/<cid> and writes it to a file.
func (k ipnsKey) record(t testing.TB, cid string, seq uint64, eol time.Time) (string, []byte) {
	t.Helper()
	p, err := path.NewPath("/ipfs/" + cid)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := ipns.NewRecord(k.sk, p, seq, eol, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ipns.MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	return writeRecord(t, b), b
}

func writeRecord(t testing.TB, b []byte) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "record-*.ipns")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// routingGet is `fungi routing get` on node i; failing is fatal.
func (c *cluster) routingGet(i int, key string) []byte {
	c.t.Helper()
	r := c.fungiOn(i, nil, "routing", "get", key)
	if r.code != 0 {
		c.t.Fatalf("node %d: fungi routing get %s: exit %d: %s", i, key, r.code, r.stderr)
	}
	return []byte(r.stdout)
}

// putIPNSOps is how many put-ipns writes node i has applied.
func (c *cluster) putIPNSOps(i int) uint64 {
	c.t.Helper()
	st, err := c.status(i)
	if err != nil {
		c.t.Fatal(err)
	}
	return st.Metadata.Ops["put-ipns"]
}

const (
	ipnsCID1 = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
	ipnsCID2 = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
)

// On a three-node cluster: a record put on one node is read back byte
// for byte on the others; a higher sequence replaces it, a lower one is
// refused; bad records fail with one line and store nothing; the daemons
// keep serving. With Kubo built, a record Kubo published goes through.
func TestRoutingPutGet(t *testing.T) {
	c := upCluster(t, 3, nil)
	k := newIPNSKey(t)
	eol := time.Now().Add(time.Hour)
	peerID := k.name.Peer().String()

	f5, r5 := k.record(t, ipnsCID1, 5, eol)
	if out := c.must(1, "routing", "put", k.key(), f5); out != peerID {
		t.Fatalf("routing put printed %q, want the peer ID %s", out, peerID)
	}
	for _, i := range []int{2, 3} {
		if got := c.routingGet(i, k.key()); !bytes.Equal(got, r5) {
			t.Fatalf("node %d: routing get = %d bytes, differ from the %d put on node 1", i, len(got), len(r5))
		}
	}
	// the peer ID spelling of the name reads the same record
	if got := c.routingGet(2, "/ipns/"+peerID); !bytes.Equal(got, r5) {
		t.Fatal("routing get by peer ID differs")
	}

	// a higher sequence, from stdin on another node, replaces it everywhere
	_, r6 := k.record(t, ipnsCID2, 6, eol.Add(-time.Minute))
	if r := c.fungiStdin(2, r6, "routing", "put", k.key(), "-"); r.code != 0 || strings.TrimSpace(r.stdout) != peerID {
		t.Fatalf("put from stdin: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	for _, i := range []int{1, 3} {
		if got := c.routingGet(i, k.key()); !bytes.Equal(got, r6) {
			t.Fatalf("node %d: the higher sequence did not replace the record", i)
		}
	}
	// putting the same record again is fine and writes nothing
	ops := c.putIPNSOps(3)
	c.must(3, "routing", "put", k.key(), writeRecord(t, r6))
	if got := c.putIPNSOps(3); got != ops || ops != 2 {
		t.Fatalf("put-ipns applied %d times, then %d; want 2 and 2", ops, got)
	}

	// bad input: one line, non-zero exit, nothing stored
	other := newIPNSKey(t)
	fOther, _ := other.record(t, ipnsCID1, 9, eol)
	fLower, _ := k.record(t, ipnsCID1, 4, eol.Add(time.Hour))
	fTie, _ := k.record(t, ipnsCID1, 6, eol.Add(-time.Minute)) // same sequence and EOL, other bytes
	fExpired, _ := k.record(t, ipnsCID1, 9, time.Now().Add(-time.Minute))
	_, good := k.record(t, ipnsCID1, 9, eol)
	corrupt := append([]byte{}, good...)
	flipSignatureBit(t, corrupt)
	fCorrupt := writeRecord(t, corrupt)
	fGarbage := writeRecord(t, []byte("not an IPNS record"))
	fHuge := writeRecord(t, make([]byte, 11<<10))
	bad := []struct {
		what string
		args []string
		want string
	}{
		{"lower sequence", []string{"put", k.key(), fLower}, "can't replace a newer value with an older value"},
		{"same sequence and EOL", []string{"put", k.key(), fTie}, "can't replace a newer value with an older value"},
		{"another key's record", []string{"put", k.key(), fOther}, "signature verification failed"},
		{"corrupt signature", []string{"put", k.key(), fCorrupt}, "signature verification failed"},
		{"expired", []string{"put", k.key(), fExpired}, "record is expired"},
		{"not a record", []string{"put", k.key(), fGarbage}, "invalid IPNS record"},
		{"too big", []string{"put", k.key(), fHuge}, "over the IPNS limit"},
		{"empty", []string{"put", k.key(), writeRecord(t, nil)}, "the record is empty"},
		{"not /ipns/", []string{"put", "/ipfs/" + ipnsCID1, f5}, "invalid key"},
		{"/pk/ key", []string{"put", "/pk/" + peerID, f5}, "invalid key"},
		{"bare name", []string{"put", peerID, f5}, "invalid key"},
		{"bad name", []string{"put", "/ipns/not-a-name", f5}, "invalid IPNS name"},
		{"no such file", []string{"put", k.key(), filepath.Join(t.TempDir(), "nope")}, "no such file"},
		{"no key", []string{"put"}, "put takes a key"},
		{"get: not /ipns/", []string{"get", "/ipfs/" + ipnsCID1}, "invalid key"},
		{"get: bad name", []string{"get", "/ipns/x"}, "invalid IPNS name"},
		{"get: unknown name", []string{"get", other.key()}, "routing: not found"},
		{"unknown command", []string{"find", k.key()}, "unknown routing command"},
	}
	for n, b := range bad {
		r := c.fungiOn(1+n%3, nil, append([]string{"routing"}, b.args...)...)
		oneLineError(t, b.what, r, b.want)
	}
	for i := 1; i <= 3; i++ {
		if got := c.routingGet(i, k.key()); !bytes.Equal(got, r6) {
			t.Fatalf("node %d: a refused put changed the record", i)
		}
		if ops := c.putIPNSOps(i); ops != 2 {
			t.Fatalf("node %d: %d put-ipns applied, want 2", i, ops)
		}
	}

	t.Run("kubo", func(t *testing.T) {
		name, rec := kuboPublish(t, kuboBin(t))
		key := "/ipns/" + name
		n, err := ipns.NameFromString(name)
		if err != nil {
			t.Fatal(err)
		}
		if out := c.must(3, "routing", "put", key, writeRecord(t, rec)); out != n.Peer().String() {
			t.Fatalf("put of Kubo's record printed %q, want %s", out, n.Peer())
		}
		if got := c.routingGet(1, key); !bytes.Equal(got, rec) {
			t.Fatal("routing get of Kubo's record differs from what Kubo wrote")
		}
		t.Logf("Kubo's record for %s (%d bytes) went through unchanged", key, len(rec))
	})
}

// flipSignatureBit alters the record's V2 signature: protobuf field 8
// (tag 0x42), 64 bytes for ed25519.
func flipSignatureBit(t testing.TB, b []byte) {
	t.Helper()
	for i := 0; i+2+64 <= len(b); i++ {
		if b[i] == 0x42 && b[i+1] == 0x40 {
			b[i+2+20] ^= 0x10
			return
		}
	}
	t.Fatal("no V2 signature found in the record")
}

// kuboPublish runs a Kubo daemon on a fresh repo (--profile=test, no
// network), publishes an IPNS record with a new key (`ipfs name publish
// --allow-offline --key=...`) and returns the name and `ipfs routing get`'s
// bytes for it.
func kuboPublish(t *testing.T, bin string) (string, []byte) {
	t.Helper()
	repo := t.TempDir()
	env := append(os.Environ(), "IPFS_PATH="+repo)
	ipfs := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("ipfs %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.Bytes()
	}
	ipfs("init", "-e", "--profile=test")
	ctx, cancel := context.WithCancel(context.Background())
	d := exec.CommandContext(ctx, bin, "daemon")
	d.Env = env
	dout := &kuboOutput{}
	d.Stdout, d.Stderr = dout, dout
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(dout.String(), "Daemon is ready") {
		if time.Now().After(deadline) {
			t.Fatalf("Kubo daemon not ready:\n%s", dout.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	keyID := strings.TrimSpace(string(ipfs("key", "gen", "--type=ed25519", "fungi-test")))
	file := writeRecord(t, []byte("published through Kubo\n"))
	c := strings.TrimSpace(string(ipfs("add", "-Q", "--cid-version=1", file)))
	ipfs("name", "publish", "--allow-offline", "--key=fungi-test", "/ipfs/"+c)
	rec := ipfs("routing", "get", "/ipns/"+keyID)
	if len(rec) == 0 {
		t.Fatal("Kubo's routing get wrote nothing")
	}
	return keyID, rec
}

// kuboOutput collects a Kubo daemon's output while the test reads it.
type kuboOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *kuboOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *kuboOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// A node alone in its cluster keeps a record only with --allow-offline;
// with no daemon, routing commands say a daemon is needed.
func TestRoutingOffline(t *testing.T) {
	c := upCluster(t, 1, nil)
	k := newIPNSKey(t)
	f, rec := k.record(t, ipnsCID1, 1, time.Now().Add(time.Hour))
	oneLineError(t, "put alone without --allow-offline", c.fungiOn(1, nil, "routing", "put", k.key(), f), "--allow-offline")
	oneLineError(t, "get after the refused put", c.fungiOn(1, nil, "routing", "get", k.key()), "routing: not found")
	if out := c.must(1, "routing", "put", "--allow-offline", k.key(), f); out != k.name.Peer().String() {
		t.Fatalf("put --allow-offline printed %q", out)
	}
	if got := c.routingGet(1, k.key()); !bytes.Equal(got, rec) {
		t.Fatal("routing get differs from the record put")
	}

	// no daemon on the repo: one line saying one is needed
	repo := filepath.Join(t.TempDir(), "repo")
	if r := fungiIn(t, repo, nil, nil, "init", "--listen", "/ip4/127.0.0.1/tcp/0"); r.code != 0 {
		t.Fatalf("fungi init: exit %d: %s", r.code, r.stderr)
	}
	for _, args := range [][]string{
		{"routing", "put", "--allow-offline", k.key(), f},
		{"routing", "get", k.key()},
	} {
		r := fungiIn(t, repo, nil, nil, args...)
		oneLineError(t, strings.Join(args[:2], " ")+" without a daemon", r, "needs a running daemon")
	}
}
