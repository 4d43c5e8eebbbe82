package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fungistor/fungistor/node"
	"github.com/fungistor/fungistor/testnet"
)

// cluster is a testnet of real daemon processes, for the cluster tests.
type cluster struct {
	t   *testing.T
	dir string
	st  *testnet.State
}

func upCluster(t *testing.T, n int, configure func(i int, c *node.Config)) *cluster {
	t.Helper()
	t.Setenv(node.DebugAPIEnv, "1") // the daemons inherit it: partitions, snapshots
	dir := filepath.Join(t.TempDir(), "tn")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := testnet.Up(ctx, testnet.Options{N: n, Dir: dir, Bin: fungiBin, Configure: configure})
	t.Cleanup(func() { testnet.Down(dir) })
	if err != nil {
		t.Fatalf("testnet up: %v\n%s", err, logTail(dir, n))
	}
	return &cluster{t: t, dir: dir, st: st}
}

// logTail is the end of every node's daemon log, for failure messages.
func logTail(dir string, n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		log, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d", i), "daemon.log"))
		if len(log) > 3000 {
			log = log[len(log)-3000:]
		}
		fmt.Fprintf(&b, "--- node %d\n%s\n", i, log)
	}
	return b.String()
}

func (c *cluster) api(i int) *node.APIClient { return node.NewAPIClient(c.st.Nodes[i-1].API) }

func (c *cluster) path(i int) string { return c.st.Nodes[i-1].Path }

func (c *cluster) status(i int) (*node.ClusterStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.api(i).ClusterStatus(ctx)
}

// waitFor polls cond until it holds or the time is up.
func (c *cluster) waitFor(what string, limit time.Duration, cond func() error) {
	c.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: %v\n%s", what, err, logTail(c.dir, len(c.st.Nodes)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leader returns the index of the node the live nodes agree leads.
func (c *cluster) leader(live []int) int {
	c.t.Helper()
	var idx int
	c.waitFor("one leader all agree on", 20*time.Second, func() error {
		leader := ""
		for _, i := range live {
			st, err := c.status(i)
			if err != nil {
				return err
			}
			if st.Leader == "" || (leader != "" && st.Leader != leader) {
				return fmt.Errorf("node %d sees leader %q", i, st.Leader)
			}
			leader = st.Leader
			if st.Role == "leader" {
				idx = i
			}
		}
		if idx == 0 {
			return fmt.Errorf("the leader %s is not among %v", leader, live)
		}
		return nil
	})
	return idx
}

// converged checks that the live nodes hold the same metadata: members,
// objects and pins, and that no write was applied twice.
func (c *cluster) converged(live []int, members int) error {
	var first []string
	for _, i := range live {
		st, err := c.status(i)
		if err != nil {
			return err
		}
		md := st.Metadata
		if md.Members != members {
			return fmt.Errorf("node %d: %d members, want %d", i, md.Members, members)
		}
		if md.Ops["put-manifest"] != uint64(md.Manifests) {
			return fmt.Errorf("node %d: %d manifest writes applied for %d manifests: a write was applied twice", i, md.Ops["put-manifest"], md.Manifests)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pins, err := c.api(i).Pins(ctx)
		cancel()
		if err != nil {
			return err
		}
		slices.Sort(pins)
		if first == nil {
			first = pins
		} else if !slices.Equal(first, pins) {
			return fmt.Errorf("node %d holds %d pins, node %d %d", i, len(pins), live[0], len(first))
		}
	}
	return nil
}

func others(n int, except ...int) []int {
	var out []int
	for i := 1; i <= n; i++ {
		if !slices.Contains(except, i) {
			out = append(out, i)
		}
	}
	return out
}

// writer adds small distinct files through the nodes' APIs, each add
// committing a manifest (and a pin) through raft, and records what was
// acknowledged.
type writer struct {
	c     *cluster
	dir   string
	seq   atomic.Int64
	mu    sync.Mutex
	acked []string
	fails atomic.Int64
}

func (w *writer) add(i int) error {
	n := w.seq.Add(1)
	f := filepath.Join(w.dir, fmt.Sprintf("f%d", n))
	if err := os.WriteFile(f, []byte(fmt.Sprintf("metadata write %d of %s", n, w.dir)), 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := w.c.api(i).Add(ctx, f, node.AddOptions{})
	if err != nil {
		w.fails.Add(1)
		return err
	}
	w.mu.Lock()
	w.acked = append(w.acked, res.Root)
	w.mu.Unlock()
	return nil
}

// stream runs writers against the nodes in targets until stop is closed.
func (w *writer) stream(targets func() []int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for k := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := k; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				ts := targets()
				w.add(ts[j%len(ts)])
			}
		}()
	}
	return &wg
}

