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
	"slices"
	"strconv"
	"strings"
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
	// Latency, if set, is an N×N matrix of simulated one-way delays:
	// Latency[i][j] delays what node i+1 sends to node j+1 (the diagonal
	// is ignored). Up writes row i into node i+1's p2p.latency, keyed by
	// the other nodes' peer IDs. ParseLatency reads the CLI's syntax.
	Latency [][]time.Duration
	// NoStore are the 1-based indices of nodes that hold no fragments
	// (cluster.no_store: readers, gateways).
	NoStore []int
	// IPFSDHT has the nodes join the IPFS DHT (ipfs.dht), loopback
	// addresses admitted, bootstrapping from node 1 (--set ipfs.bootstrap
	// adds an outside peer, e.g. a Kubo node). Off by default: a testnet
	// stays out of the public IPFS network.
	IPFSDHT bool
	// Set are settings applied in order to every node's config, after
	// Configure and the testnet's own choices (ports), so they win.
	Set []Setting
}

// Setting is one `--set KEY=VALUE`: a config key (node.Config.SetValue)
// and its value as JSON.
type Setting struct {
	Key   string
	Value json.RawMessage
}

func (s Setting) String() string { return s.Key + "=" + string(s.Value) }

// apply sets s in c. A value that is JSON of the wrong kind for a key
// that takes a string is taken as that string (cluster.domain=2 is "2").
func (s Setting) apply(c *node.Config) error {
	err := c.SetValue(s.Key, s.Value)
	var str string
	if err != nil && json.Unmarshal(s.Value, &str) != nil {
		asString, _ := json.Marshal(string(s.Value))
		if c.SetValue(s.Key, asString) == nil {
			return nil
		}
	}
	return err
}

// checkSettings applies sets to a config like those Up makes and checks
// that the result is valid.
func checkSettings(sets []Setting) error {
	if len(sets) == 0 {
		return nil
	}
	c := node.DefaultConfig()
	c.API, c.Gateway.Listen = "127.0.0.1:1", "127.0.0.1:2"
	c.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/3", "/ip4/127.0.0.1/udp/3/quic-v1"}
	for _, st := range sets {
		if err := st.apply(&c); err != nil {
			return err
		}
	}
	if err := c.Validate(); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "config: "))
	}
	return nil
}

// ParseSettings parses settings (see ParseSetting) and checks that
// together they leave a valid config.
func ParseSettings(args []string) ([]Setting, error) {
	var out []Setting
	for _, a := range args {
		st, err := ParseSetting(a)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, checkSettings(out)
}

// ParseSetting parses KEY=VALUE. VALUE is taken as JSON when it is valid
// JSON, else as a string. The key must exist and take the value (checked
// on the default config); errors are one line.
func ParseSetting(s string) (Setting, error) {
	key, value, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return Setting{}, fmt.Errorf("%q: want KEY=VALUE", s)
	}
	st := Setting{Key: key, Value: json.RawMessage(value)}
	if !json.Valid(st.Value) {
		st.Value, _ = json.Marshal(value)
	}
	c := node.DefaultConfig()
	if err := st.apply(&c); err != nil {
		return Setting{}, err
	}
	return st, nil
}

// validate checks what Up cannot default.
func (o *Options) validate() error {
	if o.N < 1 {
		return errors.New("a testnet needs at least one node")
	}
	if o.Dir == "" {
		return errors.New("a testnet needs a directory")
	}
	if o.Latency != nil {
		if len(o.Latency) != o.N {
			return fmt.Errorf("latency: %d rows for %d nodes", len(o.Latency), o.N)
		}
		for i, row := range o.Latency {
			if len(row) != o.N {
				return fmt.Errorf("latency: row %d has %d entries for %d nodes", i+1, len(row), o.N)
			}
			for j, d := range row {
				if d < 0 && i != j {
					return fmt.Errorf("latency: row %d column %d: negative delay %v", i+1, j+1, d)
				}
			}
		}
	}
	for _, i := range o.NoStore {
		if i < 1 || i > o.N {
			return fmt.Errorf("no-store: no node %d (the testnet has %d)", i, o.N)
		}
	}
	if err := checkSettings(o.Set); err != nil {
		return fmt.Errorf("set: %w", err)
	}
	return nil
}

