package consensus

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// treeDump lists every entry of f's tree in pre-order, children sorted by
// name, one line each, through the public API.
func treeDump(f *FSM, withRev bool) []string {
	var out []string
	line := func(p string, e TreeEntry) string {
		var s string
		if e.Dir {
			s = fmt.Sprintf("%s/ children=%d", strings.TrimSuffix(p, "/"), e.Children)
		} else {
			s = fmt.Sprintf("%s -> %s type=%d size=%d tsize=%d", p, e.Target, e.Type, e.Size, e.Tsize)
		}
		if withRev {
			s += fmt.Sprintf(" rev=%d", e.Rev)
		}
		return s
	}
	var walk func(p string)
	walk = func(p string) {
		list, err := f.TreeList(p)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", p, err))
			return
		}
		for _, e := range list {
			cp := strings.TrimSuffix(p, "/") + "/" + e.Name
			out = append(out, line(cp, e))
			if e.Dir {
				walk(cp)
			}
		}
	}
	root, _ := f.TreeStat("/")
	out = append(out, line("/", root))
	walk("/")
	return out
}

// short is a one-line picture of f's tree: directories end in "/", links
// show their target.
func short(f *FSM) string {
	var parts []string
	for p, target := range f.Tree() {
		parts = append(parts, p+"="+target)
	}
	var dirs func(p string)
	dirs = func(p string) {
		list, _ := f.TreeList(p)
		for _, e := range list {
			if e.Dir {
				cp := strings.TrimSuffix(p, "/") + "/" + e.Name
				parts = append(parts, cp+"/")
				dirs(cp)
			}
		}
	}
	dirs("/")
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// checkTree checks the tree's invariants: revisions grow towards the root
// (the root's is the tree's), a directory was placed at or before its
// revision, entries counts them all, an overlay outside a snapshot only
// after a copy and with the right count, names are sane.
func checkTree(tb testing.TB, f *FSM) {
	tb.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.tree
	if t.root.rev != t.rev || t.root.dir == nil || t.root.dir.at != 0 {
		tb.Fatalf("root at revision %d (placed at %d), tree at %d", t.root.rev, t.root.dir.at, t.rev)
	}
	n := 0
	var walk func(p string, d *tnode)
	walk = func(p string, d *tnode) {
		if d.dir.over != nil {
			if !t.frozen && t.sealed == 0 {
				tb.Fatalf("%s: an overlay outside a snapshot, without a copy", p)
			}
			count := 0
			d.dir.each(func(string, *tnode) { count++ })
			if count != d.dir.n {
				tb.Fatalf("%s: %d children, counted %d", p, d.dir.n, count)
			}
		}
		if d.dir.at > d.rev {
			tb.Fatalf("%s: at revision %d, placed at %d", p, d.rev, d.dir.at)
		}
		d.dir.each(func(name string, k *tnode) {
			n++
			if name == "" || strings.Contains(name, "/") || k.rev > d.rev {
				tb.Fatalf("%s: child %q at revision %d, parent at %d", p, name, k.rev, d.rev)
			}
			if k.dir != nil {
				walk(p+name+"/", k)
			} else if len(k.link) < 2 {
				tb.Fatalf("%s%s: link %q", p, name, k.link)
			}
		})
	}
	walk("/", t.root)
	if n != t.entries {
		tb.Fatalf("%d entries, counted %d", n, t.entries)
	}
}

// applyTree applies one command at the next index and returns its error.
func applyTree(tb testing.TB, f *FSM, c Command) error {
	tb.Helper()
	return applyCmds(tb, f, f.AppliedIndex()+1, c)[0].err
}

func mustTree(tb testing.TB, f *FSM, cmds ...Command) {
	tb.Helper()
	for _, c := range cmds {
		if err := applyTree(tb, f, c); err != nil {
			tb.Fatalf("%s %s: %v", c.Op, c.Key, err)
		}
	}
}

func info(n uint64) LinkInfo { return LinkInfo{Type: 2, Size: n, Tsize: n + 10} }

// Every rule of the tree commands, each from the same starting tree.
func TestTreeCommands(t *testing.T) {
	setup := []Command{
		Mkdir("/a/b", true), FilesLink("/a/b/f", "c1", LinkInfo{}, false, false),
		Mkdir("/a/e", false), FilesLink("/a/l", "c4", LinkInfo{}, false, false),
		FilesLink("/l", "c2", LinkInfo{}, false, false),
	}
	const start = "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /l=c2"
	tests := []struct {
		name string
		cmd  Command
		kind error  // the refusal's sentinel; nil: applied
		msg  string // the refusal's message
		want string // the tree after it was applied ("": unchanged, and no new revision)
	}{
		// mkdir
		{"mkdir", Mkdir("/n", false), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /l=c2 /n/"},
		{"mkdir an existing directory", Mkdir("/a", false), ErrTreeExists, "/a: already exists", ""},
		{"mkdir -p an existing directory", Mkdir("/a/b", true), nil, "", ""},
		{"mkdir a link", Mkdir("/l", false), ErrTreeExists, "/l: already exists (not a directory)", ""},
		{"mkdir -p a link", Mkdir("/a/l", true), ErrTreeExists, "/a/l: already exists (not a directory)", ""},
		{"mkdir without its parent", Mkdir("/x/y", false), ErrTreeNotFound, "/x/y: parent /x does not exist (use -p)", ""},
		{"mkdir without its parents", Mkdir("/a/x/y/z", false), ErrTreeNotFound, "/a/x/y/z: parent /a/x/y does not exist (use -p)", ""},
		{"mkdir -p makes the parents", Mkdir("/a/x/y", true), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /a/x/ /a/x/y/ /l=c2"},
		{"mkdir below a link", Mkdir("/l/d", true), ErrTreeNotDir, "/l/d: parent /l is not a directory", ""},
		{"mkdir -p far below a link", Mkdir("/a/b/f/g/h", true), ErrTreeNotDir, "/a/b/f/g/h: parent /a/b/f is not a directory", ""},
		{"mkdir /", Mkdir("/", false), ErrTreeExists, "/: already exists", ""},
		{"mkdir -p /", Mkdir("/", true), nil, "", ""},
		// files-link
		{"link", FilesLink("/a/g", "c3", info(7), false, false), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/g=c3 /a/l=c4 /l=c2"},
		{"link an existing link", FilesLink("/l", "c3", LinkInfo{}, false, false), ErrTreeExists, "/l: already exists", ""},
		{"link -p an existing link", FilesLink("/l", "c3", LinkInfo{}, true, false), ErrTreeExists, "/l: already exists", ""},
		{"replace a link", FilesLink("/l", "c3", info(1), false, true), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /l=c3"},
		{"replace a link with itself", FilesLink("/l", "c2", LinkInfo{}, false, true), nil, "", ""},
		{"replace a directory", FilesLink("/a/e", "c3", LinkInfo{}, true, true), ErrTreeExists, "/a/e: already exists (a directory)", ""},
		{"link /", FilesLink("/", "c3", LinkInfo{}, true, true), ErrTreeExists, "/: already exists (a directory)", ""},
		{"link without its parent", FilesLink("/x/f", "c3", LinkInfo{}, false, false), ErrTreeNotFound, "/x/f: parent /x does not exist (use -p)", ""},
		{"link -p makes the parents", FilesLink("/x/y/f", "c3", LinkInfo{}, true, false), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /l=c2 /x/ /x/y/ /x/y/f=c3"},
		{"link below a link", FilesLink("/l/f", "c3", LinkInfo{}, true, true), ErrTreeNotDir, "/l/f: parent /l is not a directory", ""},
		// files-move
		{"rename a link", FilesMove("/l", "/m"), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /m=c2"},
		{"move a link into a directory", FilesMove("/a/b/f", "/a/e"), nil, "", "/a/ /a/b/ /a/e/ /a/e/f=c1 /a/l=c4 /l=c2"},
		{"move a directory", FilesMove("/a/b", "/c"), nil, "", "/a/ /a/e/ /a/l=c4 /c/ /c/f=c1 /l=c2"},
		{"move a directory into a directory", FilesMove("/a/b", "/a/e"), nil, "", "/a/ /a/e/ /a/e/b/ /a/e/b/f=c1 /a/l=c4 /l=c2"},
		{"move into /", FilesMove("/a/b", "/"), nil, "", "/a/ /a/e/ /a/l=c4 /b/ /b/f=c1 /l=c2"},
		{"move a missing entry", FilesMove("/x", "/y"), ErrTreeNotFound, "mv /x /y: /x does not exist", ""},
		{"move from below a link", FilesMove("/l/x", "/y"), ErrTreeNotFound, "mv /l/x /y: /l/x does not exist", ""},
		{"move the root", FilesMove("/", "/y"), ErrTreeInvalid, "mv / /y: cannot move the root", ""},
		{"move a link onto itself", FilesMove("/l", "/l"), ErrTreeInvalid, "mv /l /l: source and destination are the same", ""},
		{"move into its own directory", FilesMove("/a/b", "/a"), ErrTreeInvalid, "mv /a/b /a: source and destination are the same", ""},
		{"move a directory onto itself", FilesMove("/a", "/a"), ErrTreeInvalid, "mv /a /a: cannot move a directory into itself", ""},
		{"move a directory into itself", FilesMove("/a", "/a/b"), ErrTreeInvalid, "mv /a /a/b: cannot move a directory into itself", ""},
		{"move a directory below itself", FilesMove("/a", "/a/x"), ErrTreeInvalid, "mv /a /a/x: cannot move a directory into itself", ""},
		{"move onto a link", FilesMove("/a/b/f", "/l"), ErrTreeExists, "mv /a/b/f /l: /l already exists", ""},
		{"move into a directory that has the name", FilesMove("/l", "/a"), ErrTreeExists, "mv /l /a: /a/l already exists", ""},
		{"move without the destination's parent", FilesMove("/l", "/x/y"), ErrTreeNotFound, "mv /l /x/y: parent /x does not exist", ""},
		{"move below a link", FilesMove("/a/l", "/l/x"), ErrTreeNotDir, "mv /a/l /l/x: parent /l is not a directory", ""},
		{"move a link below itself", FilesMove("/l", "/l/x"), ErrTreeNotDir, "mv /l /l/x: parent /l is not a directory", ""},
		// files-remove
		{"remove a link", FilesRemove("/a/l", false), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /l=c2"},
		{"remove a directory", FilesRemove("/a/b", false), ErrTreeNotEmpty, "/a/b: is a directory (use -r)", ""},
		{"remove an empty directory", FilesRemove("/a/e", false), ErrTreeNotEmpty, "/a/e: is a directory (use -r)", ""},
		{"remove -r a directory", FilesRemove("/a", true), nil, "", "/l=c2"},
		{"remove -r a link", FilesRemove("/l", true), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4"},
		{"remove a missing entry", FilesRemove("/x", true), ErrTreeNotFound, "/x: does not exist", ""},
		{"remove below a link", FilesRemove("/l/x", true), ErrTreeNotFound, "/l/x: does not exist", ""},
		{"remove /", FilesRemove("/", false), ErrTreeInvalid, "/: cannot remove the root", ""},
		{"remove -r /", FilesRemove("/", true), ErrTreeInvalid, "/: cannot remove the root", ""},
		// files-copy
		{"copy a link", FilesCopy("/l", "/m", false), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /l=c2 /m=c2"},
		{"copy a directory", FilesCopy("/a", "/c", false), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /c/ /c/b/ /c/b/f=c1 /c/e/ /c/l=c4 /l=c2"},
		{"copy a directory next to itself", FilesCopy("/a", "/ab", false), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /ab/ /ab/b/ /ab/b/f=c1 /ab/e/ /ab/l=c4 /l=c2"},
		{"copy a directory into a directory", FilesCopy("/a/b", "/a/e/b", false), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/e/b/ /a/e/b/f=c1 /a/l=c4 /l=c2"},
		{"copy an empty directory", FilesCopy("/a/e", "/e", false), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /e/ /l=c2"},
		{"copy a directory into its parent", FilesCopy("/a/b", "/a/b2", false), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/b2/ /a/b2/f=c1 /a/e/ /a/l=c4 /l=c2"},
		{"copy a directory to its ancestor's sibling", FilesCopy("/a/b", "/b", false), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /b/ /b/f=c1 /l=c2"},
		{"copy -p makes the parents", FilesCopy("/a/b", "/x/y/b", true), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /l=c2 /x/ /x/y/ /x/y/b/ /x/y/b/f=c1"},
		{"copy without its parent", FilesCopy("/a/b", "/x/y", false), ErrTreeNotFound, "cp /a/b /x/y: parent /x does not exist (use -p)", ""},
		{"copy without its parents", FilesCopy("/l", "/a/x/y/z", false), ErrTreeNotFound, "cp /l /a/x/y/z: parent /a/x/y does not exist (use -p)", ""},
		{"copy below a link", FilesCopy("/a/b", "/l/x", true), ErrTreeNotDir, "cp /a/b /l/x: parent /l is not a directory", ""},
		{"copy far below a link", FilesCopy("/l", "/a/b/f/g/h", true), ErrTreeNotDir, "cp /l /a/b/f/g/h: parent /a/b/f is not a directory", ""},
		{"copy a link below itself", FilesCopy("/l", "/l/x", false), ErrTreeNotDir, "cp /l /l/x: parent /l is not a directory", ""},
		{"copy onto a link", FilesCopy("/a/b", "/l", false), ErrTreeExists, "cp /a/b /l: /l already exists", ""},
		{"copy onto a directory", FilesCopy("/l", "/a/e", true), ErrTreeExists, "cp /l /a/e: /a/e already exists", ""},
		{"copy onto /", FilesCopy("/l", "/", true), ErrTreeExists, "cp /l /: / already exists", ""},
		{"copy a link onto itself", FilesCopy("/l", "/l", false), ErrTreeExists, "cp /l /l: /l already exists", ""},
		{"copy a directory onto itself", FilesCopy("/a", "/a", true), ErrTreeInvalid, "cp /a /a: cannot copy a directory into itself", ""},
		{"copy a directory into itself", FilesCopy("/a", "/a/b/x", true), ErrTreeInvalid, "cp /a /a/b/x: cannot copy a directory into itself", ""},
		{"copy a directory below itself", FilesCopy("/a", "/a/x/y", true), ErrTreeInvalid, "cp /a /a/x/y: cannot copy a directory into itself", ""},
		{"copy the root", FilesCopy("/", "/x", false), ErrTreeInvalid, "cp / /x: cannot copy the root", ""},
		{"copy a missing entry", FilesCopy("/x", "/y", true), ErrTreeNotFound, "cp /x /y: /x does not exist", ""},
		{"copy from below a link", FilesCopy("/l/x", "/y", false), ErrTreeNotFound, "cp /l/x /y: /l/x does not exist", ""},
		// the commands of older logs: total
		{"old link", Link("/a/n", "c5"), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /a/n=c5 /l=c2"},
		{"old link replaces a directory", Link("/a", "c5"), nil, "", "/a=c5 /l=c2"},
		{"old link replaces a link in its way", Link("/l/x/y", "c5"), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /l/ /l/x/ /l/x/y=c5"},
		{"old link replaces a link", Link("/l", "c5"), nil, "", "/a/ /a/b/ /a/b/f=c1 /a/e/ /a/l=c4 /l=c5"},
		{"old link keeps an equal link", Link("/l", "c2"), nil, "", ""},
		{"old link of /", Link("/", "c5"), nil, "", ""},
		{"old unlink of a directory", Unlink("/a/b"), nil, "", "/a/ /a/e/ /a/l=c4 /l=c2"},
		{"old unlink of a missing entry", Unlink("/l/x"), nil, "", ""},
		{"old unlink of /", Unlink("/"), nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFSM()
			mustTree(t, f, setup...)
			if got := short(f); got != start {
				t.Fatalf("start: %s", got)
			}
			before, rev, ops := treeDump(f, true), f.TreeRev(), f.Stats().Ops
			err := applyTree(t, f, tt.cmd)
			checkTree(t, f)
			if tt.kind != nil {
				if !errors.Is(err, ErrTreeConflict) || !errors.Is(err, tt.kind) || errors.Is(err, ErrInvalidCommand) {
					t.Fatalf("err = %v, want %v", err, tt.kind)
				}
				if err.Error() != tt.msg {
					t.Fatalf("message %q, want %q", err.Error(), tt.msg)
				}
				for _, other := range treeKinds {
					if other != nil && other != tt.kind && errors.Is(err, other) {
						t.Fatalf("%v also matches %v", err, other)
					}
				}
			} else if err != nil {
				t.Fatal(err)
			}
			after := treeDump(f, true)
			if tt.want == "" {
				if !slices.Equal(before, after) || f.TreeRev() != rev {
					t.Fatalf("tree changed to %s (revision %d, was %d)", short(f), f.TreeRev(), rev)
				}
				if tt.kind != nil && !maps.Equal(ops, f.Stats().Ops) {
					t.Fatalf("a refusal was counted: %v", f.Stats().Ops)
				}
				return
			}
			if got := short(f); got != tt.want {
				t.Fatalf("tree\n got %s\nwant %s", got, tt.want)
			}
			if f.TreeRev() != rev+1 {
				t.Fatalf("revision %d after %d: want one more", f.TreeRev(), rev)
			}
			if f.Stats().Ops[tt.cmd.Op.String()] != ops[tt.cmd.Op.String()]+1 {
				t.Fatalf("ops = %v", f.Stats().Ops)
			}
		})
	}
}

// TreeStat, TreeList and what they say about links and directories.
func TestTreeRead(t *testing.T) {
	f := NewFSM()
	if e, ok := f.TreeStat("/"); !ok || e != (TreeEntry{Dir: true}) {
		t.Fatalf("empty root = %+v, %v", e, ok)
	}
	if l, err := f.TreeList("/"); err != nil || len(l) != 0 {
		t.Fatalf("empty list = %v, %v", l, err)
	}
	mustTree(t, f, Mkdir("/d", false), FilesLink("/d/b", "bafyb", LinkInfo{Type: 1, Size: 10, Tsize: 20}, false, false),
		FilesLink("/d/a", "bafya", LinkInfo{}, false, false), Mkdir("/d/B", false), Mkdir("/d/é", false), FilesLink("/d/_", "x", LinkInfo{}, false, false))
	list, err := f.TreeList("/d")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name)
	}
	if want := []string{"B", "_", "a", "b", "é"}; !slices.Equal(names, want) { // byte order
		t.Fatalf("names %q, want %q", names, want)
	}
	want := TreeEntry{Name: "b", Target: "bafyb", Type: 1, Size: 10, Tsize: 20, Rev: 2}
	if list[3] != want {
		t.Fatalf("entry %+v, want %+v", list[3], want)
	}
	if e, ok := f.TreeStat("/d/b"); !ok || e != want {
		t.Fatalf("stat %+v, %v", e, ok)
	}
	if e, _ := f.TreeStat("/d"); !e.Dir || e.Children != 5 || e.Name != "d" || e.Rev != 6 || e.Target != "" {
		t.Fatalf("stat /d = %+v", e)
	}
	if e, _ := f.TreeStat("/"); !e.Dir || e.Children != 1 || e.Name != "" || e.Rev != 6 {
		t.Fatalf("stat / = %+v", e)
	}
	for _, p := range []string{"/x", "/d/x", "/d/b/x", "", "d", "/d/", "/d/../d"} {
		if _, ok := f.TreeStat(p); ok {
			t.Errorf("stat %q found something", p)
		}
	}
	for _, tt := range []struct {
		p    string
		kind error
		msg  string
	}{
		{"/x", ErrTreeNotFound, "/x: does not exist"},
		{"/d/b/x", ErrTreeNotFound, "/d/b/x: does not exist"},
		{"/d/b", ErrTreeNotDir, "/d/b: not a directory"},
		{"d/", ErrTreeInvalid, `"d/": not an absolute, clean path`},
	} {
		if _, err := f.TreeList(tt.p); !errors.Is(err, tt.kind) || !errors.Is(err, ErrTreeConflict) || err.Error() != tt.msg {
			t.Errorf("list %s: %v", tt.p, err)
		}
	}
	if c, ok := f.Path("/d/a"); !ok || c != "bafya" {
		t.Fatalf("Path = %q, %v", c, ok)
	}
	if _, ok := f.Path("/d"); ok {
		t.Fatal("Path of a directory")
	}
	if tr := f.Tree(); len(tr) != 3 || tr["/d/_"] != "x" {
		t.Fatalf("Tree = %v", tr)
	}
	if st := f.Stats(); st.Paths != 6 || st.Ops["files-link"] != 3 || st.Ops["mkdir"] != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// A change sets the new revision on every node from the root down to what
// it changed; everything at and below a moved subtree's root reads as
// changed by the move.
func TestTreeRevisions(t *testing.T) {
	f := NewFSM()
	revs := func() map[string]uint64 {
		m := map[string]uint64{}
		for _, l := range treeDump(f, true) {
			fields := strings.Fields(l)
			r, _ := strconv.ParseUint(strings.TrimPrefix(fields[len(fields)-1], "rev="), 10, 64)
			m[strings.TrimSuffix(fields[0], "/")] = r
		}
		m["/"] = m[""]
		delete(m, "")
		return m
	}
	step := func(c Command, want map[string]uint64) {
		t.Helper()
		applyTree(t, f, c)
		checkTree(t, f)
		if got := revs(); !maps.Equal(got, want) {
			t.Fatalf("after %s %s: revisions %v, want %v", c.Op, c.Key, got, want)
		}
	}
	step(Mkdir("/a/b/c", true), map[string]uint64{"/": 1, "/a": 1, "/a/b": 1, "/a/b/c": 1})
	step(Mkdir("/x", false), map[string]uint64{"/": 2, "/a": 1, "/a/b": 1, "/a/b/c": 1, "/x": 2})
	step(FilesLink("/a/b/c/f", "c", LinkInfo{}, false, false), map[string]uint64{"/": 3, "/a": 3, "/a/b": 3, "/a/b/c": 3, "/a/b/c/f": 3, "/x": 2})
	step(FilesLink("/x/g", "c", LinkInfo{}, false, false), map[string]uint64{"/": 4, "/a": 3, "/a/b": 3, "/a/b/c": 3, "/a/b/c/f": 3, "/x": 4, "/x/g": 4})
	step(FilesMove("/a/b", "/x"), map[string]uint64{"/": 5, "/a": 5, "/x": 5, "/x/b": 5, "/x/b/c": 5, "/x/b/c/f": 5, "/x/g": 4})
	step(FilesRemove("/x/g", false), map[string]uint64{"/": 6, "/a": 5, "/x": 6, "/x/b": 5, "/x/b/c": 5, "/x/b/c/f": 5})
	step(FilesLink("/x/b/c/f", "d", LinkInfo{}, false, true), map[string]uint64{"/": 7, "/a": 5, "/x": 7, "/x/b": 7, "/x/b/c": 7, "/x/b/c/f": 7})
	step(FilesRemove("/x", false), map[string]uint64{"/": 7, "/a": 5, "/x": 7, "/x/b": 7, "/x/b/c": 7, "/x/b/c/f": 7}) // refused
	step(Pin("p"), map[string]uint64{"/": 7, "/a": 5, "/x": 7, "/x/b": 7, "/x/b/c": 7, "/x/b/c/f": 7})
	step(Batch(Link("/a/l", "c"), Unlink("/x/b/c")), map[string]uint64{"/": 9, "/a": 8, "/a/l": 8, "/x": 9, "/x/b": 9})
	if f.TreeRev() != 9 {
		t.Fatalf("revision %d", f.TreeRev())
	}
}

func TestTreeChanges(t *testing.T) {
	f := NewFSM()
	if ch, rev, ok := f.TreeChanges(0); ch != nil || rev != 0 || !ok {
		t.Fatalf("empty: %v %d %v", ch, rev, ok)
	}
	mustTree(t, f, Mkdir("/a/b", true), FilesLink("/a/b/f", "c", LinkInfo{}, false, false), FilesMove("/a/b", "/c"))
	applyTree(t, f, FilesRemove("/x", false)) // refused: no change
	mustTree(t, f, Pin("p"), Batch(Link("/d", "c"), Unlink("/c")))
	ch, rev, ok := f.TreeChanges(0)
	want := []TreeChange{{1, "/a"}, {1, "/a/b"}, {2, "/a/b/f"}, {3, "/a/b"}, {3, "/c"}, {4, "/d"}, {5, "/c"}}
	if !slices.Equal(ch, want) || rev != 5 || !ok {
		t.Fatalf("changes %v, %d, %v; want %v", ch, rev, ok, want)
	}
	if ch, rev, ok := f.TreeChanges(2); !slices.Equal(ch, want[3:]) || rev != 5 || !ok {
		t.Fatalf("since 2: %v %d %v", ch, rev, ok)
	}
	if ch, _, ok := f.TreeChanges(5); ch != nil || !ok {
		t.Fatalf("since now: %v %v", ch, ok)
	}
	if ch, _, ok := f.TreeChanges(6); ch != nil || ok {
		t.Fatalf("since the future: %v %v", ch, ok)
	}
	// The ring keeps the last treeChangeRing changes: asking for older
	// ones says incomplete.
	cmds := make([]Command, treeChangeRing)
	for i := range cmds {
		cmds[i] = Mkdir(fmt.Sprintf("/d%d", i), false)
	}
	applyCmds(t, f, f.AppliedIndex()+1, cmds...)
	ch, rev, ok = f.TreeChanges(0)
	if rev != 5+treeChangeRing || ok || len(ch) != treeChangeRing || ch[0] != (TreeChange{6, "/d0"}) {
		t.Fatalf("after overflow: %d changes from %v, rev %d, complete %v", len(ch), ch[0], rev, ok)
	}
	if ch, _, ok := f.TreeChanges(5); !ok || len(ch) != treeChangeRing {
		t.Fatalf("since 5: %d changes, complete %v", len(ch), ok)
	}
	if _, _, ok := f.TreeChanges(4); ok {
		t.Fatal("since 4: complete, but /d is gone from the ring")
	}
	// A restored state knows no changes before its revision.
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	if ch, rev, ok := g.TreeChanges(rev - 1); ch != nil || rev != f.TreeRev() || ok {
		t.Fatalf("restored: %v %d %v", ch, rev, ok)
	}
	if _, _, ok := g.TreeChanges(rev); !ok {
		t.Fatal("restored, since now: incomplete")
	}
	mustTree(t, g, Mkdir("/new", false))
	if ch, _, ok := g.TreeChanges(rev); !ok || !slices.Equal(ch, []TreeChange{{rev + 1, "/new"}}) {
		t.Fatalf("restored, then changed: %v %v", ch, ok)
	}
}

func TestTreeWatch(t *testing.T) {
	f := NewFSM()
	closed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	w := f.TreeWatch()
	mustTree(t, f, Pin("p"), Mkdir("/", true))
	applyTree(t, f, Mkdir("/x/y", false))
	if closed(w) {
		t.Fatal("closed without a tree change")
	}
	mustTree(t, f, Mkdir("/x", false))
	if !closed(w) {
		t.Fatal("not closed by a change")
	}
	w = f.TreeWatch()
	if closed(w) {
		t.Fatal("the new watch is closed")
	}
	if err := f.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, NewFSM())))); err != nil {
		t.Fatal(err)
	}
	if !closed(w) {
		t.Fatal("not closed by a restore")
	}
}

// randomTreeCommand makes a command on a small namespace, so that moves,
// refusals and collisions are frequent.
func randomTreeCommand(r *rand.Rand) Command {
	names := []string{"a", "b", "c", "dd"}
	randPath := func() string {
		var b strings.Builder
		for range 1 + r.IntN(3) {
			b.WriteString("/" + names[r.IntN(len(names))])
		}
		return b.String()
	}
	p := randPath()
	switch r.IntN(27) {
	case 0, 1, 2, 18, 19:
		return Mkdir(p, r.IntN(2) == 0)
	case 3, 4, 5, 6, 7, 20, 21, 22:
		return FilesLink(p, fmt.Sprintf("bafy%d", r.IntN(5)), LinkInfo{Type: uint8(r.IntN(3)), Size: uint64(r.IntN(3))}, r.IntN(3) > 0, r.IntN(2) == 0)
	case 8, 9, 10, 11:
		dst := randPath()
		if r.IntN(8) == 0 {
			dst = "/"
		}
		return FilesMove(p, dst)
	case 12, 13:
		return FilesRemove(p, r.IntN(3) > 0)
	case 15:
		return Link(p+"/f", fmt.Sprintf("bafy%d", r.IntN(5))) // also replaces a directory: not at the top

	case 16:
		return Unlink(p)
	case 17:
		return Batch(Link(randPath()+"/g", "bafyb"), Link(randPath()+"/h", "bafyc"), Unlink(randPath()+randPath()), Pin("x"))
	case 24, 25, 26:
		return FilesCopy(p, randPath(), r.IntN(2) == 0)
	}
	return Mkdir(p, true)
}

// Replicas applying the same log reach the same tree, revisions and
// outcomes included, whether or not snapshots are taken (and restored)
// along the way; every snapshot holds the tree as it was frozen.
func TestTreeDeterminism(t *testing.T) {
	n := 20000
	if testing.Short() || raceEnabled {
		n = 3000
	}
	for seed := range uint64(3) {
		r := rand.New(rand.NewPCG(seed, 99))
		a, b := NewFSM(), NewFSM()
		var (
			snap   *fsmSnapshot
			frozen []string // a's tree when b froze
			until  int
		)
		entries := 0
		for i := range n {
			entries += a.Stats().Paths
			c := randomTreeCommand(r)
			if snap == nil && r.IntN(50) == 0 {
				s, err := b.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				snap, frozen, until = s.(*fsmSnapshot), treeDump(a, true), i+r.IntN(200)
			}
			oa := applyCmds(t, a, uint64(i+1), c)[0]
			ob := applyCmds(t, b, uint64(i+1), c)[0]
			if oa.res != ob.res || fmt.Sprint(oa.err) != fmt.Sprint(ob.err) {
				t.Fatalf("seed %d, command %d (%s %s): outcomes differ: %v, %v", seed, i, c.Op, c.Key, oa, ob)
			}
			if snap != nil && i >= until {
				var sink memSink
				if err := snap.Persist(&sink); err != nil {
					t.Fatal(err)
				}
				checkTree(t, b)
				snap.Release()
				snap = nil
				checkTree(t, b)
				c := NewFSM()
				if err := c.Restore(io.NopCloser(&sink)); err != nil {
					t.Fatal(err)
				}
				if got := treeDump(c, true); !slices.Equal(got, frozen) {
					t.Fatalf("seed %d, command %d: the snapshot holds\n%s\nwant\n%s", seed, i, strings.Join(got, "\n"), strings.Join(frozen, "\n"))
				}
				if r.IntN(3) == 0 { // b goes on from its own snapshot
					if err := b.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, b)))); err != nil {
						t.Fatal(err)
					}
				}
			}
			if i%500 == 0 {
				checkTree(t, a)
				if err := diffFSM(a, b, true); err != nil {
					t.Fatalf("seed %d, command %d: %v", seed, i, err)
				}
			}
		}
		if snap != nil {
			snap.Release()
		}
		checkTree(t, a)
		checkTree(t, b)
		if err := diffFSM(a, b, true); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		t.Logf("seed %d: %d entries on average, revision %d, ops %v", seed, entries/n, a.TreeRev(), a.Stats().Ops)
	}
}

// A snapshot persists while the tree changes under it (moves of shared
// directories, links into them, removals, replacements): the snapshot
// holds the tree as frozen, the live tree has every change, and after
// Release the copies are folded back. Run with -race.
func TestTreeSnapshotConcurrent(t *testing.T) {
	dirs, files := 200, 50
	if raceEnabled || testing.Short() {
		dirs = 60
	}
	f, ref := NewFSM(), NewFSM()
	var build []Command
	for d := range dirs {
		build = append(build, Mkdir(fmt.Sprintf("/top/d%d/sub", d), true))
		for i := range files {
			build = append(build, FilesLink(fmt.Sprintf("/top/d%d/f%d", d, i), fmt.Sprintf("bafy%d.%d", d, i), info(uint64(i)), false, false))
		}
	}
	applyCmds(t, f, 1, build...)
	applyCmds(t, ref, 1, build...)
	frozen := treeDump(f, true)

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	done := make(chan error, 1)
	go func() { done <- snap.Persist(&sink) }()

	r := rand.New(rand.NewPCG(1, 2))
	index := uint64(1)
	changes := 0
	var copies []string // made by FilesCopy
	for persisting := true; persisting || changes < 2000; changes++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			persisting = false
		default:
		}
		d, e := r.IntN(dirs), r.IntN(dirs)
		var c Command
		switch r.IntN(8) {
		case 0:
			c = FilesMove(fmt.Sprintf("/top/d%d", d), fmt.Sprintf("/top/d%d/sub", e))
		case 1:
			c = FilesLink(fmt.Sprintf("/top/d%d/f%d", d, r.IntN(files)), "bafynew", info(1), false, true)
		case 2:
			c = FilesRemove(fmt.Sprintf("/top/d%d/f%d", d, r.IntN(files)), false)
		case 3:
			c = FilesLink(fmt.Sprintf("/top/d%d/sub/n%d", d, changes), "bafyn", LinkInfo{}, true, false)
		case 4:
			c = FilesMove(fmt.Sprintf("/top/d%d/f%d", d, r.IntN(files)), fmt.Sprintf("/top/d%d", e))
		case 5:
			c = FilesRemove(fmt.Sprintf("/top/d%d/sub", d), true)
		case 6:
			c = FilesCopy(fmt.Sprintf("/top/d%d", d), fmt.Sprintf("/top/d%d/sub/c%d", e, changes), false)
		case 7: // into a copy, or its source
			c = FilesLink(fmt.Sprintf("/top/d%d/f%d", d, r.IntN(files)), "bafycp", info(2), false, true)
			if len(copies) > 0 && r.IntN(2) == 0 {
				c.Key = fmt.Sprintf("%s/f%d", copies[r.IntN(len(copies))], r.IntN(files))
			}
		}
		index++
		if out := applyCmds(t, f, index, c)[0]; out.err == nil && c.Op == OpFilesCopy {
			copies = append(copies, c.Target)
		}
		applyCmds(t, ref, index, c)
	}
	// frozen: the live tree has every change already
	checkTree(t, f)
	fsmEqual(t, f, ref)
	snap.Release()
	checkTree(t, f)
	fsmEqual(t, f, ref)

	g := NewFSM()
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	if got := treeDump(g, true); !slices.Equal(got, frozen) {
		t.Fatal("the snapshot does not hold the tree as frozen")
	}
	// and the next snapshot holds the tree as it is now
	h := NewFSM()
	if err := h.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	fsmEqual(t, f, h)
	t.Logf("%d changes while %d entries persisted: %v", changes, len(frozen)-1, f.Stats().Ops)
}

// A Restore while a snapshot is in progress leaves that snapshot alone
// and its Release does not touch the new state.
func TestTreeRestoreDuringSnapshot(t *testing.T) {
	f := NewFSM()
	mustTree(t, f, Mkdir("/a/b", true), FilesLink("/a/b/f", "c", LinkInfo{}, false, false))
	frozen := treeDump(f, true)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	mustTree(t, f, FilesMove("/a/b", "/b"))
	other := NewFSM()
	mustTree(t, other, Mkdir("/z", false))
	if err := f.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, other)))); err != nil {
		t.Fatal(err)
	}
	mustTree(t, f, Mkdir("/z/y", false))
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	checkTree(t, f)
	if got := short(f); got != "/z/ /z/y/" {
		t.Fatalf("tree %s", got)
	}
	g := NewFSM()
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	if got := treeDump(g, true); !slices.Equal(got, frozen) {
		t.Fatalf("snapshot %v", got)
	}
}

// Moves can make the tree deeper than any path a command may name
// (MaxKeyLen): snapshots write, read and remove such a tree without
// recursion.
func TestTreeDeep(t *testing.T) {
	f := NewFSM()
	chain := "/t" + strings.Repeat("/a", 2000)
	for i := range 25 {
		mustTree(t, f, Mkdir(chain, true))
		if i > 0 {
			mustTree(t, f, FilesMove("/x", chain))
		}
		mustTree(t, f, FilesMove("/t", "/x"))
	}
	if st := f.Stats(); st.Paths != 25*2001 { // /t and 2000 directories each time
		t.Fatalf("%d entries", st.Paths)
	}
	b := snapshotBytes(t, f)
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	// every directory has one child: the snapshot is the same bytes
	if !bytes.Equal(snapshotBytes(t, g), b) || g.TreeRev() != f.TreeRev() {
		t.Fatal("the restored deep tree differs")
	}
	mustTree(t, g, FilesRemove("/x", true))
	if st := g.Stats(); st.Paths != 0 {
		t.Fatalf("%d entries left", st.Paths)
	}
}

var update = flag.Bool("update", false, "rewrite testdata/tree-session.txt with what the test gets")

// TestTreeSession runs the session in testdata/tree-session.txt: each
// "> command" line is run, and the lines after it are its output. Run
// with -update to rewrite the file from what the commands print.
func TestTreeSession(t *testing.T) {
	const file = "testdata/tree-session.txt"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f := NewFSM()
	var out strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "> ") {
			if !strings.HasPrefix(line, "  ") { // comments and blank lines stay
				out.WriteString(line + "\n")
			}
			continue
		}
		out.WriteString(line + "\n")
		for _, l := range runSessionLine(t, f, strings.Fields(line[2:])) {
			out.WriteString("  " + l + "\n")
		}
	}
	if *update {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if out.String() != string(b) {
		t.Fatalf("the session differs (go test -run TestTreeSession -update, then read the diff):\n%s", out.String())
	}
}

func runSessionLine(tb testing.TB, f *FSM, args []string) []string {
	tb.Helper()
	flags := map[string]bool{}
	for len(args) > 1 && strings.HasPrefix(args[1], "-") {
		flags[args[1]] = true
		args = append(args[:1], args[2:]...)
	}
	var c Command
	switch args[0] {
	case "mkdir":
		c = Mkdir(args[1], flags["-p"])
	case "link":
		var li LinkInfo
		if len(args) > 3 {
			typ, _ := strconv.Atoi(args[3])
			li.Type = uint8(typ)
			li.Size, _ = strconv.ParseUint(args[4], 10, 64)
			li.Tsize, _ = strconv.ParseUint(args[5], 10, 64)
		}
		c = FilesLink(args[1], args[2], li, flags["-p"], flags["-f"])
	case "mv":
		c = FilesMove(args[1], args[2])
	case "rm":
		c = FilesRemove(args[1], flags["-r"])
	case "cp":
		c = FilesCopy(args[1], args[2], flags["-p"])
	case "oldlink":
		c = Link(args[1], args[2])
	case "oldunlink":
		c = Unlink(args[1])
	case "ls":
		list, err := f.TreeList(args[1])
		if err != nil {
			return []string{"error: " + err.Error()}
		}
		var out []string
		for _, e := range list {
			out = append(out, entryLine(e))
		}
		return out
	case "stat":
		e, ok := f.TreeStat(args[1])
		if !ok {
			return []string{"not found"}
		}
		return []string{entryLine(e)}
	case "changes":
		since, _ := strconv.ParseUint(args[1], 10, 64)
		ch, rev, complete := f.TreeChanges(since)
		out := []string{fmt.Sprintf("rev %d complete %v", rev, complete)}
		for _, c := range ch {
			out = append(out, fmt.Sprintf("%d %s", c.Rev, c.Path))
		}
		return out
	case "tree":
		return treeDump(f, true)
	default:
		tb.Fatalf("unknown session command %q", args[0])
	}
	if err := applyTree(tb, f, c); err != nil {
		name := "?"
		for _, k := range []struct {
			err  error
			name string
		}{{ErrTreeExists, "exists"}, {ErrTreeNotFound, "not found"}, {ErrTreeNotDir, "not a directory"}, {ErrTreeNotEmpty, "not empty"}, {ErrTreeInvalid, "invalid"}} {
			if errors.Is(err, k.err) {
				name = k.name
			}
		}
		return []string{fmt.Sprintf("refused (%s): %v", name, err)}
	}
	return []string{fmt.Sprintf("ok, revision %d", f.TreeRev())}
}

func entryLine(e TreeEntry) string {
	if e.Dir {
		return fmt.Sprintf("%s/ children=%d rev=%d", e.Name, e.Children, e.Rev)
	}
	return fmt.Sprintf("%s -> %s type=%d size=%d tsize=%d rev=%d", e.Name, e.Target, e.Type, e.Size, e.Tsize, e.Rev)
}

// A tree refusal reaches the caller of Node.Apply on a follower (over the
// forward protocol) as on the leader: the same message, ErrTreeConflict
// and its sentinel, not ErrInvalidCommand, not retried.
func TestTreeRefusalForwarded(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	fo := c.followers()[0]
	apply(t, fo.n, Mkdir("/photos/2026", true))
	apply(t, fo.n, FilesLink("/photos/2026/a.jpg", "bafya", LinkInfo{Type: 2, Size: 3, Tsize: 4}, false, false))
	for _, tt := range []struct {
		cmd  Command
		kind error
		msg  string
	}{
		{Mkdir("/photos/2026", false), ErrTreeExists, "/photos/2026: already exists"},
		{FilesLink("/x/y", "c", LinkInfo{}, false, false), ErrTreeNotFound, "/x/y: parent /x does not exist (use -p)"},
		{Mkdir("/photos/2026/a.jpg/b", true), ErrTreeNotDir, "/photos/2026/a.jpg/b: parent /photos/2026/a.jpg is not a directory"},
		{FilesRemove("/photos", false), ErrTreeNotEmpty, "/photos: is a directory (use -r)"},
		{FilesMove("/photos", "/photos/2026"), ErrTreeInvalid, "mv /photos /photos/2026: cannot move a directory into itself"},
		{FilesCopy("/photos", "/photos/2026/x", false), ErrTreeInvalid, "cp /photos /photos/2026/x: cannot copy a directory into itself"},
		{FilesCopy("/photos/2026", "/photos", true), ErrTreeExists, "cp /photos/2026 /photos: /photos already exists"},
	} {
		for _, tn := range []*testNode{fo, l} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			start := time.Now()
			res, err := tn.n.Apply(ctx, tt.cmd)
			cancel()
			var ae *ApplyError
			switch {
			case !errors.Is(err, ErrTreeConflict) || !errors.Is(err, tt.kind):
				t.Fatalf("%s %s on %s: err = %v, want %v", tt.cmd.Op, tt.cmd.Key, tn.n.Status().Role, err, tt.kind)
			case errors.Is(err, ErrInvalidCommand) || errors.As(err, &ae):
				t.Fatalf("%s: %v is an invalid command or an ApplyError", tt.cmd.Op, err)
			case err.Error() != tt.msg:
				t.Fatalf("%s on %s: message %q, want %q", tt.cmd.Op, tn.n.Status().Role, err.Error(), tt.msg)
			case res != Result{}:
				t.Fatalf("a refusal with a result %+v", res)
			case time.Since(start) > 2*time.Second:
				t.Fatalf("%s: %v to refuse: retried?", tt.cmd.Op, time.Since(start))
			}
		}
	}
	// a malformed command is still an ErrInvalidCommand, before proposing
	if _, err := fo.n.Apply(context.Background(), Batch(Mkdir("/a", false))); !errors.Is(err, ErrInvalidCommand) || errors.Is(err, ErrTreeConflict) {
		t.Fatalf("a tree command in a batch: %v", err)
	}
	c.converge()
	for _, tn := range c.nodes {
		if got := short(tn.n.FSM()); got != "/photos/ /photos/2026/ /photos/2026/a.jpg=bafya" {
			t.Fatalf("tree %s", got)
		}
		if st := tn.n.FSM().Stats(); st.Ops["mkdir"] != 1 || st.Ops["files-link"] != 1 {
			t.Fatalf("ops %v", st.Ops)
		}
	}
}

// The forward reply carries a tree refusal's kind in the result flags.
func TestForwardReplyTreeKinds(t *testing.T) {
	errs := []error{
		treeErr(ErrTreeExists, "/a: already exists"), treeErr(ErrTreeNotFound, "/b: does not exist"),
		treeErr(ErrTreeNotDir, "x"), treeErr(ErrTreeNotEmpty, "y"), treeErr(ErrTreeInvalid, "z"),
		invalid("bad"), nil,
	}
	b := []byte{fwdOK, byte(len(errs))}
	for i, err := range errs {
		var flags byte
		if err != nil {
			flags = fwdResultErr | treeKindOf(err)<<fwdResultTreeShift
		}
		b = append(b, flags, byte(i+1))
		if err != nil {
			b = appendStr(b, err.Error())
		}
	}
	outs, err := readForwardReply(bufio.NewReader(bytes.NewReader(b)), len(errs))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range errs {
		got := outs[i].err
		switch {
		case want == nil:
			if got != nil || outs[i].res.Index != uint64(i+1) {
				t.Errorf("%d: %+v", i, outs[i])
			}
		case errors.Is(want, ErrInvalidCommand):
			if !errors.Is(got, ErrInvalidCommand) || errors.Is(got, ErrTreeConflict) {
				t.Errorf("%d: %v", i, got)
			}
		default:
			kind := treeKinds[treeKindOf(want)]
			if !errors.Is(got, kind) || !errors.Is(got, ErrTreeConflict) || got.Error() != want.Error() {
				t.Errorf("%d: %v, want %v", i, got, want)
			}
		}
	}
	// a kind from a newer build is still a tree conflict
	if err := treeErrorOf(7, "m"); !errors.Is(err, ErrTreeConflict) || err.Error() != "m" {
		t.Fatal(err)
	}
}

// treeScale builds a tree of dirs directories of files links each through
// FilesLink commands (names of ~22 bytes, 59-byte CIDv1 strings, 1024
// commands per entry, no RequestIDs) and measures its heap, a snapshot's
// persist and restore, and changes made while a snapshot is in progress.
func treeScale(tb testing.TB, dirs, files int) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapAlloc
	f := NewFSM()
	start := time.Now()
	cmds := make([]Command, 0, 1024)
	idx := uint64(0)
	flush := func() {
		idx++
		applyCmds(tb, f, idx, cmds...)
		cmds = cmds[:0]
	}
	for d := range dirs {
		cmds = append(cmds, Mkdir(fmt.Sprintf("/album-%04d", d), false))
		for i := range files {
			name := fmt.Sprintf("/album-%04d/IMG_%08d_%04d.jpeg", d, d*files+i, i%9999)
			cid := testCID(d*files + i)
			cmds = append(cmds, FilesLink(name, cid, LinkInfo{Type: 2, Size: uint64(i) << 12, Tsize: uint64(i)<<12 + 14}, false, false))
			if len(cmds) == cap(cmds) {
				flush()
			}
		}
	}
	if len(cmds) > 0 {
		flush()
	}
	fill := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap := ms.HeapAlloc - heap0
	n := dirs * files
	if st := f.Stats(); st.Paths != n+dirs {
		tb.Fatalf("%d entries", st.Paths)
	}

	start = time.Now()
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	freeze := time.Since(start)
	// changes while frozen: each copies the nodes on its path once
	start = time.Now()
	for i := range 1000 {
		d := (i * 7919) % dirs
		cmds = append(cmds, FilesLink(fmt.Sprintf("/album-%04d/new-%d.jpeg", d, i), "bafkreignew", LinkInfo{}, false, false))
	}
	flush()
	frozenApply := time.Since(start)
	var sink memSink
	sink.Grow(n * 100)
	start = time.Now()
	if err := snap.Persist(&sink); err != nil {
		tb.Fatal(err)
	}
	persist := time.Since(start)
	start = time.Now()
	snap.Release()
	release := time.Since(start)
	size := sink.Len()

	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap1 := ms.HeapAlloc
	g := NewFSM()
	start = time.Now()
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		tb.Fatal(err)
	}
	restore := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	restored := ms.HeapAlloc - heap1
	if g.Stats().Paths != n+dirs || g.TreeRev() != uint64(n+dirs) {
		tb.Fatalf("restored %d entries at revision %d", g.Stats().Paths, g.TreeRev())
	}
	tb.Logf("%d links in %d directories: heap %d MB (%.0f B/entry) built by FilesLink in %v, %.0f B/entry restored; "+
		"freeze %v, 1000 links while frozen %v, persist %v, release %v, restore %v; snapshot %d MB (%.1f B/entry)",
		n, dirs, heap>>20, float64(heap)/float64(n), fill.Round(time.Millisecond), float64(restored)/float64(n),
		freeze, frozenApply.Round(time.Microsecond), persist.Round(time.Millisecond), release.Round(time.Microsecond),
		restore.Round(time.Millisecond), size>>20, float64(size)/float64(n))
	if b, ok := tb.(*testing.B); ok {
		b.ReportMetric(float64(heap)/float64(n), "heap-B/entry")
		b.ReportMetric(float64(restored)/float64(n), "restored-B/entry")
		b.ReportMetric(persist.Seconds(), "persist-s")
		b.ReportMetric(restore.Seconds(), "restore-s")
		b.ReportMetric(float64(size)/float64(n), "snapshot-B/entry")
	}
	runtime.KeepAlive(f)
	runtime.KeepAlive(g)
	runtime.KeepAlive(&sink)
}

