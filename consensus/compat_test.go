package consensus

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"
	"time"
)

// legacyFSM builds, deterministically, the state that
// testdata/snapshot-v1.bin and testdata/snapshot-v2.bin hold: they were
// written by the builds before put-ipns (snapshot formats 1 and 2), from
// this same sequence of commands.
func legacyFSM(tb testing.TB) *FSM {
	tb.Helper()
	f := NewFSM()
	for i := range 20 {
		c := Batch(
			PutManifest(fmt.Sprintf("root%d", i), uint64(i)<<10, []byte(fmt.Sprintf("manifest %d", i))),
			Pin(fmt.Sprintf("root%d", i)), Link(fmt.Sprintf("/dir/f%d", i), fmt.Sprintf("root%d", i)),
			PutMember(Member{ID: fmt.Sprintf("peer%d", i%3), Addrs: []string{"/ip4/127.0.0.1/tcp/4001"},
				Capacity: 1 << 30, Joined: time.Unix(1700000000+int64(i), 0), Domain: "eu"}),
		)
		c.RequestID = RequestID{byte(i + 1), 0xfe}
		applyCmds(tb, f, uint64(i+1), c)
	}
	add := AddUsage("peer1", 77)
	add.RequestID = RequestID{0xaa}
	applyCmds(tb, f, 21, add, SetVoter("peer2", true), Unpin("root3"), Unlink("/dir/f4"), DeleteManifest("root5"))
	return f
}

// legacyFSMv3 builds the state of testdata/snapshot-v3.bin, written by the
// last build before the tree commands (snapshot format 3: IPNS records,
// the tree a flat path -> CID map).
func legacyFSMv3(tb testing.TB) *FSM {
	tb.Helper()
	f := legacyFSM(tb)
	applyCmds(tb, f, 22, PutIPNS("/ipns/\x00\x24legacy", 5, time.Date(2031, 2, 3, 4, 5, 6, 7, time.UTC), []byte("ipns record")),
		Link("/dir/sub/g", "rootg"))
	return f
}

