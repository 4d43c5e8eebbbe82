package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/fungistor/fungistor/node"
)

// Options configure Up.
type Options struct {
	// N is the number of nodes (at least 1).
	N int
	// Dir holds one repo per node (DIR/node1 ... DIR/nodeN) and the
	// testnet's state file.
	Dir string
	// Coding is the nodes' erasure coding (default: the repo default).
	Coding string
	// Bin is the fungi binary the daemons run (default: this executable).
	Bin string
	// Ready is how long Up waits for every node (default 60 s).
	Ready time.Duration
	// Configure, if set, adjusts node i's config (1-based) before its
	// repo is created (tests use it for small snapshot thresholds).
	Configure func(i int, c *node.Config)
}

// Node is one node of a testnet, as recorded in DIR/testnet.json.
type Node struct {
	Index int    `json:"index"`
	Path  string `json:"path"`
	API   string `json:"api"`
	PID   int    `json:"pid"`
}

// State is the testnet's state file.
type State struct {
	Bin   string `json:"bin"`
	Nodes []Node `json:"nodes"`
}

const stateFile = "testnet.json"

// ErrNoTestnet: the directory has no testnet.
var ErrNoTestnet = errors.New("no testnet here (run fungi testnet up)")

func load(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoTestnet)
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, stateFile), err)
	}
	return &st, nil
}

func (st *State) save(dir string) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}

// portPicker hands out unused loopback ports, each distinct: it holds
// every port it picked (TCP and UDP, as libp2p listens on both) until
// release, so the kernel cannot give one out twice.
type portPicker struct{ held []io.Closer }

func (p *portPicker) pick() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			l.Close()
			continue // the UDP port is taken: try another
		}
		p.held = append(p.held, l, u)
		return port, nil
	}
	return 0, errors.New("no free loopback port")
}

func (p *portPicker) release() {
	for _, c := range p.held {
		c.Close()
	}
	p.held = nil
}

// Up creates N repos and starts a daemon on each, as separate processes on
// loopback, and returns once every node's API answers.
func Up(ctx context.Context, o Options) (*State, error) {
	if o.N < 1 {
		return nil, errors.New("a testnet needs at least one node")
	}
	if o.Dir == "" {
		return nil, errors.New("a testnet needs a directory")
	}
	if _, err := os.Stat(filepath.Join(o.Dir, stateFile)); err == nil {
		return nil, fmt.Errorf("%s already holds a testnet (fungi testnet down first)", o.Dir)
	}
	if o.Bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		o.Bin = exe
	}
	if o.Ready == 0 {
		o.Ready = 60 * time.Second
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	st := &State{Bin: o.Bin}
	secret := ""
	var ports portPicker
	defer ports.release()
	var bootstrap []string
	for i := 1; i <= o.N; i++ {
		port, err := ports.pick()
		if err != nil {
			return nil, err
		}
		p2pPort, err := ports.pick()
		if err != nil {
			return nil, err
		}
		cfg := node.DefaultConfig()
		cfg.API = "127.0.0.1:" + strconv.Itoa(port)
		cfg.P2P.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p2pPort), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", p2pPort)}
		cfg.P2P.Bootstrap = bootstrap
		if o.Coding != "" {
			cfg.Coding = o.Coding
		}
		if o.Configure != nil {
			o.Configure(i, &cfg)
		}
		path, err := filepath.Abs(filepath.Join(o.Dir, "node"+strconv.Itoa(i)))
		if err != nil {
			return nil, err
		}
		if err := node.Init(path, node.InitOptions{Config: cfg, Secret: secret}); err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		if secret == "" {
			// every node of the testnet shares the first node's cluster
			// secret and bootstraps from it
			b, err := os.ReadFile(filepath.Join(path, "secret"))
			if err != nil {
				return nil, err
			}
			secret = string(b)
			id, err := node.PeerID(path)
			if err != nil {
				return nil, err
			}
			bootstrap = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", p2pPort, id)}
		}
		st.Nodes = append(st.Nodes, Node{Index: i, Path: path, API: cfg.API})
	}
	if err := st.save(o.Dir); err != nil {
		return nil, err
	}
	ports.release()
	for i := range st.Nodes {
		if err := st.start(&st.Nodes[i]); err != nil {
			return st, err
		}
	}
	if err := st.save(o.Dir); err != nil {
		return st, err
	}
	if err := st.waitReady(ctx, o.Ready, nil); err != nil {
		return st, err
	}
	return st, st.waitCluster(ctx, o.Ready)
}