// allAcked checks that every acknowledged object is pinned on node i.
func (w *writer) allAcked(i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pins, err := w.c.api(i).Pins(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.acked {
		if !slices.Contains(pins, r) {
			return fmt.Errorf("node %d lacks acknowledged write %s", i, r)
		}
	}
	return nil
}

func snapshots(repo string) int {
	ents, _ := os.ReadDir(filepath.Join(repo, "raft", "snapshots"))
	n := 0
	for _, e := range ents {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") {
			n++
		}
	}
	return n
}

// A five-node cluster of daemons: it forms with the same membership and
// metadata everywhere; the leader is SIGKILLed during a stream of metadata
// writes and every acknowledged write survives, once; a node restarted
// with its repo catches up, from a snapshot once the log was compacted;
// cluster status tells the truth about a dead node.
func TestClusterFailover(t *testing.T) {
	c := upCluster(t, 5, func(_ int, cfg *node.Config) { cfg.Cluster.TrailingLogs = 8 })
	all := others(5)
	c.waitFor("same membership everywhere", 20*time.Second, func() error { return c.converged(all, 5) })
	for _, i := range all {
		st, err := c.status(i)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Voters) != 3 || len(st.Nonvoters) != 2 || !st.Healthy {
			t.Fatalf("node %d: voters %v, non-voters %v, healthy %v", i, st.Voters, st.Nonvoters, st.Healthy)
		}
	}

	w := &writer{c: c, dir: t.TempDir()}
	old := c.leader(all)
	var live atomic.Value
	live.Store(all)
	stop := make(chan struct{})
	wg := w.stream(func() []int { return live.Load().([]int) }, stop)
	time.Sleep(1500 * time.Millisecond)
	if err := testnet.Stop(c.dir, []int{old}, true); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	survivors := others(5, old)
	live.Store(survivors)
	l := c.leader(survivors)
	t.Logf("new leader (node %d) agreed on %v after the SIGKILL", l, time.Since(killed).Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond) // writes after the failover too
	close(stop)
	wg.Wait()
	t.Logf("%d writes acknowledged, %d failed", len(w.acked), w.fails.Load())
	if len(w.acked) < 20 {
		t.Fatalf("only %d writes acknowledged", len(w.acked))
	}
	for _, i := range survivors {
		c.waitFor(fmt.Sprintf("node %d holds every acknowledged write", i), 10*time.Second, func() error { return w.allAcked(i) })
	}
	c.waitFor("survivors agree", 10*time.Second, func() error { return c.converged(survivors, 5) })

	// The status tells the truth about the dead node, from every survivor.
	victimID, _ := node.PeerID(c.path(old))
	c.waitFor("status shows the killed node down", 10*time.Second, func() error {
		for _, i := range survivors {
			st, err := c.status(i)
			if err != nil {
				return err
			}
			for _, s := range st.Servers {
				if s.ID == victimID && s.Healthy {
					return fmt.Errorf("node %d calls the killed node healthy", i)
				}
			}
			if !st.Healthy {
				return fmt.Errorf("node %d: cluster unhealthy after losing one node", i)
			}
		}
		return nil
	})

	// A follower stops; writes go on and the leader compacts its log; the
	// follower, restarted with its repo, catches up from a snapshot.
	// (a non-voter: with one voter dead, stopping another would cost the
	// quorum until the policy replaces the dead one after 30 s)
	lst, err := c.status(l)
	if err != nil {
		t.Fatal(err)
	}
	follower := 0
	for _, i := range survivors {
		if id, _ := node.PeerID(c.path(i)); slices.Contains(lst.Nonvoters, id) {
			follower = i
		}
	}
	if follower == 0 {
		t.Fatalf("no non-voter among the survivors: %+v", lst)
	}
	before := snapshots(c.path(follower))
	if err := testnet.Stop(c.dir, []int{follower}, false); err != nil {
		t.Fatal(err)
	}
	up := others(5, old, follower)
	for range 30 {
		if err := w.add(up[int(w.seq.Load())%len(up)]); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post("http://"+c.st.Nodes[l-1].API+"/api/v0/debug/snapshot", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("snapshot: %v %v\n%s", err, resp, logTail(c.dir, 5))
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := testnet.Start(ctx, c.dir, []int{follower, old}); err != nil {
		t.Fatal(err)
	}
	c.waitFor("restarted nodes catch up", 30*time.Second, func() error {
		if err := w.allAcked(follower); err != nil {
			return err
		}
		if err := w.allAcked(old); err != nil {
			return err
		}
		return c.converged(all, 5)
	})
	if got := snapshots(c.path(follower)); got <= before {
		t.Fatalf("the restarted follower has %d snapshots (had %d): it did not catch up from one", got, before)
	}
	c.waitFor("all five healthy again", 20*time.Second, func() error {
		for _, i := range all {
			st, err := c.status(i)
			if err != nil {
				return err
			}
			for _, s := range st.Servers {
				if !s.Healthy {
					return fmt.Errorf("node %d sees %s down", i, s.ID)
				}
			}
			if len(st.Servers) != 5 || len(st.Voters) != 3 {
				return fmt.Errorf("node %d: %d servers, voters %v", i, len(st.Servers), st.Voters)
			}
		}
		return nil
	})
}

// A minority partition (the leader and one non-voter, cut off at the
// connection level) cannot commit; the majority elects a leader and goes
// on; after healing, everyone converges on the majority's history.
func TestClusterPartition(t *testing.T) {
	c := upCluster(t, 5, nil)
	all := others(5)
	c.waitFor("cluster formed", 20*time.Second, func() error { return c.converged(all, 5) })
	l := c.leader(all)
	st, err := c.status(l)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int]string{}
	for _, i := range all {
		ids[i], _ = node.PeerID(c.path(i))
	}
	nonvoter := 0
	for _, i := range all {
		if slices.Contains(st.Nonvoters, ids[i]) {
			nonvoter = i
			break
		}
	}
	minority := []int{l, nonvoter}
	majority := others(5, minority...)
	debug := func(i int, op string, peers []int) {
		t.Helper()
		q := url.Values{}
		for _, p := range peers {
			q.Add("arg", ids[p])
		}
		resp, err := http.Post("http://"+c.st.Nodes[i-1].API+"/api/v0/debug/"+op+"?"+q.Encode(), "", nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s on node %d: %v %v", op, i, err, resp)
		}
		resp.Body.Close()
	}
	for _, i := range minority {
		debug(i, "block", majority)
	}
	for _, i := range majority {
		debug(i, "block", minority)
	}
	w := &writer{c: c, dir: t.TempDir()}
	minorityErr := make(chan error, 1)
	go func() { minorityErr <- w.add(nonvoter) }()
	newLeader := c.leader(majority)
	for _, i := range majority {
		if err := w.add(i); err != nil {
			t.Fatalf("the majority cannot commit: %v", err)
		}
	}
	if err := <-minorityErr; err == nil {
		t.Fatal("the minority committed a write")
	} else {
		t.Logf("minority write refused: %v", err)
	}
	if st, _ := c.status(l); st != nil && st.Role == "leader" {
		t.Fatal("the old leader still leads its minority")
	}
	for _, i := range minority {
		debug(i, "unblock", majority)
	}
	for _, i := range majority {
		debug(i, "unblock", minority)
	}
	if got := c.leader(all); got != newLeader {
		t.Logf("leadership moved on to node %d after healing", got)
	}
	c.waitFor("convergence after healing", 30*time.Second, func() error {
		for _, i := range all {
			if err := w.allAcked(i); err != nil {
				return err
			}
		}
		return c.converged(all, 5)
	})
	pins, _ := c.api(l).Pins(context.Background())
	if len(pins) != len(w.acked) {
		t.Fatalf("%d pins after healing, want the majority's %d: the minority's write leaked", len(pins), len(w.acked))
	}
}

