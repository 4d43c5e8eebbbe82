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

// Snapshots written before IPNS records existed (formats 1 and 2) still
// restore, to the state the same commands build today.
func TestSnapshotLegacyFormats(t *testing.T) {
	want := legacyFSM(t)
	for _, v := range []int{1, 2} {
		b, err := os.ReadFile(fmt.Sprintf("testdata/snapshot-v%d.bin", v))
		if err != nil {
			t.Fatal(err)
		}
		if b[len(snapMagic)] != byte(v) {
			t.Fatalf("testdata/snapshot-v%d.bin is version %d", v, b[len(snapMagic)])
		}
		g := NewFSM()
		applyCmds(t, g, 1, PutIPNS("/ipns/gone", 1, time.Unix(2e9, 0), []byte("replaced by the restore")))
		if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		if v == 1 {
			// format 1 had no op counts: they restore as zero
			g.mu.Lock()
			g.ops = want.ops
			g.mu.Unlock()
		}
		if err := diffFSM(want, g, true); err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		if st := g.Stats(); st.IPNSRecords != 0 || st.Manifests != 19 || st.Pins != 19 || st.Paths != 19 {
			t.Fatalf("version %d: stats %+v", v, st)
		}
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
