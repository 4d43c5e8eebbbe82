//go:build linux

package mount

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"
)

// fixture is the shared tree most tests mount.
type fixture struct {
	node    *fakeNode
	big     []byte // /data/big.bin
	readme  Entry
	big1    Entry
	dataDir Entry
	mtime   time.Time
}

const script = "#!/bin/sh\necho hello from fungi\n"

func newFixture(t testing.TB) *fixture {
	t.Helper()
	n := newFakeNode()
	fx := &fixture{node: n, mtime: time.Date(2024, 5, 17, 12, 30, 0, 0, time.UTC)}
	rng := rand.New(rand.NewPCG(1, 2))
	fx.big = make([]byte, 8<<20+12345)
	for i := range fx.big {
		fx.big[i] = byte(rng.Uint32())
	}

	fx.readme = n.file([]byte("hello\n"), 0o644)
	fx.readme.Mtime = fx.mtime
	n.put("/readme.txt", fx.readme)
	n.put("/empty", n.file(nil, 0))
	n.put("/bin/hello.sh", n.file([]byte(script), 0o755))
	n.put("/bin/nomode.sh", n.file([]byte(script), 0))
	n.put("/bin/noexec.sh", n.file([]byte(script), 0o644))
	if bin, err := os.ReadFile("/bin/true"); err == nil {
		n.put("/bin/true", n.file(bin, 0o755))
	}
	n.put("/docs/ünïcødé 文件 ✓.txt", n.file([]byte("unicode\n"), 0o644))
	n.put("/docs/link", n.symlink("../readme.txt"))

	many := make([]Entry, 5000)
	for i := range many {
		many[i] = named(fmt.Sprintf("f%05d", i), n.file([]byte(fmt.Sprintf("file %d\n", i)), 0o644))
	}
	sub := n.dir(named("deep.txt", n.file([]byte("deep\n"), 0o600)), named("ünï", n.file([]byte("x"), 0)))
	fx.big1 = n.file(fx.big, 0o644)
	fx.dataDir = n.dir(
		named("big.bin", fx.big1),
		named("sub", sub),
		named("many", n.dir(many...)),
		named("ln", n.symlink("sub/deep.txt")),
	)
	n.put("/data", fx.dataDir)
	// An entry the node has not described: the mount asks Stat.
	n.put("/undescribed", Entry{CID: n.file([]byte("described later\n"), 0o644).CID})
	return fx
}

