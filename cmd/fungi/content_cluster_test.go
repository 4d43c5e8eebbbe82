package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fungistor/fungistor/node"
	"github.com/fungistor/fungistor/testnet"
)

const mib = 1 << 20

// randomFile writes size seeded random bytes to path and returns their
// sha256, without holding them in memory.
func randomFile(t testing.TB, path string, size int64, seed uint64) [32]byte {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	if _, err := io.CopyN(bw, rand.NewChaCha8(key), size); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// fungiOut is what one fungi command did.
type fungiOut struct {
	stdout, stderr string
	code           int
}

// fungiOn runs fungi against node i's daemon (FUNGI_PATH=its repo); i 0
// runs it with no repo. A non-nil stdout receives the output instead of
// the result.
func (c *cluster) fungiOn(i int, stdout io.Writer, args ...string) fungiOut {
	c.t.Helper()
	return fungiIn(c.t, c.repo(i), nil, stdout, args...)
}

// fungiStdin runs fungi on node i (0: no repo) with stdin.
func (c *cluster) fungiStdin(i int, stdin []byte, args ...string) fungiOut {
	c.t.Helper()
	return fungiIn(c.t, c.repo(i), stdin, nil, args...)
}

// repo is node i's repo ("" for 0: none).
func (c *cluster) repo(i int) string {
	if i == 0 {
		return ""
	}
	return c.path(i)
}

// fungiIn runs fungi on the repo at path ("": FUNGI_PATH as the test's
// environment has it) with stdin (nil: none). A non-nil stdout receives
// the output instead of the result. A fungi that cannot start is fatal.
func fungiIn(t testing.TB, path string, stdin []byte, stdout io.Writer, args ...string) fungiOut {
	t.Helper()
	cmd := exec.Command(fungiBin, args...)
	cmd.Env = os.Environ()
	if path != "" {
		cmd.Env = append(cmd.Env, "FUNGI_PATH="+path)
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdout != nil {
		cmd.Stdout = stdout
	}
	err := cmd.Run()
	res := fungiOut{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("fungi %v: %v", args, err)
	}
	return res
}

// must runs fungi on node i and returns its trimmed output; failing is fatal.
func (c *cluster) must(i int, args ...string) string {
	c.t.Helper()
	r := c.fungiOn(i, nil, args...)
	if r.code != 0 {
		c.t.Fatalf("node %d: fungi %s: exit %d: %s\n%s", i, strings.Join(args, " "), r.code, r.stderr, logTail(c.dir, len(c.st.Nodes)))
	}
	return strings.TrimSpace(r.stdout)
}

// catSum runs fungi cat on node i and returns the sha256 and length of
// what it wrote.
func (c *cluster) catSum(i int, args ...string) ([32]byte, int64) {
	c.t.Helper()
	h := sha256.New()
	cw := &countWriter{w: h}
	r := c.fungiOn(i, cw, append([]string{"cat"}, args...)...)
	if r.code != 0 {
		c.t.Fatalf("node %d: fungi cat %s: exit %d: %s\n%s", i, strings.Join(args, " "), r.code, r.stderr, logTail(c.dir, len(c.st.Nodes)))
	}
	return [32]byte(h.Sum(nil)), cw.n
}

type countWriter struct {
	w io.Writer
	n int64
}

func (cw *countWriter) Write(b []byte) (int, error) {
	n, err := cw.w.Write(b)
	cw.n += int64(n)
	return n, err
}

// addBoth adds path on node i and checks the CID against --only-hash.
func (c *cluster) addBoth(i int, path string) string {
	c.t.Helper()
	got := c.must(i, "add", "-q", path)
	if want := c.must(0, "add", "--only-hash", "-q", path); got != want {
		c.t.Fatalf("add of %s on node %d = %s, --only-hash %s", filepath.Base(path), i, got, want)
	}
	return got
}

// statJSON is fungi stat --json on node i.
func (c *cluster) statJSON(i int, args ...string) *node.Stat {
	c.t.Helper()
	out := c.must(i, append([]string{"stat", "--json"}, args...)...)
	var st node.Stat
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("stat --json: %v: %s", err, out)
	}
	return &st
}

// metrics reads node i's /metrics: value by name and holder label.
func (c *cluster) metrics(i int, name string) map[string]float64 {
	c.t.Helper()
	resp, err := http.Get("http://" + c.st.Nodes[i-1].API + "/metrics")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prefix := name + `{holder="`
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		holder, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			c.t.Fatalf("metrics line %q", line)
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			c.t.Fatalf("metrics line %q: %v", line, err)
		}
		out[holder] = v
	}
	return out
}