// testCID returns a CIDv1 (raw, sha2-256) as Kubo prints it: "bafkrei" and
// 52 more base32 characters.
func testCID(i int) string {
	h := sha256.Sum256(binary.AppendUvarint(nil, uint64(i)))
	return "b" + base32Lower.EncodeToString(append([]byte{0x01, 0x55, 0x12, 0x20}, h[:]...))
}

func TestTreeScale(t *testing.T) {
	treeScale(t, 20, 500)
}

// BenchmarkTree2M: 2,000 directories of 1,000 links (2,002,000 entries):
//
//	go test -run '^$' -bench Tree2M -benchtime 1x ./consensus/
func BenchmarkTree2M(b *testing.B) {
	for b.Loop() {
		treeScale(b, 2000, 1000)
	}
}

// A link gives back its target exactly as given, whichever form keeps it.
func FuzzLinkTarget(f *testing.F) {
	for _, s := range []string{"b", "ba", "bafy", "bafyb", "bafkreig" + strings.Repeat("a", 51), "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
		"Bafy", "bafy\n", "bafy====", "bAFY", "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" {
			return
		}
		n := newLink(1, s, LinkInfo{Type: 7})
		if got := n.target(); got != s {
			t.Fatalf("target %q, given %q", got, s)
		}
		if !n.sameLink(s, LinkInfo{Type: 7}) || n.sameLink(s+"a", LinkInfo{Type: 7}) {
			t.Fatal("sameLink")
		}
		if _, ok := compactTarget(s); ok != (n.link[1] == linkBase32) {
			t.Fatalf("form %d", n.link[1])
		}
	})
}
