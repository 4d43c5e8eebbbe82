package consensus

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// subtree lists directory p (a first line " children=N") and what is
// below it, paths relative to p, without revisions.
func subtree(f *FSM, p string) []string {
	var out []string
	for _, l := range treeDump(f, false) {
		if rest, ok := strings.CutPrefix(l, p+"/"); ok {
			out = append(out, rest)
		}
	}
	return out
}

// A copy is independent of its source: changes on either side, in place
// or by copying the nodes on their path, never show on the other.
func TestTreeCopyIndependent(t *testing.T) {
	f := NewFSM()
	mustTree(t, f, Mkdir("/src/a/b", true), FilesLink("/src/a/b/f", "c1", info(1), false, false),
		FilesLink("/src/a/g", "c2", info(2), false, false), Mkdir("/src/e", false), FilesLink("/src/l", "c3", info(3), false, false))
	orig := subtree(f, "/src")
	mustTree(t, f, FilesCopy("/src", "/dst", false))
	checkTree(t, f)
	if got := subtree(f, "/dst"); !slices.Equal(got, orig) {
		t.Fatalf("copy\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(orig, "\n"))
	}
	if st := f.Stats(); st.Paths != 2*len(orig) || st.Ops["files-copy"] != 1 { // orig: /src's line and what it holds
		t.Fatalf("stats %+v, %d entries copied: %q", st, len(orig), orig)
	}

	// every kind of change on the source side
	mustTree(t, f,
		FilesLink("/src/a/b/f", "x1", info(9), false, true), // replace a link, deep
		FilesLink("/src/a/b/new", "x2", LinkInfo{}, false, false),
		FilesRemove("/src/a/g", false),
		FilesMove("/src/e", "/src/a/b"),
		Mkdir("/src/a/b/e/deeper", false),
		FilesRemove("/src/l", false),
		Link("/src/l/x", "x3"), // the old link: replaces what is in the way
	)
	checkTree(t, f)
	if got := subtree(f, "/dst"); !slices.Equal(got, orig) {
		t.Fatalf("the copy changed with its source:\n%s", strings.Join(got, "\n"))
	}
	src := subtree(f, "/src")

	// and on the copy's side
	mustTree(t, f,
		FilesLink("/dst/a/b/f", "y1", info(8), false, true),
		FilesLink("/dst/a/b/only", "y2", LinkInfo{}, false, false),
		FilesMove("/dst/a", "/dst/moved"),
		FilesRemove("/dst/moved/b", true),
		Mkdir("/dst/e/x", false),
	)
	checkTree(t, f)
	if got := subtree(f, "/src"); !slices.Equal(got, src) {
		t.Fatalf("the source changed with its copy:\n%s", strings.Join(got, "\n"))
	}
	want := "/dst/ /dst/e/ /dst/e/x/ /dst/l=c3 /dst/moved/ /dst/moved/g=c2 "
	if got := short(f); !strings.HasPrefix(got, want) {
		t.Fatalf("tree %s", got)
	}

	// copies of copies, of a link, and a copy removed
	mustTree(t, f, FilesCopy("/dst", "/dst2", false), FilesCopy("/dst2/e", "/src/a/e2", false), FilesCopy("/dst/l", "/l", false))
	mustTree(t, f, Mkdir("/dst2/e/x/y", false), FilesLink("/l", "z", LinkInfo{}, false, true), FilesRemove("/dst", true))
	checkTree(t, f)
	if got := short(f); !strings.Contains(got, " /dst2/e/x/y/ ") || strings.Contains(got, "/src/a/e2/x/y") ||
		!strings.Contains(got, "/l=z") || !strings.Contains(got, "/dst2/l=c3") {
		t.Fatalf("tree %s", got)
	}

	// what the FSM holds is what replaying the same changes without
	// copies gives, and it survives a snapshot
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	checkTree(t, g)
	fsmEqual(t, f, g)
	mustTree(t, g, FilesLink("/dst2/e/x/y/z", "w", LinkInfo{}, false, false))
	checkTree(t, g)
}

// The copy and its parents take the new revision, and everything below
// the copy reads as changed at it; TreeChanges reports the copy's path
// only; the source is left as it was.
func TestTreeCopyRevisions(t *testing.T) {
	f := NewFSM()
	mustTree(t, f, Mkdir("/s/a/b", true), FilesLink("/s/a/f", "c", LinkInfo{}, false, false), Mkdir("/d", false)) // 1, 2, 3
	before := treeDump(f, true)
	mustTree(t, f, FilesCopy("/s", "/d/x/s", true)) // 4
	var revs []string
	for _, l := range treeDump(f, true) {
		if strings.HasPrefix(l, "/d") {
			revs = append(revs, l)
		}
	}
	want := []string{
		"/d/ children=1 rev=4", "/d/x/ children=1 rev=4", "/d/x/s/ children=1 rev=4", "/d/x/s/a/ children=2 rev=4",
		"/d/x/s/a/b/ children=0 rev=4", "/d/x/s/a/f -> c type=0 size=0 tsize=0 rev=4",
	}
	if !slices.Equal(revs, want) {
		t.Fatalf("copy\n%s\nwant\n%s", strings.Join(revs, "\n"), strings.Join(want, "\n"))
	}
	if e, _ := f.TreeStat("/"); e.Rev != 4 {
		t.Fatalf("root at %d", e.Rev)
	}
	if e, _ := f.TreeStat("/d/x/s/a/b"); e.Rev != 4 {
		t.Fatalf("stat of a copied directory: %+v", e)
	}
	for _, l := range before {
		if strings.HasPrefix(l, "/s") && !slices.Contains(treeDump(f, true), l) {
			t.Fatalf("the source changed: %s", l)
		}
	}
	ch, rev, ok := f.TreeChanges(3)
	if !slices.Equal(ch, []TreeChange{{4, "/d/x"}, {4, "/d/x/s"}}) || rev != 4 || !ok {
		t.Fatalf("changes %v %d %v", ch, rev, ok)
	}
	// a refused copy changes nothing
	applyTree(t, f, FilesCopy("/s", "/d/x/s", true))
	if f.TreeRev() != 4 {
		t.Fatal("a refusal took a revision")
	}
	// a change in the copy takes its path's revisions, nothing else's
	mustTree(t, f, FilesLink("/d/x/s/a/b/g", "c", LinkInfo{}, false, false)) // 5
	for p, want := range map[string]uint64{"/": 5, "/d/x/s/a/b": 5, "/d/x/s/a/b/g": 5, "/d/x/s/a/f": 4, "/s": 2, "/s/a/b": 1, "/s/a/f": 2} {
		if e, _ := f.TreeStat(p); e.Rev != want {
			t.Errorf("%s at %d, want %d", p, e.Rev, want)
		}
	}
	checkTree(t, f)
}

// pathRevs checks that no path was ever seen at the same Rev with other
// content, as the node's hash cache assumes: seen maps "path rev" to the
// content below path, without revisions.
type pathRevs map[string]string

func (seen pathRevs) check(tb testing.TB, f *FSM, step string) {
	tb.Helper()
	dump := treeDump(f, false)
	revs := treeDump(f, true)
	for i, l := range revs {
		fields := strings.Fields(l)
		p, rev := strings.TrimSuffix(fields[0], "/"), fields[len(fields)-1]
		var below []string
		for _, m := range dump[i:] {
			if m == dump[i] || strings.HasPrefix(m, p+"/") {
				below = append(below, m)
			}
		}
		k, content := p+" "+rev, strings.Join(below, "\n")
		if old, ok := seen[k]; ok && old != content {
			tb.Fatalf("%s: %s was\n%s\nand is now\n%s", step, k, old, content)
		}
		seen[k] = content
	}
}

// A path at a given Rev always holds the same content, through moves
// and copies of whole subtrees, snapshots and restores.
func TestTreePathRevContent(t *testing.T) {
	// the cases that keeping the moved or copied nodes' revisions as they
	// read would get wrong
	for _, cmds := range [][]Command{
		{Mkdir("/a/a/a", true), FilesMove("/a/a", "/b"), FilesRemove("/a", true), FilesMove("/b", "/a")},
		{Mkdir("/x/s/s", true), FilesCopy("/x", "/y", false), FilesRemove("/y", true), FilesCopy("/x/s", "/y", false)},
		{Mkdir("/a/q", true), Mkdir("/b/q", true), FilesLink("/a/q/f", "c", LinkInfo{}, false, false), FilesMove("/a/q/f", "/b/q/f"),
			FilesMove("/a", "/c"), FilesMove("/b", "/a")},
	} {
		f, seen := NewFSM(), pathRevs{}
		for _, c := range cmds {
			mustTree(t, f, c)
			seen.check(t, f, fmt.Sprintf("%s %s %s", c.Op, c.Key, c.Target))
		}
	}
	n := 3000
	if testing.Short() || raceEnabled {
		n = 800
	}
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 7))
		f, seen := NewFSM(), pathRevs{}
		for i := range n {
			c := randomTreeCommand(r)
			applyCmds(t, f, uint64(i+1), c)
			if r.IntN(200) == 0 { // the state goes on from a snapshot
				if err := f.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
					t.Fatal(err)
				}
			}
			seen.check(t, f, fmt.Sprintf("seed %d, command %d (%s %s %s)", seed, i, c.Op, c.Key, c.Target))
		}
		checkTree(t, f)
		t.Logf("seed %d: %d path revisions seen, ops %v", seed, len(seen), f.Stats().Ops)
	}
}