// fault sets node i's fragment server's fault mode (debug API).
func (c *cluster) fault(i int, mode string, delay time.Duration) {
	c.t.Helper()
	q := url.Values{"mode": {mode}}
	if delay > 0 {
		q.Set("delay", delay.String())
	}
	resp, err := http.Post("http://"+c.st.Nodes[i-1].API+"/api/v0/debug/fault?"+q.Encode(), "", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("fault %s on node %d: %s %s", mode, i, resp.Status, b)
	}
}

// nodeOf names a holder by node index for messages ("node 3", or the ID).
func (c *cluster) nodeOf(id string) string {
	for _, n := range c.st.Nodes {
		if n.Peer == id {
			return "node " + strconv.Itoa(n.Index)
		}
	}
	return id
}

// treeEntry is one item of a local tree, for comparing trees.
type treeEntry struct {
	kind   string // dir, file, symlink
	sum    [32]byte
	size   int64
	target string
}

func readTree(t testing.TB, root string) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[rel] = treeEntry{kind: "symlink", target: target}
			return err
		case d.IsDir():
			out[rel] = treeEntry{kind: "dir"}
		default:
			b, err := os.ReadFile(p)
			out[rel] = treeEntry{kind: "file", sum: sha256.Sum256(b), size: int64(len(b))}
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// oneLineError checks a failed command: non-zero exit, nothing on stdout,
// one line on stderr that names the problem.
func oneLineError(t *testing.T, what string, r fungiOut, want string) {
	t.Helper()
	line := strings.TrimSuffix(r.stderr, "\n")
	switch {
	case r.code == 0:
		t.Errorf("%s: exit 0 (stdout %.80q); want a failure", what, r.stdout)
	case r.stdout != "":
		t.Errorf("%s: stdout %.200q; want nothing", what, r.stdout)
	case line == "" || strings.Contains(line, "\n") || !strings.HasPrefix(line, "fungi "):
		t.Errorf("%s: stderr %q; want one line", what, r.stderr)
	case !strings.Contains(line, want):
		t.Errorf("%s: stderr %q; want it to say %q", what, line, want)
	default:
		t.Logf("%s: exit %d: %s", what, r.code, line)
	}
}