// waitCluster waits until every node is in the raft configuration, knows
// the leader, and sees every node as a member and the full voter set.
func (st *State) waitCluster(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	voters := min(len(st.Nodes), 3)
	for {
		ready := true
		for _, n := range st.Nodes {
			cs, err := clusterStatus(n.API)
			if err != nil || cs.Leader == "" || (cs.Role != "leader" && cs.Role != "voter" && cs.Role != "nonvoter") ||
				cs.Metadata.Members != len(st.Nodes) || len(cs.Voters) != voters {
				ready = false
				break
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the cluster did not form in time (see DIR/nodeI/daemon.log)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// start runs node n's daemon in its own process group, so it outlives the
// command that started it; its log goes to DIR/nodeI/daemon.log.
func (st *State) start(n *Node) error {
	logf, err := os.OpenFile(filepath.Join(n.Path, "daemon.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(st.Bin, "daemon")
	cmd.Env = append(os.Environ(), "FUNGI_PATH="+n.Path)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("node %d: %w", n.Index, err)
	}
	n.PID = cmd.Process.Pid
	go cmd.Wait() // reap it if it dies while we still run
	return nil
}

func (st *State) waitReady(ctx context.Context, limit time.Duration, only []int) error {
	deadline := time.Now().Add(limit)
	for _, n := range st.Nodes {
		if only != nil && !contains(only, n.Index) {
			continue
		}
		for !apiAnswers(n.API) {
			if time.Now().After(deadline) {
				return fmt.Errorf("node %d did not start (see %s)", n.Index, filepath.Join(n.Path, "daemon.log"))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

var probe = &http.Client{Timeout: 2 * time.Second}

func apiAnswers(addr string) bool {
	resp, err := probe.Get("http://" + addr + "/api/v0/version")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func clusterStatus(api string) (*node.ClusterStatus, error) {
	resp, err := probe.Get("http://" + api + "/api/v0/cluster/status?local=true")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", api, resp.Status)
	}
	var cs node.ClusterStatus
	return &cs, json.NewDecoder(resp.Body).Decode(&cs)
}

// alive reports whether the recorded process still runs.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// ours reports whether pid is still n's daemon (and not another process
// that got its pid after it died): its environment names n's repo.
func ours(n *Node) bool {
	if !alive(n.PID) {
		return false
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(n.PID) + "/environ")
	if err != nil {
		return false
	}
	return bytes.Contains(env, []byte("FUNGI_PATH="+n.Path+"\x00"))
}

// NodeStatus is one line of `fungi testnet status`.
type NodeStatus struct {
	Index  int    `json:"index"`
	PeerID string `json:"peer_id"`
	// Role is leader, voter or nonvoter (as the node itself reports), or
	// "" when it is down or not in the cluster yet.
	Role   string `json:"role"`
	Leader string `json:"leader"`
	API    string `json:"api"`
	PID    int    `json:"pid"`
	Alive  bool   `json:"alive"`
	Path   string `json:"path"`
}

// Status reports every node of the testnet in dir.
func Status(dir string) ([]NodeStatus, error) {
	st, err := load(dir)
	if err != nil {
		return nil, err
	}
	out := make([]NodeStatus, len(st.Nodes))
	for i, n := range st.Nodes {
		ns := NodeStatus{Index: n.Index, API: n.API, PID: n.PID, Path: n.Path}
		ns.PeerID, _ = node.PeerID(n.Path)
		if ours(&n) {
			if cs, err := clusterStatus(n.API); err == nil {
				ns.Alive = true
				ns.Leader = cs.Leader
				switch cs.Role {
				case "leader", "voter", "nonvoter":
					ns.Role = cs.Role
				}
			}
		}
		out[i] = ns
	}
	return out, nil
}

func (st *State) pick(indices []int) ([]*Node, error) {
	if len(indices) == 0 {
		return nil, errors.New("name at least one node index")
	}
	var out []*Node
	for _, i := range indices {
		if i < 1 || i > len(st.Nodes) {
			return nil, fmt.Errorf("no node %d (the testnet has %d)", i, len(st.Nodes))
		}
		out = append(out, &st.Nodes[i-1])
	}
	return out, nil
}

// Stop stops nodes: SIGTERM (a clean shutdown), or SIGKILL with kill.
func Stop(dir string, indices []int, kill bool) error {
	st, err := load(dir)
	if err != nil {
		return err
	}
	nodes, err := st.pick(indices)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		stopProcess(n, kill)
	}
	return nil
}

func stopProcess(n *Node, kill bool) {
	if !ours(n) {
		return
	}
	pid := n.PID
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	syscall.Kill(pid, sig)
	for i := 0; i < 200 && alive(pid); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Start (re)starts stopped nodes with their repos.
func Start(ctx context.Context, dir string, indices []int) error {
	st, err := load(dir)
	if err != nil {
		return err
	}
	nodes, err := st.pick(indices)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if ours(n) {
			continue
		}
		if err := st.start(n); err != nil {
			return err
		}
	}
	if err := st.save(dir); err != nil {
		return err
	}
	return st.waitReady(ctx, 60*time.Second, indices)
}

// Down stops every node and forgets the testnet (the repos stay).
func Down(dir string) error {
	st, err := load(dir)
	if err != nil {
		return err
	}
	for i := range st.Nodes {
		stopProcess(&st.Nodes[i], false)
	}
	return os.Remove(filepath.Join(dir, stateFile))
}
