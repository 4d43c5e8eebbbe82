package main

// Durability of content on clusters of real daemons: with 16/4 coding on
// 20 nodes every object survives the SIGKILL of any 4 nodes and fails
// cleanly, never with wrong bytes, past that; an add whose leader is
// SIGKILLed midway leaves no half-visible object and, after gc, not one
// fragment beyond the committed objects'; an add cut off midway deletes
// its fragments at once.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/node"
	"github.com/fungistor/fungistor/testnet"
)

// upTestnet is upCluster with every testnet option (coding, a longer wait
// for many daemons on few cores).
func upTestnet(t *testing.T, o testnet.Options, limit time.Duration) *cluster {
	t.Helper()
	o.Dir = filepath.Join(t.TempDir(), "tn")
	o.Bin = fungiBin
	o.Ready = limit
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	st, err := testnet.Up(ctx, o)
	t.Cleanup(func() { testnet.Down(o.Dir) })
	if err != nil {
		t.Fatalf("testnet up: %v\n%s", err, logTail(o.Dir, o.N))
	}
	t.Logf("%d-node testnet up in %v", o.N, time.Since(start).Round(time.Millisecond))
	return &cluster{t: t, dir: o.Dir, st: st}
}

// testSeed is the seed of a test's random choices: $FUNGI_TEST_SEED, or
// a new one, logged so that a failure can be replayed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FUNGI_TEST_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("FUNGI_TEST_SEED: %v", err)
		}
	}
	t.Logf("seed %d (replay with FUNGI_TEST_SEED=%d)", seed, seed)
	return seed
}

func randomBytes(rng *rand.Rand, n int) []byte {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	b := make([]byte, n)
	rand.NewChaCha8(seed).Read(b)
	return b
}

// object is something a test added: a file (data) or a tree (dir).
type object struct {
	name string
	path string // what was added
	data []byte // a file's content; nil for a tree
	root string
}