// Content on a five-node cluster: files at and around the block size, a
// big one and a tree, added on node 1 (the leader) and on a follower,
// read back exactly from every other node, whole, in ranges, listed and
// saved; stat shows the 16/4 spread; bad input fails with one line.
func TestClusterContent(t *testing.T) {
	c := upCluster(t, 5, nil)
	src := t.TempDir()

	type object struct {
		name string
		size int64
		path string
		sum  [32]byte
		cid  string
	}
	var objs []*object
	for k, size := range []int64{0, 1, mib - 1, mib, mib + 1, 2*mib - 1, 2*mib + 1, 100 * mib} {
		o := &object{name: fmt.Sprintf("f%d", size), size: size}
		o.path = filepath.Join(src, o.name)
		o.sum = randomFile(t, o.path, size, uint64(k+1))
		objs = append(objs, o)
	}
	byName := map[string]*object{}
	for _, o := range objs {
		byName[o.name] = o
	}

	// the tree: nested directories, an empty file and directory, a symlink,
	// a few MB
	tree := filepath.Join(src, "tree")
	randomFile(t, filepath.Join(tree, "a", "b", "c", "deep.bin"), 3*mib+17, 100)
	randomFile(t, filepath.Join(tree, "a", "mid.bin"), mib, 101)
	randomFile(t, filepath.Join(tree, "top.bin"), 12345, 102)
	randomFile(t, filepath.Join(tree, "a", "b", "empty"), 0, 103)
	if err := os.MkdirAll(filepath.Join(tree, "a", "nothing"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a/mid.bin", filepath.Join(tree, "link")); err != nil {
		t.Fatal(err)
	}

	l := c.leader(others(5))
	t.Logf("node %d leads", l)
	start := time.Now()
	for _, o := range objs {
		o.cid = c.addBoth(1, o.path)
	}
	dirCID := c.addBoth(1, tree)
	t.Logf("added %d files and the tree on node 1 in %v", len(objs), time.Since(start).Round(time.Millisecond))

	t.Run("cat everywhere", func(t *testing.T) {
		for _, i := range others(5, 1) {
			start := time.Now()
			for _, o := range objs {
				sum, n := c.catSum(i, o.cid)
				if n != o.size || sum != o.sum {
					t.Errorf("node %d: cat of %s (%d bytes) gave %d bytes, sha256 match %v", i, o.name, o.size, n, sum == o.sum)
				}
			}
			t.Logf("node %d read everything back in %v", i, time.Since(start).Round(time.Millisecond))
		}
	})

	// the read path pools fragment and block buffers: a buffer handed back
	// too early, or handed out twice, would put one block's bytes into
	// another's read; many reads of different objects at once on every
	// node, whole and by ranges, each checked byte for byte, would see it
	t.Run("parallel reads never mix blocks", func(t *testing.T) {
		var small []*object
		for _, o := range objs {
			if o.size < 100*mib {
				small = append(small, o)
			}
		}
		// and objects of one size, whose blocks fit the same pooled buffers
		for k := range 4 {
			o := &object{name: fmt.Sprintf("same%d", k), size: 2*mib + 4321}
			o.path = filepath.Join(src, o.name)
			o.sum = randomFile(t, o.path, o.size, uint64(200+k))
			o.cid = c.addBoth(1, o.path)
			small = append(small, o)
		}
		ctx := context.Background()
		var wg sync.WaitGroup
		for _, i := range others(5, 1) {
			for w := range 3 {
				wg.Go(func() {
					api := c.api(i)
					rng := rand.New(rand.NewPCG(uint64(i), uint64(w)))
					for round := range 4 {
						for _, k := range rng.Perm(len(small)) {
							o := small[k]
							off, n := int64(0), int64(-1)
							if round%2 == 1 && o.size > 0 {
								off = rng.Int64N(o.size)
								n = rng.Int64N(o.size - off + 1)
							}
							rc, _, err := api.CatRange(ctx, mustCID(t, o.cid), off, n)
							if err != nil {
								t.Errorf("node %d: cat %s: %v", i, o.name, err)
								return
							}
							got, err := io.ReadAll(rc)
							rc.Close()
							if err != nil {
								t.Errorf("node %d: cat %s: %v", i, o.name, err)
								return
							}
							if n < 0 {
								n = o.size - off
							}
							want := make([]byte, n)
							f, err := os.Open(o.path)
							if err != nil {
								t.Error(err)
								return
							}
							f.ReadAt(want, off)
							f.Close()
							if !bytes.Equal(got, want) {
								t.Errorf("node %d: cat %s [%d, +%d): %d bytes, not the file's (want %d)", i, o.name, off, n, len(got), len(want))
								return
							}
						}
					}
				})
			}
		}
		// and one big read meanwhile, so blocks of many sizes share the pools
		wg.Go(func() {
			o := byName["f104857600"]
			if sum, n := c.catSum(2, o.cid); n != o.size || sum != o.sum {
				t.Errorf("node 2: cat of %s during the parallel reads: %d bytes, sha256 match %v", o.name, n, sum == o.sum)
			}
		})
		wg.Wait()
	})

	t.Run("ranges", func(t *testing.T) {
		cases := []struct {
			file           string
			offset, length int64 // length -1: to the end
		}{
			{"f2097153", 0, 1},
			{"f2097153", mib - 1, 2},         // across the first block boundary
			{"f2097153", mib, mib},           // exactly the second block
			{"f2097153", mib - 10, mib + 20}, // three blocks
			{"f2097153", 2*mib - 5, 100},     // past the end: cut short
			{"f2097153", 2 * mib, -1},        // the last byte
			{"f2097153", 2*mib + 1, -1},      // at the end: nothing
			{"f2097153", 5, 0},               // nothing
			{"f1048577", mib, -1},
			{"f1048575", mib - 2, 5},
			{"f104857600", 50*mib - 3, 3*mib + 7},
			{"f104857600", 100*mib - 1, -1},
			{"f1", 0, -1},
			{"f0", 0, -1},
		}
		for k, tc := range cases {
			o := byName[tc.file]
			f, err := os.Open(o.path)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.length
			if want < 0 || tc.offset+want > o.size {
				want = o.size - tc.offset
			}
			b := make([]byte, want)
			if _, err := f.ReadAt(b, tc.offset); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			f.Close()
			i := 2 + k%4
			args := []string{"--offset", strconv.FormatInt(tc.offset, 10)}
			if tc.length >= 0 {
				args = append(args, "--length", strconv.FormatInt(tc.length, 10))
			}
			r := c.fungiOn(i, nil, append(append([]string{"cat"}, args...), o.cid)...)
			if r.code != 0 || r.stdout != string(b) {
				t.Errorf("node %d: cat %v of %s: exit %d, %d bytes (want %d), equal %v: %s", i, args, o.name, r.code, len(r.stdout), len(b), r.stdout == string(b), r.stderr)
			}
		}
	})

	t.Run("tree", func(t *testing.T) {
		var ents []node.Entry
		if err := json.Unmarshal([]byte(c.must(5, "ls", "--json", dirCID)), &ents); err != nil {
			t.Fatal(err)
		}
		local := readTree(t, tree)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name)
			le, ok := local[e.Name]
			kind := map[string]string{"file": "file", "directory": "dir", "symlink": "symlink"}[e.Type]
			if !ok || kind != le.kind {
				t.Errorf("ls entry %+v; locally %+v", e, le)
				continue
			}
			if want := c.must(0, "add", "-n", "-q", filepath.Join(tree, e.Name)); e.CID != want {
				t.Errorf("ls entry %s: CID %s, --only-hash %s", e.Name, e.CID, want)
			}
			if (le.kind == "file" && e.Size != uint64(le.size)) || (le.kind == "symlink" && e.Size != uint64(len(le.target))) {
				t.Errorf("ls entry %s: size %d, locally %+v", e.Name, e.Size, le)
			}
		}
		if want := []string{"a", "link", "top.bin"}; !slices.Equal(names, want) {
			t.Errorf("ls names %v, want %v", names, want)
		}
		// a subdirectory, by the CID of an inner node of the object
		var sub []node.Entry
		for _, e := range ents {
			if e.Name == "a" {
				json.Unmarshal([]byte(c.must(5, "ls", "--json", e.CID)), &sub)
			}
		}
		var subNames []string
		for _, e := range sub {
			subNames = append(subNames, e.Name+":"+e.Type)
		}
		if want := []string{"b:directory", "mid.bin:file", "nothing:directory"}; !slices.Equal(subNames, want) {
			t.Errorf("ls of a/: %v, want %v", subNames, want)
		}

		out := filepath.Join(t.TempDir(), "out")
		c.must(5, "get", "-q", dirCID, "-o", out)
		got := readTree(t, out)
		for p, le := range local {
			if got[p] != le {
				t.Errorf("get: %s is %+v, want %+v", p, got[p], le)
			}
		}
		for p := range got {
			if _, ok := local[p]; !ok {
				t.Errorf("get: extra %s", p)
			}
		}
		// a single file too
		one := filepath.Join(t.TempDir(), "one")
		c.must(5, "get", "-q", byName["f2097151"].cid, "-o", one)
		if b, err := os.ReadFile(one); err != nil || sha256.Sum256(b) != byName["f2097151"].sum {
			t.Errorf("get of a file: %d bytes, %v", len(b), err)
		}
	})

	t.Run("stat", func(t *testing.T) {
		big := byName["f104857600"]
		st := c.statJSON(3, big.cid)
		if st.Root != big.cid || st.Size != uint64(big.size) || st.Blocks != 100 || st.Coding != "16/4" {
			t.Errorf("stat: root %s size %d blocks %d coding %s", st.Root, st.Size, st.Blocks, st.Coding)
		}
		if len(st.Holders) != 5 || st.TolerableNodeLosses != 1 || st.SpareFragments != 4 || len(st.Unreachable) != 0 || len(st.Damaged) != 0 {
			t.Errorf("stat: %d holders, tolerable_node_losses %d, spare %d, unreachable %v, damaged %v",
				len(st.Holders), st.TolerableNodeLosses, st.SpareFragments, st.Unreachable, st.Damaged)
		}
		for _, h := range st.Holders {
			if h.Fragments != 4*100 || h.Missing != 0 || !h.Reachable {
				t.Errorf("stat: holder %s: %+v; want 400 fragments, all there", c.nodeOf(h.ID), h)
			}
		}
		if len(st.Layout) != 100 {
			t.Fatalf("stat: %d layout entries for 100 distinct blocks", len(st.Layout))
		}
		for _, b := range st.Layout {
			per := map[string]int{}
			for _, h := range b.Holders {
				per[h]++
			}
			if len(b.Holders) != 20 || len(per) != 5 || len(b.Missing) != 0 {
				t.Errorf("stat: block %d: %d holders over %d nodes, missing %v", b.Index, len(b.Holders), len(per), b.Missing)
			}
		}
	})

	t.Run("add on a follower", func(t *testing.T) {
		f := 4
		if l == 4 {
			f = 5
		}
		path := filepath.Join(t.TempDir(), "from-follower")
		sum := randomFile(t, path, 3*mib+5, 200)
		cid := c.addBoth(f, path)
		if got, n := c.catSum(1, cid); got != sum || n != 3*mib+5 {
			t.Errorf("cat on node 1 of what node %d added: %d bytes, match %v", f, n, got == sum)
		}
		st := c.statJSON(1, cid)
		if len(st.Holders) != 5 || st.TolerableNodeLosses != 1 {
			t.Errorf("stat of the follower's add: %d holders, tolerable_node_losses %d", len(st.Holders), st.TolerableNodeLosses)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		dir := t.TempDir()
		unknownSmall := filepath.Join(dir, "unknown-small")
		randomFile(t, unknownSmall, 100, 300)
		unknownBig := filepath.Join(dir, "unknown-big")
		randomFile(t, unknownBig, 2*mib+3, 301)
		rawCID := c.must(0, "add", "-n", "-q", unknownSmall) // a raw leaf
		treeCID := c.must(0, "add", "-n", "-q", unknownBig)  // dag-pb
		existing := filepath.Join(dir, "existing")
		os.WriteFile(existing, []byte("keep me"), 0o644)
		fresh := filepath.Join(dir, "fresh")
		f2 := byName["f2097153"]

		cases := []struct {
			what string
			args []string
			want string
		}{
			{"cat of a malformed CID", []string{"cat", "bafynotacid"}, "invalid CID"},
			{"cat of garbage", []string{"cat", "hello world"}, "invalid CID"},
			{"cat of an unknown raw CID", []string{"cat", rawCID}, "not found"},
			{"cat of an unknown CID", []string{"cat", treeCID}, "not found"},
			{"cat past the end", []string{"cat", "--offset", strconv.FormatInt(f2.size+1, 10), f2.cid}, "range"},
			{"cat past the end of an empty file", []string{"cat", "--offset", "1", byName["f0"].cid}, "range"},
			{"cat far past the end", []string{"cat", "--offset", "1000000000000", "--length", "10", f2.cid}, "range"},
			{"cat of a directory", []string{"cat", dirCID}, "directory"},
			{"get into an existing path", []string{"get", "-q", f2.cid, "-o", existing}, "exists"},
			{"get into an existing directory", []string{"get", "-q", dirCID, "-o", dir}, "exists"},
			{"get of an unknown CID", []string{"get", "-q", treeCID, "-o", fresh}, "not found"},
			{"stat of an unknown CID", []string{"stat", treeCID}, "not found"},
			{"stat of an unknown raw CID", []string{"stat", "--json", rawCID}, "not found"},
			{"ls of an unknown CID", []string{"ls", treeCID}, "not found"},
			{"stat of a malformed CID", []string{"stat", "Qm123"}, "invalid CID"},
		}
		for k, tc := range cases {
			i := 2 + k%4
			oneLineError(t, fmt.Sprintf("node %d: %s", i, tc.what), c.fungiOn(i, nil, tc.args...), tc.want)
		}
		if b, _ := os.ReadFile(existing); string(b) != "keep me" {
			t.Errorf("get -o EXISTING changed it: %q", b)
		}
		if _, err := os.Lstat(fresh); err == nil {
			t.Errorf("a failed get left %s behind", fresh)
		}
	})
}

