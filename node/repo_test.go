package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/fungi/fragmenttest"
	"github.com/fungistor/fungistor/store/client"
	"github.com/fungistor/fungistor/store/server"
	"github.com/fungistor/fungistor/store/zdb"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// The ZDB adapters pass the fragment-store suite: embedded and remote.
func TestZDBFragmentStores(t *testing.T) {
	dir := t.TempDir()
	db, err := zdb.Open(zdb.Config{DataDir: filepath.Join(dir, "d"), IndexDir: filepath.Join(dir, "i"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	newNS := func(t *testing.T) *zdb.Namespace {
		n++
		ns, err := db.CreateNamespace("frags" + string(rune('a'+n)))
		if err != nil {
			t.Fatal(err)
		}
		return ns
	}
	t.Run("embedded", func(t *testing.T) {
		fragmenttest.Run(t, func(t *testing.T) fungi.FragmentStore { return kvFragments{newNS(t)} })
	})
	srv, err := server.New(db, server.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	t.Run("remote", func(t *testing.T) {
		fragmenttest.Run(t, func(t *testing.T) fungi.FragmentStore {
			ns := newNS(t)
			c, err := client.New(client.Config{Addr: l.Addr().String(), Namespace: ns.Name()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return kvFragments{c}
		})
	})
}

func newRepo(t *testing.T) *Repo {
	t.Helper()
	path := filepath.Join(t.TempDir(), "repo")
	if err := Init(path, InitOptions{Config: DefaultConfig()}); err != nil {
		t.Fatal(err)
	}
	if err := Init(path, InitOptions{Config: DefaultConfig()}); err == nil {
		t.Fatal("init over an existing repo succeeded")
	}
	r, err := OpenRepo(path, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRepoAddCatGetLs(t *testing.T) {
	r := newRepo(t)
	ctx := context.Background()
	src := t.TempDir()
	data := make([]byte, 5<<20+17)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	os.WriteFile(filepath.Join(src, "big.bin"), data, 0o644)
	os.WriteFile(filepath.Join(src, "empty"), nil, 0o644)
	os.MkdirAll(filepath.Join(src, "déjà vu", "empty dir"), 0o755)
	os.WriteFile(filepath.Join(src, "déjà vu", "ünïcödé.txt"), []byte("hello"), 0o644)
	os.Symlink("big.bin", filepath.Join(src, "link"))

	res, err := r.Add(ctx, src, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := HashPath(ctx, src, HashOptions{})
	if err != nil || want != res.Root {
		t.Fatalf("add = %s, only-hash = %s (%v)", res.Root, want, err)
	}
	root, _ := ParseCID(res.Root)
	ents, err := r.Ls(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name+":"+e.Type)
	}
	if strings.Join(names, ",") != "big.bin:file,déjà vu:directory,empty:file,link:symlink" {
		t.Fatalf("ls = %v", names)
	}
	big, _ := ParseCID(ents[0].CID)
	rd, err := r.Cat(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rd)
	if !bytes.Equal(got, data) {
		t.Fatal("cat differs")
	}
	// byte range in the middle of the third block
	rd.Seek(2<<20+100, io.SeekStart)
	part := make([]byte, 1000)
	io.ReadFull(rd, part)
	if !bytes.Equal(part, data[2<<20+100:2<<20+1100]) {
		t.Fatal("range differs")
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := r.Get(ctx, root, out, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "déjà vu", "ünïcödé.txt")); string(b) != "hello" {
		t.Fatalf("get: %q", b)
	}
	if fi, err := os.Stat(filepath.Join(out, "déjà vu", "empty dir")); err != nil || !fi.IsDir() {
		t.Fatal("empty directory not restored")
	}
	if l, _ := os.Readlink(filepath.Join(out, "link")); l != "big.bin" {
		t.Fatalf("symlink = %q", l)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "big.bin")); !bytes.Equal(b, data) {
		t.Fatal("get: big.bin differs")
	}
	// errors a user can cause
	if err := r.Get(ctx, root, out, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("get into an existing path: %v", err)
	}
	if _, err := r.Cat(ctx, root); !errors.Is(err, ErrIsDirectory) {
		t.Fatalf("cat of a directory: %v", err)
	}
	other, _ := HashPath(ctx, "repo.go", HashOptions{Profile: "kubo-v1-default"})
	oc, _ := ParseCID(other)
	if _, err := r.Cat(ctx, oc); err == nil {
		t.Fatal("cat of unknown content succeeded")
	}
	if _, err := ParseCID("bafy-not-a-cid"); err == nil {
		t.Fatal("bad CID parsed")
	}
}

// A repo survives a restart, and an add after a crash of its fragments'
// durability is all or nothing.
func TestRepoReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "repo")
	if err := Init(path, InitOptions{Config: DefaultConfig(), Secret: strings.Repeat("ab", 32)}); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRepo(path, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRepo(path, quiet); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, bytes.Repeat([]byte("fungi "), 500000), 0o644)
	res, err := r.Add(context.Background(), f, AddOptions{Coding: "4/2"})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	r, err = OpenRepo(path, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, _ := ParseCID(res.Root)
	rd, err := r.Cat(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rd)
	if !bytes.Equal(got, bytes.Repeat([]byte("fungi "), 500000)) {
		t.Fatal("content changed across a restart")
	}
	if res.Manifest.Stored*2 > res.Manifest.Size {
		t.Fatalf("compressible content stored %d bytes for %d", res.Manifest.Stored, res.Manifest.Size)
	}
}

func TestConfigErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "repo")
	if _, err := OpenRepo(path, quiet); !errors.Is(err, ErrNoRepo) {
		t.Fatalf("open without init: %v", err)
	}
	bad := DefaultConfig()
	bad.Coding = "16/0"
	if err := Init(path, InitOptions{Config: bad}); err == nil {
		t.Fatal("init with coding 16/0 succeeded")
	}
	Init(path, InitOptions{Config: DefaultConfig()})
	os.WriteFile(filepath.Join(path, configFile), []byte(`{"profile": "nope"`), 0o644)
	if _, err := OpenRepo(path, quiet); err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("malformed config: %v", err)
	}
	if err := Init(filepath.Join(t.TempDir(), "r2"), InitOptions{Config: DefaultConfig(), Secret: "zz"}); err == nil {
		t.Fatal("bad secret accepted")
	}
}

// In a repo, any N-K fragments of every block may be deleted or corrupted:
// cat still returns the exact bytes; one more and it fails cleanly.
func TestRepoSurvivesFragmentLoss(t *testing.T) {
	r := newRepo(t)
	ctx := context.Background()
	f := filepath.Join(t.TempDir(), "f")
	data := make([]byte, 4<<20+3000) // its last leaf too big to be inline
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	os.WriteFile(f, data, 0o644)
	res, err := r.Add(ctx, f, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	root, _ := ParseCID(res.Root)
	nd, err := decodeRoot(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range nd {
		for j, i := range rng.Perm(m.Coding.N)[:m.Coding.N-m.Coding.K] {
			key := fungi.FragmentKey(l, m.Coding, i)
			if j%2 == 0 {
				r.frags.Del(ctx, key)
			} else {
				v, _ := r.frags.Get(ctx, key)
				v[len(v)/2] ^= 0xff
				r.frags.Set(ctx, key, v)
			}
		}
	}
	rd, err := r.Cat(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rd)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("cat after losing N-K fragments per block: %d bytes, %v", len(got), err)
	}
	st, err := r.Stat(ctx, root, true)
	if err != nil || st.SpareFragments != 0 || len(st.Damaged) != len(nd) || st.Blocks != len(nd) {
		t.Fatalf("stat after damage: %+v, %v", st, err)
	}
	if st, _ := r.Stat(ctx, root, false); st.SpareFragments != 2 { // corrupted ones are present, not valid
		t.Fatalf("stat without verify: spare %d", st.SpareFragments)
	}
	// one more valid fragment of block 2 gone
	codec, _ := fungi.NewCodec(r.Secret(), m.Coding)
	for i := 0; i < m.Coding.N; i++ {
		key := fungi.FragmentKey(nd[2], m.Coding, i)
		if v, err := r.frags.Get(ctx, key); err == nil && codec.Verify(nd[2], i, v) == nil {
			r.frags.Del(ctx, key)
			break
		}
	}
	rd, _ = r.Cat(ctx, root)
	_, err = io.ReadAll(rd)
	if err == nil || !strings.Contains(err.Error(), "content unavailable: 15 of 16 required fragments reachable for block 2 of "+res.Root) {
		t.Fatalf("cat with too few fragments: %v", err)
	}
}

// decodeRoot returns the leaf CIDs of a one-level file manifest.
func decodeRoot(m *fungi.Manifest) ([]cid.Cid, error) {
	blk := m.Nodes[m.Root]
	nd, err := mdag.DecodeProtobufBlock(blk)
	if err != nil {
		return nil, err
	}
	var out []cid.Cid
	for _, l := range nd.Links() {
		out = append(out, l.Cid)
	}
	return out, nil
}