// peerIDs maps node indices to their peer IDs.
func (c *cluster) peerIDs(nodes []int) []string {
	c.t.Helper()
	var out []string
	for _, i := range nodes {
		id, err := node.PeerID(c.path(i))
		if err != nil {
			c.t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

// readBack reads o from node i and compares it with what was added: a
// file through cat, a tree through get.
func (c *cluster) readBack(i int, o *object) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if o.data == nil {
		out := filepath.Join(c.t.TempDir(), "get")
		if err := c.api(i).Get(ctx, mustCID(c.t, o.root), out, nil); err != nil {
			return fmt.Errorf("get %s (%s) from node %d: %w", o.name, o.root, i, err)
		}
		defer os.RemoveAll(out)
		if err := sameTree(o.path, out); err != nil {
			return fmt.Errorf("get %s (%s) from node %d: %w", o.name, o.root, i, err)
		}
		return nil
	}
	got, err := catAll(ctx, c.api(i), o.root)
	if err != nil {
		if !bytes.HasPrefix(o.data, got) {
			return fmt.Errorf("cat %s from node %d: WRONG BYTES before the error %v", o.name, i, err)
		}
		return fmt.Errorf("cat %s (%s) from node %d: %w", o.name, o.root, i, err)
	}
	if !bytes.Equal(got, o.data) {
		return fmt.Errorf("cat %s (%s) from node %d: WRONG BYTES: %d bytes, want %d", o.name, o.root, i, len(got), len(o.data))
	}
	return nil
}

// catAll reads a whole file through the API: what came back, and the
// error of the request or of the stream.
func catAll(ctx context.Context, a *node.APIClient, root string) ([]byte, error) {
	c, err := node.ParseCID(root)
	if err != nil {
		return nil, err
	}
	rd, _, err := a.CatRange(ctx, c, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

func mustCID(t testing.TB, s string) cid.Cid {
	t.Helper()
	c, err := node.ParseCID(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sameTree checks that got holds the files of want, byte for byte.
func sameTree(want, got string) error {
	list := func(root string) (map[string]string, error) {
		out := map[string]string{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if d.IsDir() {
				out[rel] = "dir"
				return nil
			}
			b, err := os.ReadFile(p)
			out[rel] = string(b)
			return err
		})
		return out, err
	}
	w, err := list(want)
	if err != nil {
		return err
	}
	g, err := list(got)
	if err != nil {
		return err
	}
	for p, b := range w {
		gb, ok := g[p]
		switch {
		case !ok:
			return fmt.Errorf("%s missing", p)
		case gb != b:
			return fmt.Errorf("%s: WRONG BYTES (%d bytes, want %d)", p, len(gb), len(b))
		}
	}
	if len(g) != len(w) {
		return fmt.Errorf("%d entries, want %d", len(g), len(w))
	}
	return nil
}

// fragments is what each node's ZDB holds (repo/stat), and the total.
func (c *cluster) fragments(nodes []int) (map[int]int64, int64, error) {
	per := map[int]int64{}
	var sum int64
	for _, i := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.api(i).RepoStat(ctx)
		cancel()
		if err != nil {
			return nil, 0, fmt.Errorf("repo stat of node %d: %w", i, err)
		}
		per[i] = st.Fragments
		sum += st.Fragments
	}
	return per, sum, nil
}

// runFungi runs the CLI against the repo at path, for at most limit:
// stdout, stderr and the exit code.
func runFungi(t testing.TB, limit time.Duration, path string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, fungiBin, args...)
	cmd.Env = append(os.Environ(), "FUNGI_PATH="+path)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ctx.Err() != nil {
		t.Fatalf("fungi %s did not finish within %v (stderr %q)", strings.Join(args, " "), limit, errb.String())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func pick(rng *rand.Rand, from []int, n int) []int {
	p := slices.Clone(from)
	rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	p = p[:n]
	slices.Sort(p)
	return p
}

// Twenty nodes, 16/4 coding: every object is spread one fragment per node
// and per block over all twenty; any four nodes SIGKILLed (random choices,
// voters included), every object still reads byte-exact from any survivor
// and stat names the four as unreachable with no loss left to tolerate;
// with five down, reads fail with "unavailable" and never return wrong
// bytes. Small objects (at most node.InlineLeafMax bytes) are in the
// replicated metadata: no holder, every member keeps them, so they read
// whatever is down.
func TestDurability20(t *testing.T) {
	if testing.Short() {
		t.Skip("20 daemons")
	}
	began := time.Now()
	const n, lost = 20, 4
	c := upTestnet(t, testnet.Options{N: n, Coding: "16/4"}, 3*time.Minute)
	all := others(n)
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	dir := t.TempDir()
	var objs []*object
	for _, f := range []struct {
		name string
		size int
	}{{"one-byte", 1}, {"three-mib-plus-one", 3<<20 + 1}, {"twenty-mib", 20 << 20},
		{"empty", 0}, {"threshold-1", node.InlineLeafMax - 1}, {"threshold", node.InlineLeafMax}, {"threshold+1", node.InlineLeafMax + 1}} {
		o := &object{name: f.name, path: filepath.Join(dir, f.name), data: randomBytes(rng, f.size)}
		if err := os.WriteFile(o.path, o.data, 0o644); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	tree := filepath.Join(dir, "tree")
	for p, size := range map[string]int{"a.txt": 10, "sub/b.bin": 3 << 19, "sub/deeper/c": 5, "sub/deeper/empty": 0} {
		p = filepath.Join(tree, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, randomBytes(rng, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs = append(objs, &object{name: "tree", path: tree})
	big := objs[2]
	inline := func(o *object) bool { return o.data != nil && len(o.data) <= node.InlineLeafMax }

	for k, o := range objs {
		on := all[(k*7+3)%n]
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		start := time.Now()
		res, err := c.api(on).Add(ctx, o.path, node.AddOptions{})
		cancel()
		if err != nil {
			t.Fatalf("add %s on node %d: %v\n%s", o.name, on, err, logTail(c.dir, n))
		}
		o.root = res.Root
		t.Logf("added %s on node %d in %v: %s, %d blocks on %d nodes (%s)", o.name, on,
			time.Since(start).Round(time.Millisecond), o.root, res.Blocks, res.Nodes, res.Tolerance)
	}
	stat := func(i int, o *object) (*node.Stat, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return c.api(i).Stat(ctx, mustCID(t, o.root), false)
	}
	asked := 0
	c.waitFor("every object on all twenty nodes, four losses tolerable", 30*time.Second, func() error {
		for _, o := range objs {
			asked++
			st, err := stat(asked%n+1, o)
			if err != nil {
				return err
			}
			if inline(o) {
				if len(st.Holders) != 0 || st.Inline != 1 || st.TolerableNodeLosses != n-1 || st.Health != "full" {
					return fmt.Errorf("stat %s (inline): %d holders, %d inline blocks, tolerable_node_losses %d, health %s",
						o.name, len(st.Holders), st.Inline, st.TolerableNodeLosses, st.Health)
				}
				continue
			}
			if len(st.Holders) != n || st.TolerableNodeLosses != lost || len(st.Unreachable) != 0 || len(st.Damaged) != 0 {
				return fmt.Errorf("stat %s: %d holders, tolerable_node_losses %d, unreachable %v, damaged %v",
					o.name, len(st.Holders), st.TolerableNodeLosses, st.Unreachable, st.Damaged)
			}
		}
		return nil
	})
	if st, err := stat(1, big); err != nil || st.Blocks != 20 || len(st.Layout) != 20 {
		t.Fatalf("stat of the 20 MiB file: %+v %v", st, err)
	}

	readers := map[int]bool{}
	for round := 1; round <= 3; round++ {
		killed := pick(rng, all, lost)
		live := others(n, killed...)
		reader := live[rng.IntN(len(live))]
		readers[reader] = true
		t.Logf("round %d: SIGKILL nodes %v, read from node %d", round, killed, reader)
		if err := testnet.Stop(c.dir, killed, true); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for _, o := range objs {
			if err := c.readBack(reader, o); err != nil {
				t.Fatalf("round %d (nodes %v down): %v\n%s", round, killed, err, logTail(c.dir, n))
			}
		}
		t.Logf("round %d: every object byte-exact from node %d in %v", round, reader, time.Since(start).Round(time.Millisecond))
		statStart := time.Now()
		st, err := stat(reader, big)
		if err != nil {
			t.Fatalf("round %d: stat of the 20 MiB file from node %d with nodes %v SIGKILLed: no answer after %v: %v\n%s",
				round, reader, killed, time.Since(statStart).Round(time.Millisecond), err, logTail(c.dir, n))
		}
		t.Logf("round %d: stat from node %d answered in %v", round, reader, time.Since(statStart).Round(time.Millisecond))
		want := c.peerIDs(killed)
		got := slices.Sorted(slices.Values(st.Unreachable))
		slices.Sort(want)
		if !slices.Equal(got, want) || st.TolerableNodeLosses != 0 || st.SpareFragments != 0 {
			t.Fatalf("round %d: stat from node %d with nodes %v down: unreachable %v (want %v), tolerable_node_losses %d, spare_fragments %d",
				round, reader, killed, got, want, st.TolerableNodeLosses, st.SpareFragments)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		err = testnet.Start(ctx, c.dir, killed)
		cancel()
		if err != nil {
			t.Fatalf("round %d: restart %v: %v", round, killed, err)
		}
		// back means serving fragments and caught up with the cluster's
		// metadata: a restarted node learns what its own raft log holds
		// only from a leader, and the next round may leave none
		c.waitFor(fmt.Sprintf("round %d: the restarted nodes serve their fragments and know every object", round), 60*time.Second, func() error {
			st, err := stat(reader, big)
			if err != nil {
				return err
			}
			if len(st.Unreachable) != 0 || st.TolerableNodeLosses != lost {
				return fmt.Errorf("unreachable %v, tolerable_node_losses %d", st.Unreachable, st.TolerableNodeLosses)
			}
			for _, i := range killed {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				pins, err := c.api(i).Pins(ctx)
				cancel()
				if err != nil {
					return err
				}
				for _, o := range objs {
					if !slices.Contains(pins, o.root) {
						return fmt.Errorf("restarted node %d does not know %s yet", i, o.name)
					}
				}
			}
			return nil
		})
		t.Logf("round %d: nodes %v back after %v", round, killed, time.Since(start).Round(time.Millisecond))
	}

	// one loss too many: every block is short of one fragment
	killed := pick(rng, all, lost+1)
	// a node that has not read the file: a reader keeps decoded blocks in
	// its cache, which would rightly answer without the holders
	live := slices.DeleteFunc(others(n, killed...), func(i int) bool { return readers[i] })
	reader := live[rng.IntN(len(live))]
	t.Logf("SIGKILL nodes %v, read from node %d: must fail", killed, reader)
	if err := testnet.Stop(c.dir, killed, true); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runFungi(t, 90*time.Second, c.path(reader), "cat", big.root)
	if code == 0 || !strings.Contains(stderr, "unavailable") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("fungi cat of the 20 MiB file with %d nodes down: exit %d, stderr %q: want one line saying unavailable", lost+1, code, stderr)
	}
	if !bytes.HasPrefix(big.data, []byte(out)) {
		t.Fatalf("fungi cat with %d nodes down wrote %d WRONG BYTES", lost+1, len(out))
	}
	t.Logf("fungi cat: exit %d after %d bytes: %s", code, len(out), strings.TrimSpace(stderr))
	for _, o := range objs {
		if inline(o) {
			if err := c.readBack(reader, o); err != nil {
				t.Fatalf("read %s (inline) with %d nodes down: %v", o.name, lost+1, err)
			}
			if st, err := stat(reader, o); err != nil || st.Health != "full" {
				t.Fatalf("stat %s (inline) with %d nodes down: %+v %v", o.name, lost+1, st, err)
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var err error
		var got []byte
		if o.data == nil {
			err = c.api(reader).Get(ctx, mustCID(t, o.root), filepath.Join(t.TempDir(), "get"), nil)
		} else {
			got, err = catAll(ctx, c.api(reader), o.root)
		}
		cancel()
		if err == nil || !strings.Contains(err.Error(), "unavailable") {
			t.Fatalf("read %s with %d nodes down: %d bytes, %v; want an error saying unavailable", o.name, lost+1, len(got), err)
		}
		if !bytes.HasPrefix(o.data, got) {
			t.Fatalf("read %s with %d nodes down: %d WRONG BYTES", o.name, lost+1, len(got))
		}
	}
	st, err := stat(reader, big)
	if err != nil || len(st.Unreachable) != lost+1 || st.SpareFragments != -1 || st.TolerableNodeLosses != 0 {
		t.Fatalf("stat with %d nodes down: %+v %v", lost+1, st, err)
	}
	t.Logf("TestDurability20 took %v", time.Since(began).Round(time.Millisecond))
}

// A large add goes through a follower; the leader is SIGKILLed while it
// disperses. The add either completes after the failover (the client
// retries) or fails with one line, and a retry completes; the object reads
// byte-exact from every survivor and no half object is ever listed. Once
// the killed node is back and gc ran everywhere, the nodes hold exactly
// the committed blocks' fragments: none of the dead add's is left.
func TestAddLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("a 150 MiB add on a 5-node testnet")
	}
	began := time.Now()
	const n = 5
	c := upTestnet(t, testnet.Options{N: n}, 2*time.Minute)
	all := others(n)
	c.waitFor("cluster formed", 20*time.Second, func() error { return c.converged(all, n) })
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	l := c.leader(all)
	followers := others(n, l)
	via := followers[rng.IntN(len(followers))]

	data := randomBytes(rng, 150<<20)
	file := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runFungi(t, time.Minute, c.path(via), "add", "--only-hash", "-q", file)
	want := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(want, "bafy") {
		t.Fatalf("add --only-hash: exit %d %q %q", code, out, stderr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	base, err := c.api(l).RepoStat(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	add := exec.Command(fungiBin, "add", "-q", file)
	add.Env = append(os.Environ(), "FUNGI_PATH="+c.path(via))
	var addOut, addErr bytes.Buffer
	add.Stdout, add.Stderr = &addOut, &addErr
	if err := add.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- add.Wait() }()
	t.Cleanup(func() { add.Process.Kill() })
	started := time.Now()
	// the leader holds its share of every block (4 of 20 fragments on 5
	// nodes): kill it once some ten blocks are out
	var atKill int64
	c.waitFor("the leader disperses", time.Minute, func() error {
		select {
		case err := <-done:
			c.t.Fatalf("the add ended (%v) before the leader was killed: %s %s", err, addOut.String(), addErr.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := c.api(l).RepoStat(ctx)
		if err != nil {
			return err
		}
		if atKill = st.Fragments - base.Fragments; atKill < 40 {
			return fmt.Errorf("%d fragments on the leader", atKill)
		}
		return nil
	})
	if err := testnet.Stop(c.dir, []int{l}, true); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILLed the leader (node %d) %v into the add through node %d, with %d new fragments on it",
		l, time.Since(started).Round(time.Millisecond), via, atKill)
	survivors := others(n, l)
	var addExit error
	select {
	case addExit = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("the add hangs after the leader died\n%s", logTail(c.dir, n))
	}
	root := strings.TrimSpace(addOut.String())
	if addExit == nil {
		t.Logf("the add succeeded after the failover, %v after it began", time.Since(started).Round(time.Millisecond))
		if root != want {
			t.Fatalf("the add printed %q, want the --only-hash CID %s", root, want)
		}
	} else {
		e := addErr.String()
		if strings.Count(strings.TrimSpace(e), "\n") != 0 || !strings.HasPrefix(e, "fungi ") || root != "" {
			t.Fatalf("the failed add: %v, stdout %q, stderr %q: want one line and a non-zero exit", addExit, root, e)
		}
		t.Logf("the add failed (%v): %s", addExit, strings.TrimSpace(e))
		// nothing half-added is visible before the retry (the first
		// attempt may have committed as the leader died: then it is
		// complete)
		for _, i := range survivors {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			pins, err := c.api(i).Pins(ctx)
			cancel()
			if err != nil || len(pins) > 1 || (len(pins) == 1 && pins[0] != want) {
				t.Fatalf("node %d lists %v (%v) after the failed add", i, pins, err)
			}
			if len(pins) == 1 {
				if err := c.readBack(i, &object{name: "big.bin", path: file, data: data, root: want}); err != nil {
					t.Fatalf("the failed add's object is listed: %v", err)
				}
			}
		}
		retryOn := survivors[rng.IntN(len(survivors))]
		start := time.Now()
		out, stderr, code := runFungi(t, 3*time.Minute, c.path(retryOn), "add", "-q", file)
		if code != 0 || strings.TrimSpace(out) != want {
			t.Fatalf("retry of the add on node %d: exit %d, %q %q; want %s\n%s", retryOn, code, out, stderr, want, logTail(c.dir, n))
		}
		t.Logf("the retry on node %d succeeded in %v", retryOn, time.Since(start).Round(time.Millisecond))
	}
	obj := &object{name: "big.bin", path: file, data: data, root: want}
	newLeader := c.leader(survivors)
	t.Logf("new leader: node %d", newLeader)
	for _, i := range survivors {
		if err := c.readBack(i, obj); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pins, err := c.api(i).Pins(ctx)
		cancel()
		if err != nil || !slices.Equal(pins, []string{want}) {
			t.Fatalf("node %d lists %v (%v), want only the complete object %s", i, pins, err, want)
		}
	}

	ctx, cancel = context.WithTimeout(context.Background(), 90*time.Second)
	err = testnet.Start(ctx, c.dir, []int{l})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor("the cluster converges with the old leader back", time.Minute, func() error { return c.converged(all, n) })
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	st, err := c.api(l).Stat(ctx, mustCID(t, want), false)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Damaged) != 0 || len(st.Unreachable) != 0 {
		t.Fatalf("stat after the restart: damaged %v, unreachable %v", st.Damaged, st.Unreachable)
	}
	holders := map[string]int{}
	for _, h := range st.Holders {
		holders[h.ID] = h.Fragments
	}
	for _, i := range all {
		id := c.peerIDs([]int{i})[0]
		t.Logf("node %d holds %d of the object's fragments by its layout", i, holders[id])
	}
	const fragsPerBlock = 20 // the default 16/4
	expected := int64(len(st.Layout) * fragsPerBlock)
	if len(st.Layout) != (len(data)+(1<<20)-1)>>20 {
		t.Fatalf("%d distinct blocks, want %d", len(st.Layout), (len(data)+(1<<20)-1)>>20)
	}
	per, before, err := c.fragments(all)
	if err != nil {
		t.Fatal(err)
	}
	if before > expected {
		t.Logf("before gc: %d fragments %v, %d beyond the object's %d: the dead add's partial fragments", before, per, before-expected, expected)
	} else {
		t.Logf("before gc: %d fragments %v: the dead add's partial fragments were already gone", before, per)
	}
	for _, i := range all {
		c.waitFor(fmt.Sprintf("gc on node %d", i), 30*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, err := c.api(i).GC(ctx, 0)
			if err == nil {
				t.Logf("gc on node %d: %+v", i, *res)
			}
			return err
		})
	}
	per, after, err := c.fragments(all)
	if err != nil {
		t.Fatal(err)
	}
	if after != expected {
		t.Fatalf("after gc everywhere: %d fragments %v, want %d (%d blocks × %d)", after, per, expected, len(st.Layout), fragsPerBlock)
	}
	if err := c.readBack(l, obj); err != nil {
		t.Fatal(err)
	}
	t.Logf("after gc: %d fragments %v; TestAddLeaderKilled took %v", after, per, time.Since(began).Round(time.Millisecond))
}

// An upload cut off after some blocks were dispersed: no object appears,
// and the leader deletes what it stored at once, without gc, whether the
// upload came to it or through a follower.
func TestAddFailedCleanup(t *testing.T) {
	const n = 5
	c := upTestnet(t, testnet.Options{N: n}, 2*time.Minute)
	all := others(n)
	c.waitFor("cluster formed", 20*time.Second, func() error { return c.converged(all, n) })
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	l := c.leader(all)

	// an object that stays, so that "back to before" is not just "empty"
	keep := filepath.Join(t.TempDir(), "keep.bin")
	if err := os.WriteFile(keep, randomBytes(rng, 2<<20+7), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	res, err := c.api(1).Add(ctx, keep, node.AddOptions{})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	kept := res.Root
	base, baseSum, err := c.fragments(all)
	if err != nil {
		t.Fatal(err)
	}
	followers := others(n, l)
	for _, tc := range []struct {
		name string
		to   int
		raw  bool // the file as the body (what the CLI sends), not multipart
	}{{"to the leader", l, false}, {"through a follower", followers[rng.IntN(len(followers))], false},
		{"to the leader, the file as the body", l, true}} {
		func() {
			t.Logf("an upload cut off %s (node %d)", tc.name, tc.to)
			stored := int64(0)
			// the body: 5 MiB, then (once three blocks' fragments are
			// out) an error
			body := io.MultiReader(bytes.NewReader(randomBytes(rng, 5<<20)), readerFunc(func([]byte) (int, error) {
				deadline := time.Now().Add(30 * time.Second)
				for time.Now().Before(deadline) {
					if _, sum, err := c.fragments(all); err == nil {
						if stored = sum - baseSum; stored >= 3*20 {
							break
						}
					}
					time.Sleep(50 * time.Millisecond)
				}
				return 0, errors.New("upload cut off")
			}))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var req *http.Request
			if tc.raw {
				req, err = http.NewRequestWithContext(ctx, "POST", "http://"+c.st.Nodes[tc.to-1].API+"/api/v0/add?name=cut.bin", body)
				if err != nil {
					t.Fatal(err)
				}
				req.ContentLength = 8 << 20 // more than comes
				req.Header.Set("Content-Type", "application/octet-stream")
			} else {
				mfr := files.NewMultiFileReader(files.NewMapDirectory(map[string]files.Node{"cut.bin": files.NewReaderFile(body)}), true, false)
				req, err = http.NewRequestWithContext(ctx, "POST", "http://"+c.st.Nodes[tc.to-1].API+"/api/v0/add", mfr)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "multipart/form-data; boundary="+mfr.Boundary())
			}
			resp, err := http.DefaultClient.Do(req)
			var reply []byte
			if err == nil {
				reply, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil {
					err = fmt.Errorf("status %s, trailer %q", resp.Status, resp.Trailer.Get("X-Stream-Error"))
				}
			}
			if bytes.Contains(reply, []byte(`"root"`)) {
				t.Fatalf("the cut-off upload was added: %s", reply)
			}
			t.Logf("cut-off upload on node %d: %v (%d fragments stored before the cut)", tc.to, err, stored)
			if stored == 0 {
				t.Fatalf("no fragment was stored before the cut\n%s", logTail(c.dir, n))
			}
			c.waitFor("the failed add's fragments deleted, without gc", 30*time.Second, func() error {
				per, _, err := c.fragments(all)
				if err != nil {
					return err
				}
				for _, i := range all {
					if per[i] != base[i] {
						return fmt.Errorf("node %d holds %d fragments, %d before the add (all: %v, before %v)", i, per[i], base[i], per, base)
					}
				}
				return nil
			})
			for _, i := range all {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				pins, err := c.api(i).Pins(ctx)
				cancel()
				if err != nil || !slices.Equal(pins, []string{kept}) {
					t.Fatalf("node %d lists %v (%v), want only %s", i, pins, err, kept)
				}
			}
		}()
	}
	if err := c.converged(all, n); err != nil {
		t.Fatal(err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