// addRandom writes and adds size random bytes on node i.
func (c *cluster) addRandom(i int, name string, size int64, seed uint64) (string, [32]byte) {
	c.t.Helper()
	path := filepath.Join(c.t.TempDir(), name)
	sum := randomFile(c.t, path, size, seed)
	return c.addBoth(i, path), sum
}

// A reader gets exact bytes from a cluster where one holder serves
// corrupt fragments (every node holds 4 of each block's 20: the 16 others
// are just enough), and counts and logs the holder; stat --verify shows
// its fragments bad. A holder that answers 5 s late does not stall reads:
// the reader hedges to the others.
func TestReadFaultyHolder(t *testing.T) {
	c := upCluster(t, 5, nil)
	corruptCID, corruptSum := c.addRandom(1, "a", 20*mib, 1)
	slowCID, slowSum := c.addRandom(1, "b", 20*mib, 2)
	bad := c.st.Nodes[1].Peer // node 2

	c.fault(2, "corrupt", 0)
	if sum, n := c.catSum(5, corruptCID); sum != corruptSum || n != 20*mib {
		t.Fatalf("cat with a corrupt holder: %d bytes, match %v", n, sum == corruptSum)
	}
	failures := c.metrics(5, "fungi_fragment_failures_total")
	fetched := c.metrics(5, "fungi_fragments_fetched_total")
	t.Logf("node 5's failures by holder: %v; fetched: %v", named(c, failures), named(c, fetched))
	if failures[bad] == 0 {
		t.Errorf("node 5 counted no failure for node 2 (%s)", bad)
	}
	for h, n := range failures {
		if h != bad && n > 0 {
			t.Errorf("node 5 counted %v failures for %s, which serves good fragments", n, c.nodeOf(h))
		}
	}
	log, _ := os.ReadFile(filepath.Join(c.path(5), "daemon.log"))
	warned := false
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "WARN") && strings.Contains(line, "holder="+bad) {
			warned = true
			t.Logf("node 5 logged: %s", line)
			break
		}
	}
	if !warned {
		t.Errorf("node 5's daemon.log has no warning naming node 2 (%s)", bad)
	}

	st := c.statJSON(5, "--verify", corruptCID)
	for _, h := range st.Holders {
		switch {
		case h.ID == bad && (h.Missing != 4*20 || h.Fragments != 0):
			t.Errorf("stat --verify: the corrupt node 2: %+v; want its 80 fragments bad", h)
		case h.ID != bad && (h.Missing != 0 || h.Fragments != 4*20 || !h.Reachable):
			t.Errorf("stat --verify: %s: %+v; want 80 good fragments", c.nodeOf(h.ID), h)
		}
	}
	if len(st.Holders) != 5 || len(st.Damaged) != 20 || st.SpareFragments != 0 || st.TolerableNodeLosses != 0 {
		t.Errorf("stat --verify: %d holders, %d damaged blocks, spare %d, tolerable_node_losses %d; want 5, 20, 0, 0",
			len(st.Holders), len(st.Damaged), st.SpareFragments, st.TolerableNodeLosses)
	}
	for _, b := range st.Layout {
		for _, i := range b.Missing {
			if b.Holders[i] != bad {
				t.Errorf("stat --verify: block %d fragment %d on %s reported missing", b.Index, i, c.nodeOf(b.Holders[i]))
			}
		}
	}
	// node 2 answers, with bad fragments: corrupt, not unreachable
	if len(st.Unreachable) != 0 {
		t.Errorf("stat --verify: unreachable %v; want none (node 2 answers, with corrupt fragments)", st.Unreachable)
	}
	for _, h := range st.Holders {
		if h.ID == bad && (h.Corrupt != 4*20 || !h.Reachable) {
			t.Errorf("stat --verify: the corrupt node 2: %+v; want reachable with 80 corrupt fragments", h)
		}
	}

	// node 3 answers 5 s late: without hedging a read waits 5 s a block
	c.fault(2, "off", 0)
	c.fault(3, "slow", 5*time.Second)
	start := time.Now()
	sum, n := c.catSum(5, slowCID)
	took := time.Since(start)
	t.Logf("20 MiB read on node 5 with node 3 answering 5 s late: %v", took.Round(time.Millisecond))
	if sum != slowSum || n != 20*mib {
		t.Fatalf("cat with a slow holder: %d bytes, match %v", n, sum == slowSum)
	}
	if took > 20*time.Second {
		t.Errorf("the read took %v: the slow holder stalled it", took)
	}
	c.fault(3, "off", 0)
}