// legacyFSMv4 builds the state of testdata/snapshot-v4.bin, written by
// the last build before the repair commands (snapshot format 4: the tree
// as a tree, no repair epochs, no damages, manifests without an epoch).
func legacyFSMv4(tb testing.TB) *FSM {
	tb.Helper()
	f := legacyFSMv3(tb)
	applyCmds(tb, f, 23, Mkdir("/t/u", true), FilesLink("/t/u/f", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", LinkInfo{Type: 2, Size: 5, Tsize: 9}, false, false),
		FilesCopy("/t", "/t2", false), FilesMove("/dir/f7", "/t/f7"), PutManifest("root3", 3<<10, []byte("manifest 3 again")))
	return f
}

// A format 4 snapshot restores to the state the same commands build
// today, tree revisions included: no epochs, no damages, every manifest
// of epoch 0. Epochs begun after it apply to all of those manifests, and
// the state is written back as format 5.
func TestSnapshotV4(t *testing.T) {
	want := legacyFSMv4(t)
	b, err := os.ReadFile("testdata/snapshot-v4.bin")
	if err != nil {
		t.Fatal(err)
	}
	if b[len(snapMagic)] != 4 {
		t.Fatalf("testdata/snapshot-v4.bin is version %d", b[len(snapMagic)])
	}
	g := NewFSM()
	applyCmds(t, g, 1, BeginRepair(ReasonManual, []string{"gone"}, nil, time.Unix(1, 0)),
		ReportDamage([]Damage{{Holder: "gone", Key: []byte{1}, Block: "b"}}))
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	if err := diffState(want, g, true, true); err != nil {
		t.Fatal(err)
	}
	if st := g.Stats(); st.Epochs != 0 || st.Damages != 0 || st.Manifests != 19 || len(g.Epochs()) != 0 || g.DamageCount() != 0 {
		t.Fatalf("stats %+v", st)
	}
	if m, ok := g.Manifest("root3"); !ok || m.Epoch != 0 || string(m.Data) != "manifest 3 again" {
		t.Fatalf("root3 = %+v, %v", m, ok)
	}
	checkTree(t, g)

	for _, h := range []*FSM{want, g} {
		applyCmds(t, h, 24, BeginRepair(ReasonLost, []string{"peer0"}, []Candidate{{ID: "peer1", Domain: "eu", Free: 1 << 30}}, time.Unix(1800000000, 0)),
			PutManifest("root4", 4, []byte("after")), EndRepair(1),
			ReportDamage([]Damage{{Holder: "peer2", Key: []byte("k"), Block: "root2", Coding: "16/20", Index: 3}}))
	}
	again := snapshotBytes(t, g)
	if again[len(snapMagic)] != snapVersion {
		t.Fatalf("written as version %d", again[len(snapMagic)])
	}
	h := NewFSM()
	if err := h.Restore(io.NopCloser(bytes.NewReader(again))); err != nil {
		t.Fatal(err)
	}
	fsmEqual(t, want, h)
	if m, _ := h.Manifest("root4"); m.Epoch != 1 {
		t.Fatalf("root4 of epoch %d", m.Epoch)
	}
	if m, _ := h.Manifest("root6"); m.Epoch != 0 {
		t.Fatalf("root6 of epoch %d", m.Epoch)
	}
	if es := h.Epochs(); len(es) != 1 || !es[0].Done || es[0].Lost[0] != "peer0" || h.DamageCount() != 1 {
		t.Fatalf("epochs %+v, %d damages", es, h.DamageCount())
	}
}

// Snapshots written by earlier builds (formats 1 to 3) still restore, to
// the state the same commands build today. Their flat path -> CID map
// becomes links with the parent directories created; the tree revisions
// cannot be recovered (the restored tree is at revision "number of
// links", every entry at most that), so they are not compared.
func TestSnapshotLegacyFormats(t *testing.T) {
	for _, v := range []int{1, 2, 3} {
		want, paths, links := legacyFSM(t), 20, 19 // 19 links and /dir
		if v == 3 {
			want, paths, links = legacyFSMv3(t), 22, 20 // and /dir/sub, /dir/sub/g
		}
		b, err := os.ReadFile(fmt.Sprintf("testdata/snapshot-v%d.bin", v))
		if err != nil {
			t.Fatal(err)
		}
		if b[len(snapMagic)] != byte(v) {
			t.Fatalf("testdata/snapshot-v%d.bin is version %d", v, b[len(snapMagic)])
		}
		g := NewFSM()
		applyCmds(t, g, 1, PutIPNS("/ipns/gone", 1, time.Unix(2e9, 0), []byte("replaced by the restore")), Mkdir("/gone", false))
		if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		if v == 1 {
			// format 1 had no op counts: they restore as zero
			g.mu.Lock()
			g.ops = want.ops
			g.mu.Unlock()
		}
		if err := diffState(want, g, true, false); err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		ipns := 0
		if v == 3 {
			ipns = 1
		}
		if st := g.Stats(); st.IPNSRecords != ipns || st.Manifests != 19 || st.Pins != 19 || st.Paths != paths {
			t.Fatalf("version %d: stats %+v", v, st)
		}
		if e, ok := g.TreeStat("/dir"); !ok || !e.Dir || e.Rev != g.TreeRev() || g.TreeRev() != uint64(links) {
			t.Fatalf("version %d: /dir = %+v, %v; tree revision %d", v, e, ok, g.TreeRev())
		}
		if c, ok := g.Path("/dir/f7"); !ok || c != "root7" {
			t.Fatalf("version %d: /dir/f7 = %q, %v", v, c, ok)
		}
		if _, ok := g.TreeStat("/gone"); ok {
			t.Fatalf("version %d: the restore kept a directory", v)
		}
		checkTree(t, g)
		// and it is written back in today's format, which reads the same
		again := snapshotBytes(t, g)
		if again[len(snapMagic)] != snapVersion {
			t.Fatalf("written as version %d", again[len(snapMagic)])
		}
		h := NewFSM()
		if err := h.Restore(io.NopCloser(bytes.NewReader(again))); err != nil {
			t.Fatal(err)
		}
		fsmEqual(t, g, h)
	}
}

// Entries written before the tree commands (versions 1 and 2) and before
// the repair commands (version 3), by the builds that wrote
// testdata/entry-v*.bin, still decode and are written again byte for
// byte.
func TestDecodeEntryLegacy(t *testing.T) {
	want := map[int][]Command{
		1: {PutManifest("r", 1, []byte("x")), Pin("r"), Batch(Link("/a", "r"), AddUsage("p", -1))},
		2: {PutIPNS("/ipns/k", 3, time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC), []byte("rec")), Link("/a", "r"),
			Batch(Pin("p"), PutIPNS("/ipns/j", 1, time.Unix(1900000000, 0).UTC(), []byte("r2")))},
		3: {Mkdir("/a", true), FilesLink("/a/f", "c", LinkInfo{Type: 2, Size: 1, Tsize: 2}, false, true),
			FilesMove("/a/f", "/a/g"), FilesRemove("/a/g", false), FilesCopy("/a", "/b", true), Batch(Pin("p"), Link("/c", "r"))},
	}
	for v, cmdsWant := range want {
		b, err := os.ReadFile(fmt.Sprintf("testdata/entry-v%d.bin", v))
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != byte(v) {
			t.Fatalf("testdata/entry-v%d.bin is version %d", v, b[0])
		}
		cmds, err := decodeEntry(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(cmds) != len(cmdsWant) {
			t.Fatalf("version %d: %d commands", v, len(cmds))
		}
		for i := range cmdsWant {
			if !commandsEqual(cmds[i], cmdsWant[i]) {
				t.Errorf("version %d: command %d = %+v, want %+v", v, i, cmds[i], cmdsWant[i])
			}
		}
		again, err := encodeEntry(cmds)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("version %d: re-encoded: %x, %v; want %x", v, again, err, b)
		}
	}
}
