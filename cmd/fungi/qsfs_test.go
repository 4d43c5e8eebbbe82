package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	ufspb "github.com/ipfs/boxo/ipld/unixfs/pb"

	"github.com/fungistor/fungistor/testnet"
)

// needFUSE skips a test that mounts when this machine cannot (CI, which
// can, must run it: there it fails instead).
func needFUSE(t *testing.T) {
	t.Helper()
	var why string
	switch {
	case os.Geteuid() != 0:
		why = "not root"
	default:
		if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
			why = err.Error()
		} else {
			f.Close()
		}
	}
	if why == "" {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			why = "no fusermount3 (run scripts/deps.sh)"
		}
	}
	if why != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("FUSE mounts are needed: %s", why)
		}
		t.Skipf("FUSE mounts are not possible here: %s", why)
	}
}

// qsfsSource writes the tree the QSFS test adds: empty and one-byte
// files, files at the block size and one byte either side, a 100 MiB
// file, nested directories, a HAMT-sharded directory of 5,000 entries,
// symlinks, unicode names and an executable script.
func qsfsSource(t *testing.T, root string) {
	t.Helper()
	write := func(rel string, b []byte, mode os.FileMode) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(12, 34))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	write("empty", nil, 0o644)
	write("one", []byte("x"), 0o644)
	for _, n := range []int{mib - 1, mib, mib + 1} {
		write(fmt.Sprintf("block/%d", n), random(n), 0o644)
	}
	randomFile(t, filepath.Join(root, "big/100MiB"), 100*mib, 7)
	write("a/b/c/deep.txt", []byte("deep\n"), 0o644)
	write("naïve café/日本語.txt", []byte("unicode\n"), 0o644)
	write("bin/hello.sh", []byte("#!/bin/sh\necho hello from qsfs\n"), 0o755)
	for i := range 5000 {
		write(fmt.Sprintf("hamt/entry-with-a-longer-name-%05d.txt", i), []byte(fmt.Sprintf("entry %d\n", i)), 0o644)
	}
	for name, target := range map[string]string{"link-rel": "a/b/c/deep.txt", "a/link-up": "../one", "link-abs": "/etc/hostname"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// mountOn mounts the shared tree on node i at a new directory and
// unmounts it when the test ends.
func (c *cluster) mountOn(i int) string {
	c.t.Helper()
	dir := filepath.Join(c.t.TempDir(), "qsfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	c.must(i, "mount", dir)
	c.t.Cleanup(func() {
		c.fungiOn(i, nil, "unmount", dir)
		exec.Command("fusermount3", "-u", "-z", dir).Run()
	})
	return dir
}

func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/mounts")
	return strings.Contains(string(b), " "+dir+" ")
}

// The shared tree on a five-node cluster: a tree added on node 1 with
// --to-files reads on node 5's mount exactly as the original, with any
// program (tar, cp, pread, mmap, exec); changes made on node 2 show in
// the mount by themselves; writes fail with EROFS; content whose holders
// are gone is EIO while the rest keeps being served; the mount goes away
// with the daemon.
func TestQSFS(t *testing.T) {
	needFUSE(t)
	c := upCluster(t, 5, nil)
	src := filepath.Join(t.TempDir(), "photos")
	qsfsSource(t, src)

	r := c.fungiOn(1, nil, "add", "-q", "--to-files", "/shared/", src)
	if r.code != 0 {
		t.Fatalf("add --to-files: exit %d: %s", r.code, r.stderr)
	}
	root := strings.TrimSpace(r.stdout)
	if got := c.must(1, "files", "stat", "--hash", "/shared/photos"); got != root {
		t.Fatalf("files stat --hash /shared/photos = %s, want the added root %s", got, root)
	}
	// the HAMT directory really is sharded
	hamt := c.must(1, "files", "stat", "--hash", "/shared/photos/hamt")
	if typ := unixfsType(t, c, hamt); typ != ft.THAMTShard {
		t.Fatalf("hamt/ is UnixFS type %v, want a HAMT shard", typ)
	}

	// a directory of the tree as UnixFS, computed on node 5 and fetched
	// through node 4's gateway (which has to work it out itself)
	shared := c.must(5, "files", "stat", "--hash", "/shared")
	resp, err := http.Get("http://" + c.st.Nodes[3].Gateway + "/ipfs/" + shared + "/photos/a/b/c/deep.txt")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "deep\n" {
		t.Errorf("gateway /ipfs/<hash of /shared>/photos/a/b/c/deep.txt: %d %q", resp.StatusCode, body)
	}

	mnt := c.mountOn(5)
	if !mounted(mnt) {
		t.Fatalf("%s is not in /proc/mounts after fungi mount returned", mnt)
	}
	got := filepath.Join(mnt, "shared/photos")
	compareTrees(t, readTree(t, src), readTree(t, got))

	t.Run("programs", func(t *testing.T) {
		tarOut, err := exec.Command("sh", "-c", "tar cf - -C "+mnt+"/shared photos | tar tf - | wc -l").CombinedOutput()
		if err != nil {
			t.Fatalf("tar: %v: %s", err, tarOut)
		}
		if n := strings.TrimSpace(string(tarOut)); n != fmt.Sprint(len(readTree(t, src))) {
			t.Errorf("tar of the mount lists %s entries, want %d", n, len(readTree(t, src)))
		}
		cpDir := filepath.Join(t.TempDir(), "copy")
		if out, err := exec.Command("cp", "-r", got, cpDir).CombinedOutput(); err != nil {
			t.Fatalf("cp -r: %v: %s", err, out)
		}
		compareTrees(t, readTree(t, src), readTree(t, cpDir))
		out, err := exec.Command(filepath.Join(got, "bin/hello.sh")).CombinedOutput()
		if err != nil || string(out) != "hello from qsfs\n" {
			t.Errorf("running bin/hello.sh from the mount: %v, output %q", err, out)
		}
	})

	t.Run("pread", func(t *testing.T) {
		orig, err := os.Open(filepath.Join(src, "big/100MiB"))
		if err != nil {
			t.Fatal(err)
		}
		defer orig.Close()
		f, err := os.Open(filepath.Join(got, "big/100MiB"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rng := rand.New(rand.NewPCG(5, 6))
		want, have := make([]byte, 256<<10), make([]byte, 256<<10)
		for range 1000 {
			off := rng.Int64N(100*mib + 1)
			n := 1 + rng.IntN(len(want))
			wn, _ := orig.ReadAt(want[:n], off)
			hn, err := f.ReadAt(have[:n], off)
			if hn != wn || !bytes.Equal(have[:hn], want[:wn]) || (err != nil && err != io.EOF) {
				t.Fatalf("pread %d bytes at %d: got %d bytes (%v), want %d", n, off, hn, err, wn)
			}
		}
		// mmap
		m, err := syscall.Mmap(int(f.Fd()), 0, 100*mib, syscall.PROT_READ, syscall.MAP_SHARED)
		if err != nil {
			t.Fatalf("mmap: %v", err)
		}
		defer syscall.Munmap(m)
		if sha256.Sum256(m) != readTree(t, src)["big/100MiB"].sum {
			t.Error("mmap of big/100MiB differs from the original")
		}
	})

	t.Run("ipfs namespace", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(mnt, ".ipfs", root, "a/b/c/deep.txt"))
		if err != nil || string(b) != "deep\n" {
			t.Errorf(".ipfs/<root>/a/b/c/deep.txt: %q, %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(mnt, ".ipfs", "bafkreinotacid")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf(".ipfs/<not a CID>: %v, want ENOENT", err)
		}
	})

	t.Run("read-only", func(t *testing.T) {
		file := filepath.Join(got, "one")
		checks := map[string]error{
			"create":            os.WriteFile(filepath.Join(got, "new"), []byte("x"), 0o644),
			"write":             func() error { f, err := os.OpenFile(file, os.O_WRONLY, 0); f.Close(); return err }(),
			"mkdir":             os.Mkdir(filepath.Join(got, "newdir"), 0o755),
			"remove":            os.Remove(file),
			"rmdir":             os.Remove(filepath.Join(got, "a/b/c")),
			"rename":            os.Rename(file, filepath.Join(got, "two")),
			"symlink":           os.Symlink("one", filepath.Join(got, "sym")),
			"chmod":             os.Chmod(file, 0o777),
			"truncate":          os.Truncate(file, 0),
			"utimes":            os.Chtimes(file, time.Now(), time.Now()),
			"setxattr":          syscall.Setxattr(file, "user.x", []byte("y"), 0),
			"mkdir at the root": os.Mkdir(filepath.Join(mnt, "x"), 0o755),
		}
		for what, err := range checks {
			if !errors.Is(err, syscall.EROFS) {
				t.Errorf("%s on the mount: %v, want EROFS", what, err)
			}
		}
		if _, err := os.Stat(filepath.Join(got, "missing")); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("stat of a missing name: %v, want ENOENT", err)
		}
	})

	t.Run("holders lost", func(t *testing.T) {
		defer c.in(t)()
		// read one file now: the page cache keeps it
		cached := filepath.Join(got, "block/1048576")
		want, err := os.ReadFile(cached)
		if err != nil {
			t.Fatal(err)
		}
		// content no node has read yet (nothing of it in any cache)
		unread := filepath.Join(t.TempDir(), "unread")
		unreadSum := randomFile(t, unread, 3*mib, 99)
		c.must(1, "files", "write", "/unread", unread)
		// 16/4 over five nodes: four fragments each; two nodes gone is
		// eight, beyond what the coding survives
		if err := testnet.Stop(c.dir, []int{3, 4}, true); err != nil {
			t.Fatal(err)
		}
		_, err = os.ReadFile(filepath.Join(mnt, "unread"))
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("reading content whose holders are gone: %v, want EIO", err)
		}
		if b, err := os.ReadFile(cached); err != nil || !bytes.Equal(b, want) {
			t.Errorf("a file read before still reads: %v", err)
		}
		if _, err := os.ReadDir(filepath.Join(got, "hamt")); err != nil {
			t.Errorf("listing while holders are gone: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := testnet.Start(ctx, c.dir, []int{3, 4}); err != nil {
			t.Fatal(err)
		}
		// the failure was not kept: the file reads once its holders are back
		deadline := time.Now().Add(30 * time.Second)
		for {
			b, err := os.ReadFile(filepath.Join(mnt, "unread"))
			if err == nil {
				if sha256.Sum256(b) != unreadSum {
					t.Fatal("unread reads wrong bytes after its holders came back")
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("unread still fails after its holders came back: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("changes from another node", func(t *testing.T) {
		defer c.in(t)()
		c.must(2, "files", "mkdir", "-p", "/moved/here")
		c.must(2, "files", "mv", "/shared/photos", "/moved/here/photos2")
		c.must(2, "files", "cp", "/ipfs/"+root+"/a/b/c/deep.txt", "/moved/deep-copy")
		c.must(2, "files", "cp", "/moved", "/copied") // a directory of the tree, copied
		c.must(2, "files", "rm", "-r", "/shared")
		start := time.Now()
		for {
			_, errGone := os.Stat(got)
			one, errOne := os.ReadFile(filepath.Join(mnt, "moved/here/photos2/one"))
			deep, errDeep := os.ReadFile(filepath.Join(mnt, "moved/deep-copy"))
			copied, errCopied := os.ReadFile(filepath.Join(mnt, "copied/here/photos2/one"))
			if errors.Is(errGone, os.ErrNotExist) && errOne == nil && string(one) == "x" && errDeep == nil && string(deep) == "deep\n" &&
				errCopied == nil && string(copied) == "x" {
				break
			}
			// the kernel keeps tree entries 10 s: only the invalidations
			// fed by raft's applies make this pass sooner
			if time.Since(start) > 5*time.Second {
				t.Fatalf("node 2's changes not visible on node 5's mount after %v: shared/photos %v, moved/here/photos2/one %q %v, moved/deep-copy %q %v, copied/here/photos2/one %q %v",
					time.Since(start), errGone, one, errOne, deep, errDeep, copied, errCopied)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("node 2's changes visible on node 5's mount after %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("daemon shutdown", func(t *testing.T) {
		if err := testnet.Stop(c.dir, []int{5}, false); err != nil { // SIGTERM
			t.Fatal(err)
		}
		if mounted(mnt) {
			t.Errorf("%s still in /proc/mounts after the daemon's SIGTERM", mnt)
		}
	})
}

// in points the cluster's failures at subtest t until the returned func
// runs.
func (c *cluster) in(t *testing.T) func() {
	parent := c.t
	c.t = t
	return func() { c.t = parent }
}

// compareTrees checks got holds exactly want's names, kinds, sizes,
// checksums and symlink targets.
func compareTrees(t *testing.T, want, got map[string]treeEntry) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: missing from the mount", name)
		case g != w:
			t.Errorf("%s: mount has %+v, want %+v", name, g, w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: on the mount, not in the original", name)
		}
	}
}

// unixfsType is the UnixFS type of block c, fetched from node 1's gateway.
func unixfsType(t *testing.T, c *cluster, cidStr string) ufspb.Data_DataType {
	t.Helper()
	resp, err := http.Get("http://" + c.st.Nodes[0].Gateway + "/ipfs/" + cidStr + "?format=raw")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("gateway raw block %s: %d %v", cidStr, resp.StatusCode, err)
	}
	pn, err := merkledag.DecodeProtobuf(b)
	if err != nil {
		t.Fatal(err)
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		t.Fatal(err)
	}
	return fsn.Type()
}

// Bad mount points and misuse give one line and a non-zero exit; a mount
// ends with fusermount3 -u, fungi unmount, the exit of fungi mount --wait
// and the daemon, and one left by a killed daemon is cleared; mount.dir
// mounts at start.
func TestMountLifecycle(t *testing.T) {
	needFUSE(t)
	c := upCluster(t, 1, nil)
	notEmpty := t.TempDir()
	os.WriteFile(filepath.Join(notEmpty, "x"), nil, 0o644)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	for what, tc := range map[string]struct {
		args []string
		want string
	}{
		"missing":       {[]string{"mount", filepath.Join(t.TempDir(), "nope")}, "no such directory"},
		"not empty":     {[]string{"mount", notEmpty}, "not empty"},
		"a file":        {[]string{"mount", file}, "not a directory"},
		"no dir":        {[]string{"mount"}, "exactly one DIR"},
		"not mounted":   {[]string{"unmount", t.TempDir()}, "not mounted"},
		"relative path": {[]string{"files", "ls", "photos"}, "absolute"},
		"files missing": {[]string{"files", "stat", "/nothing/here"}, "no such file or directory"},
		"mkdir no -p":   {[]string{"files", "mkdir", "/x/y"}, "use -p"},
		"rm a dir":      {[]string{"files", "rm", "/"}, "root"},
	} {
		oneLineError(t, what, c.fungiOn(1, nil, tc.args...), tc.want)
	}
	// conflicts
	c.must(1, "files", "mkdir", "/d")
	oneLineError(t, "mkdir exists", c.fungiOn(1, nil, "files", "mkdir", "/d"), "already exists")
	if r := c.fungiStdin(1, []byte("data"), "files", "write", "/d/f"); r.code != 0 {
		t.Fatalf("files write: %s", r.stderr)
	}
	oneLineError(t, "parent is a file", c.fungiOn(1, nil, "files", "mkdir", "/d/f/g"), "not a directory")
	oneLineError(t, "rm dir without -r", c.fungiOn(1, nil, "files", "rm", "/d"), "-r")
	oneLineError(t, "cp onto existing", c.fungiOn(1, nil, "files", "cp", "/d/f", "/d/f"), "already exists")
	// a mount left by a killed daemon is cleared at the next start
	dir := t.TempDir()
	c.must(1, "mount", dir)
	if err := testnet.Stop(c.dir, []int{1}, true); err != nil {
		t.Fatal(err)
	}
	if !mounted(dir) {
		t.Fatal("a SIGKILLed daemon's mount vanished by itself; the test needs it left behind")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := testnet.Start(ctx, c.dir, []int{1}); err != nil {
		t.Fatal(err)
	}
	if mounted(dir) {
		t.Errorf("the mount a killed daemon left at %s is still there after the daemon started again", dir)
	}
	c.must(1, "mount", dir)
	if b, err := os.ReadFile(filepath.Join(dir, "d/f")); err != nil || string(b) != "data" {
		t.Errorf("remount over a stale mount: d/f %q, %v", b, err)
	}
	c.must(1, "unmount", dir)
	if mounted(dir) {
		t.Errorf("%s still mounted after fungi unmount", dir)
	}

	// fusermount3 -u from outside: the daemon lets go of it
	c.must(1, "mount", dir)
	if out, err := exec.Command("fusermount3", "-u", dir).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u: %v: %s", err, out)
	}
	waitFor(t, "the daemon to forget the mount", func() bool { return !mountListed(c, dir) })
	c.must(1, "mount", dir) // not "already mounted"
	c.must(1, "unmount", dir)

	// fungi mount --wait: the mount lasts as long as the command
	cmd := exec.Command(fungiBin, "mount", "--wait", dir)
	cmd.Env = append(os.Environ(), "FUNGI_PATH="+c.path(1))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "fungi mount --wait to mount", func() bool { return mounted(dir) })
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Errorf("fungi mount --wait after SIGINT: %v", err)
	}
	if mounted(dir) {
		t.Errorf("%s still mounted after fungi mount --wait exited", dir)
	}

	// mount.dir: mounted at start, unmounted at a clean stop
	c.must(1, "config", "mount.dir", dir)
	if err := testnet.Stop(c.dir, []int{1}, false); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	if err := testnet.Start(ctx2, c.dir, []int{1}); err != nil {
		t.Fatal(err)
	}
	if !mounted(dir) {
		t.Fatalf("mount.dir %s not mounted when the daemon started", dir)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "d/f")); err != nil || string(b) != "data" {
		t.Errorf("mount.dir at start: d/f %q, %v", b, err)
	}
	if err := testnet.Stop(c.dir, []int{1}, false); err != nil {
		t.Fatal(err)
	}
	if mounted(dir) {
		t.Errorf("%s still mounted after the daemon stopped", dir)
	}
}

func mountListed(c *cluster, dir string) bool {
	ms, err := c.api(1).Mounts(context.Background())
	return err == nil && slices.Contains(ms, dir)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