// named keys a per-holder map by node name, for logs.
func named(c *cluster, m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[c.nodeOf(k)] = v
	}
	return out
}

// A reader fetches from the holders nearest to it: node 6, with 4/2
// coding on six nodes (one fragment of each block per node), has its own
// fragment and three near holders (2 ms away) for the 4 it needs; the two
// far ones (60 ms) serve few.
func TestReadNearest(t *testing.T) {
	const n = 6
	near, far := 2*time.Millisecond, 60*time.Millisecond
	lat := make([][]time.Duration, n)
	for i := range lat {
		lat[i] = make([]time.Duration, n)
	}
	for j := range n - 1 {
		d := near
		if j >= 3 {
			d = far
		}
		lat[5][j], lat[j][5] = d, d
	}
	t.Setenv(node.DebugAPIEnv, "1")
	begin := time.Now()
	dir := filepath.Join(t.TempDir(), "tn")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := testnet.Up(ctx, testnet.Options{N: n, Dir: dir, Bin: fungiBin, Coding: "4/2", Latency: lat})
	t.Cleanup(func() {
		testnet.Stop(dir, others(n), true) // SIGKILL: a clean shutdown takes seconds per node
		testnet.Down(dir)
	})
	if err != nil {
		t.Fatalf("testnet up: %v\n%s", err, logTail(dir, n))
	}
	c := &cluster{t: t, dir: dir, st: st}
	t.Logf("testnet up in %v", time.Since(begin).Round(time.Millisecond))

	cid, sum := c.addRandom(1, "near", 20*mib, 7)
	if s := c.statJSON(6, cid); s.Coding != "4/2" || len(s.Holders) != 6 {
		t.Fatalf("stat: coding %s, %d holders; want 4/2 on all 6 nodes", s.Coding, len(s.Holders))
	}

	// The reader ranks holders it has not read from yet by node 6's RTTs
	// (a ping on connect, then every 10 s, smoothed): wait until they rank
	// the near nodes ahead of the far ones. The first ping of a connection
	// sometimes comes back 50-100 ms late on a loaded machine (several
	// daemons starting on few cores), and the smoothing takes a few pings
	// to forget it.
	var rtt map[string]float64
	c.waitFor("node 6's RTTs rank the near nodes first", 40*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		peers, err := c.api(6).Peers(ctx)
		if err != nil {
			return err
		}
		rtt = map[string]float64{}
		for _, p := range peers {
			rtt[c.nodeOf(p.PeerID)] = p.RTTMillis
		}
		nearest := 1e9
		for k := 4; k <= 5; k++ {
			if r := rtt["node "+strconv.Itoa(k)]; r < 100 {
				return fmt.Errorf("far node %d at %v ms: the delays are not in effect; RTTs (ms) %v", k, r, rtt)
			} else {
				nearest = min(nearest, r)
			}
		}
		for k := 1; k <= 3; k++ {
			if r := rtt["node "+strconv.Itoa(k)]; r <= 0 || r >= nearest {
				return fmt.Errorf("near node %d at %v ms; RTTs (ms) %v", k, r, rtt)
			}
		}
		return nil
	})
	t.Logf("node 6's RTTs (ms) after %v: %v", time.Since(begin).Round(time.Millisecond), rtt)

	if got, m := c.catSum(6, cid); got != sum || m != 20*mib {
		t.Fatalf("cat on node 6: %d bytes, match %v", m, got == sum)
	}
	fetched := c.metrics(6, "fungi_fragments_fetched_total")
	t.Logf("fragments node 6 fetched, by holder: %v", named(c, fetched))
	var total, fromFar float64
	for h, v := range fetched {
		total += v
		if h == st.Nodes[3].Peer || h == st.Nodes[4].Peer {
			fromFar += v
		}
	}
	if total < 4*20 {
		t.Fatalf("node 6 fetched %v fragments for 20 blocks; want at least 80", total)
	}
	local := fetched[st.Nodes[5].Peer]
	t.Logf("local %v, near %v, far %v of %v", local, total-local-fromFar, fromFar, total)
	if fromFar >= 0.1*total {
		t.Errorf("the far nodes 4 and 5 served %v of %v fragments; want under 10%%", fromFar, total)
	}
}