// walk lists everything under root: relative path → "kind size perm".
func walk(t testing.TB, root string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		size := st.Size()
		if st.IsDir() {
			size = 0
		}
		got[rel] = fmt.Sprintf("%v %d %o", st.Mode().Type(), size, st.Mode().Perm())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// want lists what the mount should show of the fake's tree and content.
func (fx *fixture) want() map[string]string {
	w := map[string]string{}
	perm := func(e Entry) uint32 {
		switch {
		case e.Kind == Symlink:
			return 0o777
		case e.Mode == 0:
			return 0o555
		}
		return e.Mode & 0o555
	}
	var add func(rel string, e Entry)
	add = func(rel string, e Entry) {
		switch e.Kind {
		case File:
			w[rel] = fmt.Sprintf("%v %d %o", iofs.FileMode(0), e.Size, perm(e))
		case Symlink:
			w[rel] = fmt.Sprintf("%v %d %o", iofs.ModeSymlink, len(e.Target), perm(e))
		case Dir:
			w[rel] = fmt.Sprintf("%v %d %o", iofs.ModeDir, 0, perm(e))
			for _, c := range fx.node.dirs[e.CID] {
				add(rel+"/"+c.Name, c)
			}
		}
	}
	for p, e := range fx.node.tree {
		if p == "/" {
			continue
		}
		rel := strings.TrimPrefix(p, "/")
		switch {
		case e.Kind == 0:
			st, _ := fx.node.Stat(context.Background(), e.CID)
			add(rel, st)
		case e.Kind == Dir && !e.CID.Defined():
			w[rel] = fmt.Sprintf("%v %d %o", iofs.ModeDir, 0, 0o555)
		default:
			add(rel, e)
		}
	}
	return w
}

func TestListing(t *testing.T) {
	fx := newFixture(t)
	_, dir, _ := mountFake(t, fx.node, Options{})
	got, want := walk(t, dir), fx.want()
	if len(got) != len(want) {
		t.Errorf("%d names, want %d", len(got), len(want))
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %q, want %q", p, got[p], w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: listed, not in the tree", p)
		}
	}
	// The 5,000-entry directory, in order.
	ents, err := os.ReadDir(filepath.Join(dir, "data/many"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 5000 || ents[0].Name() != "f00000" || ents[4999].Name() != "f04999" {
		t.Errorf("data/many: %d entries", len(ents))
	}
	// Unicode names read back.
	b, err := os.ReadFile(filepath.Join(dir, "docs/ünïcødé 文件 ✓.txt"))
	if err != nil || string(b) != "unicode\n" {
		t.Errorf("unicode name: %q, %v", b, err)
	}
}

func TestBigTreeDir(t *testing.T) {
	n := newFakeNode()
	const count = 100_000
	entries := make([]Entry, count)
	small := n.file([]byte("x"), 0o644)
	for i := range entries {
		entries[i] = named(fmt.Sprintf("entry-%06d", i), small)
	}
	n.putMany("/big", entries)
	_, dir, _ := mountFake(t, n, Options{})
	n.treeStats.Store(0)

	for pass := range 2 { // the second from the kernel's dentries
		ents, err := os.ReadDir(filepath.Join(dir, "big"))
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != count {
			t.Fatalf("pass %d: %d entries, want %d", pass, len(ents), count)
		}
		for i, e := range ents {
			if e.Name() != entries[i].Name || !e.Type().IsRegular() {
				t.Fatalf("pass %d: entry %d: %s %v", pass, i, e.Name(), e.Type())
			}
		}
	}
	// READDIRPLUS answers from the listing, not by a TreeStat per entry.
	if k := n.treeStats.Load(); k > 100 {
		t.Errorf("readdir: %d TreeStat calls", k)
	}
	st, err := os.Stat(filepath.Join(dir, "big", "entry-099999"))
	if err != nil || st.Size() != 1 {
		t.Fatalf("stat: %v, %v", st, err)
	}
}

func TestAttributes(t *testing.T) {
	fx := newFixture(t)
	before := time.Now().Truncate(time.Second)
	m, dir, _ := mountFake(t, fx.node, Options{})
	after := time.Now()

	for _, tc := range []struct {
		path string
		mode iofs.FileMode
	}{
		{"readme.txt", 0o444},          // 0644 masked
		{"bin/hello.sh", 0o555},        // 0755 masked
		{"bin/nomode.sh", 0o555},       // unknown: executable
		{"data/sub/deep.txt", 0o400},   // 0600 masked
		{"docs", iofs.ModeDir | 0o555}, // tree dir
		{"data", iofs.ModeDir | 0o555}, // CID dir
		{"docs/link", iofs.ModeSymlink | 0o777},
		{"", iofs.ModeDir | 0o555}, // the root
		{".ipfs", iofs.ModeDir | 0o555},
	} {
		st, err := os.Lstat(filepath.Join(dir, tc.path))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != tc.mode {
			t.Errorf("%s: mode %v, want %v", tc.path, st.Mode(), tc.mode)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != uint32(os.Getuid()) || sys.Gid != uint32(os.Getgid()) {
			t.Errorf("%s: owner %d:%d", tc.path, sys.Uid, sys.Gid)
		}
	}
	st, _ := os.Stat(filepath.Join(dir, "readme.txt"))
	if !st.ModTime().Equal(fx.mtime) {
		t.Errorf("readme.txt: mtime %v, want %v", st.ModTime(), fx.mtime)
	}
	st, _ = os.Stat(filepath.Join(dir, "bin/hello.sh"))
	if st.ModTime().Before(before) || st.ModTime().After(after) {
		t.Errorf("hello.sh: mtime %v, want the mount's start (%v..%v)", st.ModTime(), before, after)
	}

	// Inode numbers: distinct, and the same for a path across mounts.
	paths := []string{"readme.txt", "docs", "docs/link", "data/big.bin", "data/many/f00042"}
	inos := func() []uint64 {
		var r []uint64
		for _, p := range paths {
			st, err := os.Lstat(filepath.Join(dir, p))
			if err != nil {
				t.Fatal(err)
			}
			r = append(r, st.Sys().(*syscall.Stat_t).Ino)
		}
		return r
	}
	first := inos()
	if s := slices.Compact(slices.Sorted(slices.Values(first))); len(s) != len(first) {
		t.Errorf("inode numbers not distinct: %v", first)
	}
	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	m2, err := New(dir, fx.node, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Unmount()
	if again := inos(); !slices.Equal(first, again) {
		t.Errorf("inode numbers changed across mounts: %v, then %v", first, again)
	}
}

func TestSymlinks(t *testing.T) {
	fx := newFixture(t)
	_, dir, _ := mountFake(t, fx.node, Options{})
	for p, want := range map[string]string{"docs/link": "../readme.txt", "data/ln": "sub/deep.txt"} {
		got, err := os.Readlink(filepath.Join(dir, p))
		if err != nil || got != want {
			t.Errorf("readlink %s: %q, %v; want %q", p, got, err, want)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "docs/link"))
	if err != nil || string(b) != "hello\n" {
		t.Errorf("through docs/link: %q, %v", b, err)
	}
	b, err = os.ReadFile(filepath.Join(dir, "data/ln"))
	if err != nil || string(b) != "deep\n" {
		t.Errorf("through data/ln: %q, %v", b, err)
	}
}

func TestReads(t *testing.T) {
	fx := newFixture(t)
	fx.node.short = true // readers return short reads
	_, dir, _ := mountFake(t, fx.node, Options{})
	f, err := os.Open(filepath.Join(dir, "data/big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	size := int64(len(fx.big))
	buf := make([]byte, 3<<20)
	for i := range 1000 {
		off := rng.Int64N(size)
		n := 1 + rng.IntN(len(buf))
		if i%10 == 0 {
			n = 1 + rng.IntN(5000)
		}
		got, err := f.ReadAt(buf[:n], off)
		want := min(int64(n), size-off)
		if int64(got) != want || (err != nil && !(err == io.EOF && off+int64(n) > size)) {
			t.Fatalf("ReadAt(%d, %d): %d, %v; want %d bytes", n, off, got, err, want)
		}
		if !bytes.Equal(buf[:got], fx.big[off:off+int64(got)]) {
			t.Fatalf("ReadAt(%d, %d): wrong bytes", n, off)
		}
	}
	// Whole, sequentially, from a new open (the page cache is kept).
	all, err := os.ReadFile(filepath.Join(dir, "data/big.bin"))
	if err != nil || !bytes.Equal(all, fx.big) {
		t.Fatalf("ReadFile: %d bytes, %v", len(all), err)
	}
	if n, err := f.ReadAt(buf[:10], size); n != 0 || err != io.EOF {
		t.Errorf("at the end: %d, %v", n, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "empty")); err != nil || len(b) != 0 {
		t.Errorf("empty: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "undescribed")); err != nil || string(b) != "described later\n" {
		t.Errorf("undescribed: %q, %v", b, err)
	}
}

// TestLargeReads: a sequential read reaches the node in 1 MiB requests,
// and the kernel's readahead is raised.
func TestLargeReads(t *testing.T) {
	fx := newFixture(t)
	m, dir, _ := mountFake(t, fx.node, Options{})
	f, err := os.Open(filepath.Join(dir, "data/big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	var all []byte
	for {
		k, err := f.Read(buf)
		all = append(all, buf[:k]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(all, fx.big) {
		t.Fatal("wrong bytes")
	}
	if got := fx.node.maxRead.Load(); got != maxRead {
		t.Errorf("largest read the node saw: %d bytes, want %d", got, maxRead)
	}
	ra, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(m.dev), unix.Minor(m.dev)))
	if err != nil || strings.TrimSpace(string(ra)) != "16384" {
		t.Errorf("read_ahead_kb: %q, %v; want 16384", ra, err)
	}
}

// The process serving a mount must not fault on a mapping of its files
// (exec does, in the vfork child): a thread faulting on the mount blocks
// the Go runtime's stop-the-world, so the server stops too. These tests
// touch the mount from other processes.

func TestMmap(t *testing.T) {
	fx := newFixture(t)
	_, dir, _ := mountFake(t, fx.node, Options{})
	out := helper(t, "mmap", filepath.Join(dir, "data/big.bin"))
	if want := fmt.Sprintf("%x", sha256.Sum256(fx.big)); out != want {
		t.Fatalf("mmap: sha256 %s, want %s", out, want)
	}
}

func TestExec(t *testing.T) {
	fx := newFixture(t)
	_, dir, _ := mountFake(t, fx.node, Options{})
	// Through sh, so that the exec happens in another process.
	run := func(p string) (string, error) {
		out, err := exec.Command("/bin/sh", "-c", `exec "$0"`, filepath.Join(dir, p)).CombinedOutput()
		return string(out), err
	}
	for _, p := range []string{"bin/hello.sh", "bin/nomode.sh"} {
		if out, err := run(p); err != nil || out != "hello from fungi\n" {
			t.Errorf("%s: %q, %v", p, out, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bin/true")); err == nil {
		if out, err := run("bin/true"); err != nil {
			t.Errorf("bin/true: %v %s", err, out)
		}
	}
	// 0644 in UnixFS: not executable from the mount either.
	var ee *exec.ExitError
	if out, err := run("bin/noexec.sh"); !errors.As(err, &ee) || ee.ExitCode() != 126 || !strings.Contains(out, "ermission denied") {
		t.Errorf("bin/noexec.sh: %v %q, want permission denied", err, out)
	}
}

func TestReadOnly(t *testing.T) {
	fx := newFixture(t)
	_, dir, _ := mountFake(t, fx.node, Options{})
	p := func(rel string) string { return filepath.Join(dir, rel) }
	open := func(rel string, flag int) error {
		f, err := os.OpenFile(p(rel), flag, 0o644)
		if err == nil {
			f.Close()
		}
		return err
	}
	now := time.Now()
	for name, op := range map[string]func() error{
		"create":            func() error { return open("new", os.O_CREATE|os.O_WRONLY) },
		"create in CID dir": func() error { return open("data/new", os.O_CREATE|os.O_WRONLY) },
		"open for writing":  func() error { return open("readme.txt", os.O_WRONLY) },
		"open read-write":   func() error { return open("data/big.bin", os.O_RDWR) },
		"open truncating":   func() error { return open("readme.txt", os.O_RDONLY|os.O_TRUNC) },
		"open appending":    func() error { return open("readme.txt", os.O_WRONLY|os.O_APPEND) },
		"mkdir":             func() error { return os.Mkdir(p("newdir"), 0o755) },
		"mkdir in .ipfs":    func() error { return os.Mkdir(p(".ipfs/x"), 0o755) },
		"rename":            func() error { return os.Rename(p("readme.txt"), p("moved")) },
		"rename in CID dir": func() error { return os.Rename(p("data/big.bin"), p("data/b")) },
		"unlink":            func() error { return syscall.Unlink(p("readme.txt")) },
		"unlink in CID dir": func() error { return syscall.Unlink(p("data/big.bin")) },
		"rmdir":             func() error { return syscall.Rmdir(p("docs")) },
		"rmdir CID dir":     func() error { return syscall.Rmdir(p("data/sub")) },
		"symlink":           func() error { return os.Symlink("readme.txt", p("sl")) },
		"link":              func() error { return os.Link(p("readme.txt"), p("hl")) },
		"mknod":             func() error { return syscall.Mknod(p("fifo"), syscall.S_IFIFO|0o644, 0) },
		"chmod":             func() error { return os.Chmod(p("readme.txt"), 0o777) },
		"chmod dir":         func() error { return os.Chmod(p("docs"), 0o777) },
		"chown":             func() error { return os.Chown(p("readme.txt"), 1, 1) },
		"truncate":          func() error { return os.Truncate(p("data/big.bin"), 0) },
		"utimes":            func() error { return os.Chtimes(p("readme.txt"), now, now) },
		"setxattr":          func() error { return unix.Setxattr(p("readme.txt"), "user.x", []byte("1"), 0) },
		"removexattr":       func() error { return unix.Removexattr(p("readme.txt"), "user.x") },
	} {
		if err := op(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", name, err)
		}
	}
	if b, err := os.ReadFile(p("readme.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("readme.txt afterwards: %q, %v", b, err)
	}
}

func TestMissing(t *testing.T) {
	fx := newFixture(t)
	_, dir, _ := mountFake(t, fx.node, Options{})
	unknown := sum(cid.Raw, []byte("nobody has this"))
	for _, p := range []string{
		"nope", "docs/nope", "docs/nope/deeper", "data/nope", "data/sub/nope",
		".ipfs/not-a-cid", ".ipfs/" + unknown.String(), ".ipfs/" + fx.dataDir.CID.String() + "/nope",
	} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("%s: %v, want ENOENT", p, err)
		}
	}
	if _, err := os.Open(filepath.Join(dir, "nope")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("open nope: %v", err)
	}
	// A CID the cluster learns about appears at once: no negative entry.
	c := fx.node.file([]byte("new content"), 0o644).CID
	if b, err := os.ReadFile(filepath.Join(dir, ".ipfs", c.String())); err != nil || string(b) != "new content" {
		t.Errorf(".ipfs/<new cid>: %q, %v", b, err)
	}
}

func TestUnreachable(t *testing.T) {
	fx := newFixture(t)
	n := fx.node
	atOpen := n.file([]byte("unreachable at open\n"), 0o644)
	atRead := n.file(bytes.Repeat([]byte("z"), 1<<20), 0o644)
	dirEntry := n.dir(named("x", n.file([]byte("x"), 0)))
	statEntry := n.file([]byte("stat fails"), 0)
	n.put("/at-open", atOpen)
	n.put("/at-read", atRead)
	n.put("/dir", dirEntry)
	n.put("/stat", Entry{CID: statEntry.CID})
	_, dir, logs := mountFake(t, n, Options{})

	n.fail(atOpen.CID, errUnreachable)
	n.fail(dirEntry.CID, errUnreachable)
	n.fail(statEntry.CID, errUnreachable)
	for range 3 {
		if _, err := os.ReadFile(filepath.Join(dir, "at-open")); !errors.Is(err, syscall.EIO) {
			t.Errorf("at-open: %v, want EIO", err)
		}
	}
	f, err := os.Open(filepath.Join(dir, "at-read"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n.fail(atRead.CID, errUnreachable)
	for range 3 {
		if _, err := f.ReadAt(make([]byte, 4096), 1000); !errors.Is(err, syscall.EIO) {
			t.Errorf("at-read: %v, want EIO", err)
		}
	}
	if _, err := os.ReadDir(filepath.Join(dir, "dir")); !errors.Is(err, syscall.EIO) {
		t.Errorf("readdir dir: %v, want EIO", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "dir/x")); !errors.Is(err, syscall.EIO) {
		t.Errorf("stat dir/x: %v, want EIO", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "stat")); !errors.Is(err, syscall.EIO) {
		t.Errorf("stat: %v, want EIO", err)
	}
	// Everything else reads on.
	if b, err := os.ReadFile(filepath.Join(dir, "data/big.bin")); err != nil || !bytes.Equal(b, fx.big) {
		t.Errorf("big.bin meanwhile: %d bytes, %v", len(b), err)
	}
	// One log line per CID, however many failures.
	for _, c := range []cid.Cid{atOpen.CID, atRead.CID, dirEntry.CID, statEntry.CID} {
		if k := strings.Count(logs.String(), c.String()); k != 1 {
			t.Errorf("%s named in %d log lines, want 1:\n%s", c, k, logs)
		}
	}
	// Healed: readable again (the failure left nothing cached).
	n.fail(atRead.CID, nil)
	buf := make([]byte, 4096)
	if k, err := f.ReadAt(buf, 1000); k != len(buf) || err != nil || buf[0] != 'z' {
		t.Errorf("at-read healed: %d, %v", k, err)
	}
}

func TestIPFSNamespace(t *testing.T) {
	fx := newFixture(t)
	// A tree entry named .ipfs at the root is shadowed.
	fx.node.put("/.ipfs", fx.node.file([]byte("shadowed"), 0))
	_, dir, _ := mountFake(t, fx.node, Options{})
	ipfs := filepath.Join(dir, ".ipfs")

	b, err := os.ReadFile(filepath.Join(ipfs, fx.readme.CID.String()))
	if err != nil || string(b) != "hello\n" {
		t.Errorf(".ipfs/<readme>: %q, %v", b, err)
	}
	b, err = os.ReadFile(filepath.Join(ipfs, fx.dataDir.CID.String(), "sub/deep.txt"))
	if err != nil || string(b) != "deep\n" {
		t.Errorf(".ipfs/<data>/sub/deep.txt: %q, %v", b, err)
	}
	ents, err := os.ReadDir(filepath.Join(ipfs, fx.dataDir.CID.String()))
	if err != nil || len(ents) != 4 {
		t.Errorf(".ipfs/<data>: %d entries, %v", len(ents), err)
	}
	// CIDv0 names resolve too.
	v0 := cid.NewCidV0(fx.dataDir.CID.Hash())
	if _, err := os.Stat(filepath.Join(ipfs, v0.String(), "big.bin")); err != nil {
		t.Errorf(".ipfs/<v0>/big.bin: %v", err)
	}
	if ents, err := os.ReadDir(ipfs); err != nil || len(ents) != 0 {
		t.Errorf("readdir .ipfs: %v, %v; want nothing", ents, err)
	}
	names, err := readdirnames(dir)
	if err != nil || slices.Contains(names, ".ipfs") {
		t.Errorf("the root lists %v (%v); want no .ipfs", names, err)
	}
}

// TestReaddirNoNetwork: listing a tree directory with undescribed entries
// never calls Stat (READDIRPLUS leaves them to a later lookup).
func TestReaddirNoNetwork(t *testing.T) {
	n := newFakeNode()
	for i := range 50 {
		n.put(fmt.Sprintf("/lazy/f%02d", i), Entry{CID: n.file([]byte(fmt.Sprint(i)), 0).CID})
	}
	_, dir, _ := mountFake(t, n, Options{})
	names, err := readdirnames(filepath.Join(dir, "lazy"))
	if err != nil || len(names) != 50 {
		t.Fatalf("lazy: %d names, %v", len(names), err)
	}
	if k := n.stats.Load(); k != 0 {
		t.Errorf("readdir: %d Stat calls, want 0", k)
	}
	st, err := os.Lstat(filepath.Join(dir, "lazy/f07"))
	if err != nil || !st.Mode().IsRegular() || st.Size() != 1 {
		t.Errorf("lazy/f07: %v, %v", st, err)
	}
	if k := n.stats.Load(); k != 1 {
		t.Errorf("lookup: %d Stat calls, want 1", k)
	}
}

func readdirnames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// eventually polls cond for up to 2 s.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: still %v after 2 s", what, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestChanged(t *testing.T) {
	fx := newFixture(t)
	n := fx.node
	// Hour-long timeouts: only invalidation can show a change.
	m, dir, _ := mountFake(t, n, Options{EntryTimeout: time.Hour, AttrTimeout: time.Hour})
	p := func(rel string) string { return filepath.Join(dir, rel) }
	readIs := func(rel, want string) func() error {
		return func() error {
			b, err := os.ReadFile(p(rel))
			if err != nil {
				return err
			}
			if string(b) != want {
				return fmt.Errorf("content %q", b)
			}
			return nil
		}
	}
	missing := func(rel string) func() error {
		return func() error {
			if _, err := os.Lstat(p(rel)); !errors.Is(err, syscall.ENOENT) {
				return fmt.Errorf("lstat: %v", err)
			}
			return nil
		}
	}

	// Known (cached) state first.
	if err := missing("new")(); err != nil {
		t.Fatal(err)
	}
	if err := missing("newdir")(); err != nil {
		t.Fatal(err)
	}
	if err := readIs("readme.txt", "hello\n")(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p("docs/link")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadDir(p("docs")); err != nil {
		t.Fatal(err)
	}
	// listings the kernel keeps (FOPEN_CACHE_DIR) until a change drops them
	lists := func(rel, name string, want bool) func() error {
		return func() error {
			names, err := readdirnames(p(rel))
			if err != nil {
				return err
			}
			if slices.Contains(names, name) != want {
				return fmt.Errorf("%s lists %v", rel, names)
			}
			return nil
		}
	}
	if err := lists(".", "new", false)(); err != nil {
		t.Fatal(err)
	}

	// Created.
	n.put("/new", n.file([]byte("new\n"), 0))
	m.Changed([]string{"/new"})
	eventually(t, "created /new", readIs("new", "new\n"))
	eventually(t, "/new in the root's listing", lists(".", "new", true))
	// Created below a name the kernel knows as missing.
	n.put("/newdir/x", n.file([]byte("x\n"), 0))
	m.Changed([]string{"/newdir/x"})
	eventually(t, "created /newdir/x", readIs("newdir/x", "x\n"))
	// Replaced.
	n.put("/readme.txt", n.file([]byte("hello again\n"), 0o644))
	m.Changed([]string{"/readme.txt"})
	eventually(t, "replaced /readme.txt", readIs("readme.txt", "hello again\n"))
	// Removed.
	n.remove("/docs/link")
	m.Changed([]string{"/docs/link"})
	eventually(t, "removed /docs/link", missing("docs/link"))
	eventually(t, "/docs/link gone from docs' listing", lists("docs", "link", false))
	// A tree directory replaced by a file.
	n.remove("/docs")
	n.put("/docs", n.file([]byte("docs is a file\n"), 0))
	m.Changed([]string{"/docs"})
	eventually(t, "replaced /docs", readIs("docs", "docs is a file\n"))

	// Everything.
	n.put("/bin/hello.sh", n.file([]byte("#!/bin/sh\necho changed\n"), 0o755))
	n.put("/new", n.file([]byte("newer\n"), 0))
	m.ChangedAll()
	eventually(t, "ChangedAll /bin/hello.sh", readIs("bin/hello.sh", "#!/bin/sh\necho changed\n"))
	eventually(t, "ChangedAll /new", readIs("new", "newer\n"))

	// The listing shows it all.
	names, err := readdirnames(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	want := []string{"bin", "data", "docs", "empty", "new", "newdir", "readme.txt", "undescribed"}
	if !slices.Equal(names, want) {
		t.Errorf("root: %v, want %v", names, want)
	}
	m.Changed(nil) // nothing
}

func TestExternalUnmount(t *testing.T) {
	fx := newFixture(t)
	m, dir, _ := mountFake(t, fx.node, Options{})
	bin, err := fusermount()
	if err != nil {
		t.Skip(err)
	}
	if out, err := exec.Command(bin, "-u", dir).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u: %v: %s", err, out)
	}
	waitFor(t, m, "fusermount3 -u")
	if err := m.Unmount(); err != nil {
		t.Errorf("Unmount afterwards: %v", err)
	}
}

func TestUnmountBusy(t *testing.T) {
	fx := newFixture(t)
	m, dir, _ := mountFake(t, fx.node, Options{})
	f, err := os.Open(filepath.Join(dir, "readme.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	if _, ok := mountAt(dir); ok {
		t.Error("still mounted after Unmount")
	}
	f.Close()
	waitFor(t, m, "Unmount with a file open")
	if err := m.Unmount(); err != nil {
		t.Errorf("Unmount again: %v", err)
	}
}

func waitFor(t *testing.T, m *Mount, what string) {
	t.Helper()
	ended := make(chan struct{})
	go func() {
		m.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatalf("Wait did not return after %s", what)
	}
}

// TestHelperProcess is another process for the tests: it mounts (for
// TestClearStale, which kills it), or maps a file of a mount.
func TestHelperProcess(t *testing.T) {
	what, arg, _ := strings.Cut(os.Getenv("FUNGI_MOUNT_HELPER"), ":")
	switch what {
	case "":
		t.Skip("a helper process of the other tests")
	case "mmap":
		f, err := os.Open(arg)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		st, _ := f.Stat()
		b, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Printf("%x\n", sha256.Sum256(b))
		os.Exit(0)
	}
	dir := arg
	n := newFakeNode()
	n.put("/hello", n.file([]byte("hello"), 0))
	m, err := New(dir, n, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	m.Wait()
	os.Exit(0)
}

// helper runs TestHelperProcess to do what with arg, and returns its
// output's first line.
func helper(t *testing.T, what, arg string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "FUNGI_MOUNT_HELPER="+what+":"+arg)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s: %v: %s", what, err, out)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return line
}

// startHelper runs TestHelperProcess, mounted at dir.
func startHelper(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "FUNGI_MOUNT_HELPER=mount:"+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		lazyUnmount(dir)
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	return cmd
}

func TestClearStale(t *testing.T) {
	needFUSE(t)
	dir := t.TempDir()

	// A mount whose server was killed.
	cmd := startHelper(t, dir)
	if b, err := os.ReadFile(filepath.Join(dir, "hello")); err != nil || string(b) != "hello" {
		t.Fatalf("through the helper's mount: %q, %v", b, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("statfs after the kill: %v, want ENOTCONN", err)
	}
	if err := Check(dir); err == nil || !strings.Contains(err.Error(), "a FUSE mount whose server is gone") {
		t.Errorf("Check on the dead mount: %v", err)
	}
	if cleared, err := ClearStale(dir); !cleared || err != nil {
		t.Fatalf("ClearStale: %v, %v; want true", cleared, err)
	}
	if cleared, err := ClearStale(dir); cleared || err != nil {
		t.Fatalf("ClearStale again: %v, %v; want false", cleared, err)
	}
	if err := Check(dir); err != nil {
		t.Fatalf("Check after clearing: %v", err)
	}

	// A live fungi mount of another process is cleared too (its server
	// then ends).
	cmd = startHelper(t, dir)
	if cleared, err := ClearStale(dir); !cleared || err != nil {
		t.Fatalf("ClearStale of a live foreign mount: %v, %v; want true", cleared, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("helper: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the helper still serves after ClearStale")
	}

	// Ours is left alone; New mounts over a stale one.
	cmd = startHelper(t, dir)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	m, err := New(dir, newFixture(t).node, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New over a stale mount: %v", err)
	}
	defer m.Unmount()
	if cleared, err := ClearStale(dir); cleared || err != nil {
		t.Errorf("ClearStale of our own mount: %v, %v", cleared, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "readme.txt")); err != nil {
		t.Errorf("our mount after ClearStale: %v", err)
	}
}

func TestCheck(t *testing.T) {
	needFUSE(t)
	root, err := absDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(root, "full")
	os.Mkdir(full, 0o755)
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o644)
	empty := filepath.Join(root, "empty")
	os.Mkdir(empty, 0o755)

	for _, tc := range []struct{ dir, want string }{
		{filepath.Join(root, "missing"), "mount: " + root + "/missing: no such directory"},
		{full, "mount: " + full + ": not empty"},
		{file, "mount: " + file + ": not a directory"},
		{empty, ""},
	} {
		err := Check(tc.dir)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("Check(%s): %q, want %q", tc.dir, got, tc.want)
		}
	}
	m, err := New(empty, newFakeNode(), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	if err := Check(empty); err == nil || err.Error() != "mount: "+empty+": already a mount point (fuse.fungi)" {
		t.Errorf("Check of a mount point: %v", err)
	}
	if _, err := New(empty, newFakeNode(), Options{Logger: slog.New(slog.DiscardHandler)}); err == nil {
		t.Error("mounted twice on one directory")
	}
}

// BenchmarkSequentialRead reads files the kernel has not cached, through
// the mount, in 1 MiB reads (the node's part is a memory copy).
func BenchmarkSequentialRead(b *testing.B) {
	n := newFakeNode()
	data := make([]byte, 32<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	_, dir, _ := mountFake(b, n, Options{})
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		name := fmt.Sprintf("/f%d", i)
		n.put(name, Entry{Kind: File, Size: uint64(len(data)), CID: sum(cid.Raw, []byte(name))})
		n.mu.Lock()
		n.files[n.tree[name].CID] = data
		n.mu.Unlock()
		b.StartTimer()
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := f.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		f.Close()
	}
}