// Copies while a snapshot is frozen: the snapshot holds the tree as it was
// frozen, the live tree equals one built without snapshots, and copies of
// what the snapshot shares stay independent after Release.
func TestTreeCopyFrozen(t *testing.T) {
	// (the root of an empty tree, at revision 0, is shared like any node)
	e := NewFSM()
	s, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	mustTree(t, e, Mkdir("/a", false))
	s.Release()
	checkTree(t, e)

	f, ref := NewFSM(), NewFSM()
	build := []Command{Mkdir("/a/b", true), FilesLink("/a/b/f", "c1", info(1), false, false), FilesLink("/a/g", "c2", info(2), false, false)}
	for d := range 50 { // a directory big enough to compact its overlay
		build = append(build, FilesLink(fmt.Sprintf("/a/b/n%d", d), "cn", LinkInfo{}, false, false))
	}
	applyCmds(t, f, 1, build...)
	applyCmds(t, ref, 1, build...)
	frozen := treeDump(f, true)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var during []Command
	during = append(during, FilesLink("/a/b/before", "x", LinkInfo{}, false, false), // /a/b copied for the snapshot
		FilesCopy("/a", "/c", false), FilesCopy("/a/b", "/a/b2", false),
		FilesLink("/a/b/f", "x1", LinkInfo{}, false, true), FilesLink("/c/b/f", "x2", LinkInfo{}, false, true),
		FilesRemove("/a/g", false), FilesMove("/c/g", "/g"))
	for d := range 50 {
		during = append(during, FilesRemove(fmt.Sprintf("/c/b/n%d", d), false), FilesLink(fmt.Sprintf("/a/b2/m%d", d), "cm", LinkInfo{}, false, false))
	}
	for i, c := range during {
		oa := applyCmds(t, f, uint64(i+2), c)[0]
		ob := applyCmds(t, ref, uint64(i+2), c)[0]
		if oa.err != nil || ob.err != nil {
			t.Fatalf("%s %s: %v, %v", c.Op, c.Key, oa.err, ob.err)
		}
	}
	checkTree(t, f)
	fsmEqual(t, f, ref)
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	checkTree(t, f)
	fsmEqual(t, f, ref)
	g := NewFSM()
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	if got := treeDump(g, true); !slices.Equal(got, frozen) {
		t.Fatalf("the snapshot holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(frozen, "\n"))
	}
	// after Release, each side still changes alone
	a, c := subtree(f, "/a"), subtree(f, "/c")
	mustTree(t, f, FilesLink("/c/b/after", "y", LinkInfo{}, false, false))
	if !slices.Equal(subtree(f, "/a"), a) {
		t.Fatal("a change in the copy shows in its source")
	}
	mustTree(t, f, FilesLink("/a/b/after", "y", LinkInfo{}, false, false), FilesRemove("/a/b2", true))
	if got := subtree(f, "/c"); len(got) != len(c)+1 {
		t.Fatalf("the copy: %v", got)
	}
	checkTree(t, f)
	h := NewFSM()
	if err := h.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	fsmEqual(t, f, h)
}

// treeCopyScale copies a directory of n links (and a tree of dirs
// directories of n/dirs links) and measures the copy, the heap it keeps,
// and the first changes on each side.
func treeCopyScale(tb testing.TB, n, dirs int) {
	f := NewFSM()
	cmds := make([]Command, 0, 1024)
	idx := uint64(0)
	flush := func() {
		idx++
		applyCmds(tb, f, idx, cmds...)
		cmds = cmds[:0]
	}
	add := func(c Command) {
		if cmds = append(cmds, c); len(cmds) == cap(cmds) {
			flush()
		}
	}
	add(Mkdir("/flat", false))
	for i := range n {
		add(FilesLink(fmt.Sprintf("/flat/IMG_%08d.jpeg", i), testCID(i), LinkInfo{Type: 2, Size: uint64(i), Tsize: uint64(i) + 14}, false, false))
	}
	for d := range dirs {
		add(Mkdir(fmt.Sprintf("/deep/album-%04d", d), true))
		for i := range n / dirs {
			add(FilesLink(fmt.Sprintf("/deep/album-%04d/IMG_%08d.jpeg", d, i), testCID(i), LinkInfo{Type: 2, Size: 1, Tsize: 15}, false, false))
		}
	}
	flush()

	var ms runtime.MemStats
	measure := func(name, src, dst, change string) {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heap0 := ms.HeapAlloc
		start := time.Now()
		if err := applyTree(tb, f, FilesCopy(src, dst, false)); err != nil {
			tb.Fatal(err)
		}
		cp := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heap := int64(ms.HeapAlloc) - int64(heap0)
		start = time.Now()
		mustTree(tb, f, FilesLink(dst+change, "bafkreichange", LinkInfo{}, false, false))
		first := time.Since(start)
		start = time.Now()
		mustTree(tb, f, FilesLink(src+change, "bafkreichange", LinkInfo{}, false, false))
		other := time.Since(start)
		tb.Logf("cp of %s (%d entries): %v, heap kept %d bytes; then a link into the copy %v, into the source %v",
			name, f.Stats().Paths, cp.Round(time.Microsecond), heap, first.Round(time.Microsecond), other.Round(time.Microsecond))
		if b, ok := tb.(*testing.B); ok {
			b.ReportMetric(cp.Seconds()*1e3, name+"-cp-ms")
		}
	}
	measure("flat", "/flat", "/flat2", "/new.jpeg")
	measure("deep", "/deep", "/deep2", fmt.Sprintf("/album-%04d/new.jpeg", dirs/2))
	checkTree(tb, f)
	runtime.KeepAlive(f)
}

func TestTreeCopyScale(t *testing.T) {
	n := 100_000
	if testing.Short() || raceEnabled {
		n = 10_000
	}
	treeCopyScale(t, n, 100)
}

// BenchmarkTreeCopy: copying a directory of 1M links, and a tree of 1,000
// directories of 1,000 links:
//
//	go test -run '^$' -bench TreeCopy -benchtime 1x ./consensus/
func BenchmarkTreeCopy(b *testing.B) {
	for b.Loop() {
		treeCopyScale(b, 1_000_000, 1000)
	}
}