// A peer without the cluster secret is refused, and bad input gives one
// line and a non-zero exit, with the cluster unharmed. With the right
// secret the same node joins, then leaves.
func TestClusterAdmission(t *testing.T) {
	c := upCluster(t, 3, nil)
	all := others(3)
	c.waitFor("cluster formed", 20*time.Second, func() error { return c.converged(all, 3) })
	id1, _ := node.PeerID(c.path(1))
	var boot string
	for _, a := range c.mustID(1).Addrs {
		if strings.Contains(a, "/tcp/") {
			boot = a
		}
	}
	if !strings.Contains(boot, id1) {
		t.Fatalf("no tcp address with /p2p/ for node 1: %q", boot)
	}
	secret, _ := os.ReadFile(filepath.Join(c.path(1), "secret"))
	right := strings.TrimSpace(string(secret))
	wrong := strings.Repeat("ab", 32)

	repo := filepath.Join(t.TempDir(), "stranger")
	env := append(os.Environ(), "FUNGI_PATH="+repo)
	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(fungiBin, args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	oneLine := func(what, stderr string, code int) {
		t.Helper()
		if code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.HasPrefix(stderr, "fungi ") {
			t.Fatalf("%s: exit %d, stderr %q: want one line and a non-zero exit", what, code, stderr)
		}
	}
	listen := "--listen=/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1"
	_, e, code := run("init", listen, "--join", "/ip4/127.0.0.1/tcp/1/p2p/notapeer", "--secret", wrong)
	oneLine("init with a bad multiaddr", e, code)
	_, e, code = run("init", listen, "--join", boot)
	oneLine("init --join without a secret", e, code)
	if _, e, code = run("init", listen, "--join", boot, "--secret", wrong); code != 0 {
		t.Fatalf("init: %s", e)
	}
	// a malformed config stops the daemon with one line
	cfgPath := filepath.Join(repo, "config.json")
	good, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, []byte(`{"api": "127.0.0.1:0", "p2p": {"listen": ["nonsense"]}}`), 0o644)
	_, e, code = run("daemon")
	oneLine("daemon with a bad listen address", e, code)
	os.WriteFile(cfgPath, []byte(`{"apii": "127.0.0.1:0"}`), 0o644)
	_, e, code = run("daemon")
	oneLine("daemon with a misspelt setting", e, code)
	os.WriteFile(cfgPath, []byte(`{"api": `), 0o644)
	_, e, code = run("daemon")
	oneLine("daemon with truncated JSON", e, code)
	os.WriteFile(cfgPath, good, 0o644)

	// the stranger's daemon tries to join with the wrong secret: refused
	d := exec.Command(fungiBin, "daemon", "--api", "127.0.0.1:0", "--gateway", "127.0.0.1:0")
	d.Env = env
	dlogPath := filepath.Join(t.TempDir(), "stranger.log")
	dlog, err := os.Create(dlogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer dlog.Close()
	d.Stdout, d.Stderr = dlog, dlog
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { d.Process.Kill(); d.Wait() }()
	c.waitFor("the stranger's daemon starts", 20*time.Second, func() error {
		if node.APIAddr(repo) == "" {
			return fmt.Errorf("no API yet")
		}
		return nil
	})
	time.Sleep(2 * time.Second) // several join attempts
	if log, _ := os.ReadFile(dlogPath); !strings.Contains(string(log), "join refused") {
		t.Fatalf("no refused join in the stranger's log:\n%s", log)
	}
	for _, i := range all {
		if st, err := c.status(i); err != nil || st.Metadata.Members != 3 || len(st.Servers) != 3 {
			t.Fatalf("node %d after a wrong-secret join: %+v %v", i, st, err)
		}
	}
	// the stranger cannot write metadata through the cluster
	f := filepath.Join(t.TempDir(), "x")
	os.WriteFile(f, []byte("stranger"), 0o644)
	_, e, code = run("add", f)
	oneLine("add on a node outside the cluster", e, code)
	_, e, code = run("cluster", "join", "--secret", wrong, boot)
	oneLine("cluster join with a wrong secret", e, code)
	if !strings.Contains(e, "wrong cluster secret") {
		t.Fatalf("join with a wrong secret: %q", e)
	}
	_, e, code = run("cluster", "join", "not-a-multiaddr")
	oneLine("cluster join of a bad multiaddr", e, code)
	_, e, code = run("cluster", "leave")
	oneLine("leave of a node in no cluster", e, code)

	// API calls with bad bodies or arguments: 4xx with one-line JSON
	api := node.APIAddr(repo)
	for _, tc := range []struct{ path, ctype, body string }{
		{"add", "text/plain", "not multipart"},
		{"add", "multipart/form-data; boundary=x", "--x\r\ngarbage"},
		{"pin/add?arg=nonsense", "", ""},
		{"pin/add", "", ""},
		{"cluster/join?arg=%2Fip4%2Fnope", "", ""},
	} {
		resp, err := http.Post("http://"+api+"/api/v0/"+tc.path, tc.ctype, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 4 || !strings.HasPrefix(b.String(), `{"error":`) || strings.Count(strings.TrimSpace(b.String()), "\n") != 0 {
			t.Fatalf("POST %s: %d %q", tc.path, resp.StatusCode, b.String())
		}
	}

	// with the right secret it joins, sees the cluster's metadata, and
	// can leave again
	out, e, code := run("cluster", "join", "--secret", right, "--json", boot)
	if code != 0 {
		t.Fatalf("join with the right secret: %s", e)
	}
	if !strings.Contains(out, id1) {
		t.Fatalf("join output: %s", out)
	}
	c.waitFor("four members", 20*time.Second, func() error { return c.converged(all, 4) })
	if _, e, code = run("add", f); code != 0 {
		t.Fatalf("add after joining: %s", e)
	}
	if _, e, code = run("cluster", "join", "--secret", right, boot); code == 0 || !strings.Contains(e, "already in a cluster") {
		t.Fatalf("second join: %d %q", code, e)
	}
	if out, e, code = run("cluster", "leave"); code != 0 {
		t.Fatalf("leave: %s", e)
	}
	c.waitFor("three members after the leave", 20*time.Second, func() error { return c.converged(all, 3) })
	if out, _, _ = run("cluster", "status", "--json"); !strings.Contains(out, `"role":"leader"`) {
		t.Fatalf("after leaving, the node should lead a cluster of its own: %s", out)
	}
	for _, i := range all {
		if st, err := c.status(i); err != nil || !st.Healthy || len(st.Servers) != 3 {
			t.Fatalf("node %d after the leave: %+v %v", i, st, err)
		}
	}
}

func (c *cluster) mustID(i int) *node.ID {
	c.t.Helper()
	id, err := c.api(i).ID(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	return id
}