// Node is one node of a testnet, as recorded in DIR/testnet.json.
type Node struct {
	Index int    `json:"index"`
	Path  string `json:"path"`
	API   string `json:"api"`
	// Gateway is the node's IPFS gateway address ("": none).
	Gateway string `json:"gateway"`
	// Swarm is the node's libp2p TCP address with its peer ID, for
	// `ipfs swarm connect`.
	Swarm string `json:"swarm"`
	PID   int    `json:"pid"`
	// Peer is the node's libp2p peer ID.
	Peer string `json:"peer"`
	// NoStore: the node holds no fragments (Options.NoStore).
	NoStore bool `json:"no_store,omitempty"`
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
// loopback, and returns once the cluster has formed: every node sees every
// node as a member and knows the leader, and every storing node has
// reported its capacity.
func Up(ctx context.Context, o Options) (*State, error) {
	if err := o.validate(); err != nil {
		return nil, err
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
		gwPort, err := ports.pick()
		if err != nil {
			return nil, err
		}
		cfg := node.DefaultConfig()
		cfg.API = "127.0.0.1:" + strconv.Itoa(port)
		cfg.Gateway.Listen = "127.0.0.1:" + strconv.Itoa(gwPort)
		cfg.P2P.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p2pPort), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", p2pPort)}
		cfg.P2P.Bootstrap = bootstrap
		cfg.IPFS.DHT = node.ToggleOff
		if o.IPFSDHT {
			boot := append([]string{}, bootstrap...) // node 1: none, never Kubo's public list
			cfg.IPFS.DHT, cfg.IPFS.DHTPrivateAddrs, cfg.IPFS.Bootstrap = node.ToggleOn, true, &boot
		}
		if o.Coding != "" {
			cfg.Coding = o.Coding
		}
		if o.Configure != nil {
			o.Configure(i, &cfg)
		}
		for _, st := range o.Set {
			if err := st.apply(&cfg); err != nil {
				return nil, fmt.Errorf("node %d: set %s: %w", i, st.Key, err)
			}
		}
		path, err := filepath.Abs(filepath.Join(o.Dir, "node"+strconv.Itoa(i)))
		if err != nil {
			return nil, err
		}
		if err := node.Init(path, node.InitOptions{Config: cfg, Secret: secret}); err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		id, err := node.PeerID(path)
		if err != nil {
			return nil, err
		}
		if secret == "" {
			// every node of the testnet shares the first node's cluster
			// secret and bootstraps from it
			b, err := os.ReadFile(filepath.Join(path, "secret"))
			if err != nil {
				return nil, err
			}
			secret = string(b)
			bootstrap = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", p2pPort, id)}

		}
		swarm := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", p2pPort, id)
		st.Nodes = append(st.Nodes, Node{Index: i, Path: path, API: cfg.API, Gateway: cfg.Gateway.Listen, Swarm: swarm, Peer: id, NoStore: slices.Contains(o.NoStore, i)})
	}
	// the latency map needs every node's peer ID, known once all repos exist
	for i, n := range st.Nodes {
		lat := latencyConfig(st.Nodes, o.Latency, i)
		if lat == nil && !n.NoStore {
			continue
		}
		err := node.UpdateConfig(n.Path, func(c *node.Config) {
			if lat != nil {
				c.P2P.Latency = lat
			}
			c.Cluster.NoStore = c.Cluster.NoStore || n.NoStore
		})
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", n.Index, err)
		}
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

// latencyConfig is node i's (0-based) p2p.latency: row i of m keyed by
// the other nodes' peer IDs, zero delays left out; nil when none.
func latencyConfig(nodes []Node, m [][]time.Duration, i int) map[string]string {
	if m == nil {
		return nil
	}
	var out map[string]string
	for j, d := range m[i] {
		if j == i || d <= 0 {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[nodes[j].Peer] = d.String()
	}
	return out
}

// waitCluster waits until every node is in the raft configuration, knows
// the leader, sees every node as a member and the full voter set, and
// sees a capacity reported by every storing node (the daemons report it
// every few seconds; placement skips members without one).
func (st *State) waitCluster(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		why := ""
		for _, n := range st.Nodes {
			if why = st.notReady(n); why != "" {
				break
			}
		}
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster did not form in time: %s (see DIR/nodeI/daemon.log)", why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// notReady says why node n's view of the cluster is not complete yet, or
// returns "".
func (st *State) notReady(n Node) string {
	cs, err := clusterStatus(n.API)
	switch {
	case err != nil:
		return fmt.Sprintf("node %d: %v", n.Index, err)
	case cs.Leader == "":
		return fmt.Sprintf("node %d knows no leader", n.Index)
	case cs.Role != "leader" && cs.Role != "voter" && cs.Role != "nonvoter":
		return fmt.Sprintf("node %d is not in the raft configuration", n.Index)
	case cs.Metadata.Members != len(st.Nodes):
		return fmt.Sprintf("node %d sees %d of %d members", n.Index, cs.Metadata.Members, len(st.Nodes))
	case len(cs.Voters) != min(len(st.Nodes), 3):
		return fmt.Sprintf("node %d sees %d voters", n.Index, len(cs.Voters))
	}
	capacity := map[string]uint64{}
	for _, m := range cs.Members {
		capacity[m.ID] = m.Capacity
	}
	for _, m := range st.Nodes {
		if !m.NoStore && capacity[m.Peer] == 0 {
			return fmt.Sprintf("node %d sees no capacity from node %d", n.Index, m.Index)
		}
	}
	return ""
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

// gatewayAddr asks a node where its gateway listens ("" if it cannot
// tell).
func gatewayAddr(api string) string {
	resp, err := probe.Get("http://" + api + "/api/v0/id")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var id node.ID
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&id) != nil {
		return ""
	}
	return id.Gateway
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
	// Gateway is the node's IPFS gateway (host:port; "": none).
	Gateway string `json:"gateway"`
	// Swarm is the node's libp2p TCP address (Node.Swarm).
	Swarm string `json:"swarm"`
	PID   int    `json:"pid"`
	Alive bool   `json:"alive"`
	Path  string `json:"path"`
}

// Status reports every node of the testnet in dir.
func Status(dir string) ([]NodeStatus, error) {
	st, err := load(dir)
	if err != nil {
		return nil, err
	}
	out := make([]NodeStatus, len(st.Nodes))
	for i, n := range st.Nodes {
		ns := NodeStatus{Index: n.Index, API: n.API, Gateway: n.Gateway, Swarm: n.Swarm, PID: n.PID, Path: n.Path}
		ns.PeerID, _ = node.PeerID(n.Path)
		if ours(&n) {
			if cs, err := clusterStatus(n.API); err == nil {
				ns.Alive = true
				ns.Leader = cs.Leader
				switch cs.Role {
				case "leader", "voter", "nonvoter":
					ns.Role = cs.Role
				}
				// the node knows the port it bound ("--set
				// gateway.listen=127.0.0.1:0" records port 0)
				if gw := gatewayAddr(n.API); gw != "" {
					ns.Gateway = gw
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
