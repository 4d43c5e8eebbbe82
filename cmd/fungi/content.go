package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"

	"github.com/fungistor/fungistor/node"
)

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func runInit(args []string) error {
	fs := newFlagSet("fungi init")
	profile := fs.String("profile", "", "UnixFS profile (default unixfs-v1-2025)")
	coding := fs.String("ec", "", "erasure coding K/M (default 16/4: any 16 of 20 fragments rebuild a block)")
	secret := fs.String("secret", "", "cluster secret, hex (default: a new random one)")
	listen := fs.String("listen", "", "p2p listen multiaddrs, comma-separated (default TCP and QUIC on port 4001)")
	bootstrap := fs.String("bootstrap", "", "multiaddrs (with /p2p/ID) of cluster peers, comma-separated")
	join := fs.String("join", "", "join the cluster of the member at this multiaddr (with /p2p/ID) when the daemon starts; needs --secret")
	domain := fs.String("domain", "", "this node's failure domain or region tag")
	gateway := fs.String("gateway", node.DefaultGatewayListen, "the IPFS gateway's address host:port; \"off\" or \"\" for no gateway")
	setUsage(fs, "usage: fungi init [--profile P] [--ec K/M] [--secret HEX] [--join MULTIADDR] [--listen ADDRS] [--gateway ADDR]\n\n"+
		"Creates the repo in $FUNGI_PATH (default ~/.fungi): config.json, the cluster\n"+
		"secret and the embedded ZDB. Without --join, the daemon founds a new cluster;\n"+
		"with it, the daemon joins the cluster of that member, proving --secret (the\n"+
		"hex in $FUNGI_PATH/secret on any member).\n\nflags:\n")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg := node.DefaultConfig()
	if *profile != "" {
		cfg.Profile = *profile
	}
	if *coding != "" {
		cfg.Coding = *coding
	}
	if *listen != "" {
		cfg.P2P.Listen = splitList(*listen)
	}
	if *bootstrap != "" {
		cfg.P2P.Bootstrap = splitList(*bootstrap)
	}
	if *join != "" {
		if *secret == "" {
			return usagef("--join needs the cluster's secret: --secret HEX (from $FUNGI_PATH/secret on a member)")
		}
		cfg.P2P.Bootstrap = append([]string{*join}, cfg.P2P.Bootstrap...)
	}
	cfg.Cluster.Domain = *domain
	cfg.Gateway.Listen = *gateway
	if *gateway == "off" {
		cfg.Gateway.Listen = ""
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	path := node.RepoPath()
	if err := node.Init(path, node.InitOptions{Config: cfg, Secret: *secret}); err != nil {
		return err
	}
	fmt.Printf("initialised fungi repo in %s (profile %s, coding %s)\n", path, cfg.Profile, cfg.Coding)
	return nil
}

// apiFlag registers --api: the daemon's API address (default: found in
// $FUNGI_PATH/api when a daemon runs there).
func apiFlag(fs *flag.FlagSet) *string {
	return fs.String("api", "", "daemon API address host:port (default: the running daemon's, else open the repo directly)")
}

func connect(api string) (node.Content, error) { return node.Connect(node.RepoPath(), api) }

func runStore(api string, quiet bool, o node.AddOptions, path string) error {
	repo, err := connect(api)
	if err != nil {
		return err
	}
	defer repo.Close()
	if _, ok := repo.(*node.APIClient); !ok && o.ToFiles != "" {
		return errors.New("--to-files needs the daemon: the shared tree lives in the cluster (start it with fungi daemon)")
	}
	ctx, stop := signalContext()
	defer stop()
	prog := newProgress(quiet, "adding")
	total := treeSize(path, o.Hidden)
	var done atomic.Int64
	o.Progress = func(n int64) { prog.updateOf(done.Add(n), total) }
	res, err := repo.Add(ctx, path, o)
	prog.done()
	if err != nil {
		return err
	}
	if quiet {
		fmt.Println(res.Root)
		return repo.Close()
	}
	fmt.Printf("added %s %s\n", res.Root, baseName(path))
	if res.Files != "" {
		fmt.Fprintf(os.Stderr, "linked at %s in the shared tree\n", res.Files)
	}
	if res.Stored == 0 {
		// small: every block is in the replicated metadata
		fmt.Fprintf(os.Stderr, "%d bytes in %d blocks, kept in the object's metadata (which every member holds): no fragments\n", res.Size, res.Blocks)
		return repo.Close()
	}
	fmt.Fprintf(os.Stderr, "%d bytes in %d blocks, coding %s: %d fragment bytes (%.3fx); %s\n",
		res.Size, res.Blocks, res.Coding, res.Stored, float64(res.Stored)/float64(max(res.Size, 1)), res.Tolerance)
	return repo.Close()
}

// target is the content a command names: a CID, or a path through
// directories (CID/a/b or /ipfs/CID/a/b) resolved once connected.
type target struct {
	c    cid.Cid
	path string // set when there are segments to resolve
	name string // the path's last segment, or the CID
}

// parseTarget parses flags and the one CID or path a command takes.
func parseTarget(fs *flag.FlagSet, args []string) (target, error) {
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return target{}, err
	}
	if len(rest) != 1 {
		return target{}, usagef("exactly one CID or path is required")
	}
	c, segs, err := node.ParsePath(rest[0])
	if err != nil {
		return target{}, usagef("%v", err)
	}
	t := target{c: c, name: c.String()}
	if len(segs) > 0 {
		t.path, t.name = rest[0], segs[len(segs)-1]
	}
	return t, nil
}

// cid is the target's CID, resolving its path through the node.
func (t target) cid(ctx context.Context, repo node.Content) (cid.Cid, error) {
	if t.path == "" {
		return t.c, nil
	}
	return repo.Resolve(ctx, t.path)
}

// parseCIDArgs parses flags and the one CID a command takes.
func parseCIDArgs(fs *flag.FlagSet, args []string) (cid.Cid, error) {
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return cid.Undef, err
	}
	if len(rest) != 1 {
		return cid.Undef, usagef("exactly one CID is required")
	}
	c, err := node.ParseCID(rest[0])
	if err != nil {
		return cid.Undef, usagef("%v", err)
	}
	return c, nil
}

func runCat(args []string) error {
	fs := newFlagSet("fungi cat")
	api := apiFlag(fs)
	offset := fs.Int64("offset", 0, "start at this byte")
	length := fs.Int64("length", -1, "read at most this many bytes (-1: to the end)")
	setUsage(fs, "usage: fungi cat [--offset N] [--length N] CID|CID/PATH\n\nflags:\n")
	t, err := parseTarget(fs, args)
	if err != nil {
		return err
	}
	if *offset < 0 {
		return usagef("--offset must not be negative")
	}
	repo, err := connect(*api)
	if err != nil {
		return err
	}
	defer repo.Close()
	ctx, stop := signalContext()
	defer stop()
	c, err := t.cid(ctx, repo)
	if err != nil {
		return err
	}
	rd, _, err := repo.CatRange(ctx, c, *offset, *length)
	if err != nil {
		return err
	}
	defer rd.Close()
	widenPipe(os.Stdout)
	// 1 MiB reads and writes: os.File's ReadFrom would copy 32 KiB at a time
	_, err = io.CopyBuffer(struct{ io.Writer }{os.Stdout}, rd, make([]byte, 1<<20))
	return err
}

// widenPipe grows f's pipe buffer to 1 MiB when f is a pipe (`fungi cat
// CID | sha256sum`): with Linux's default 64 KiB, each 1 MiB write blocks
// and wakes the reader 16 times. A failure (not a pipe, over the system's
// pipe-max-size) leaves it as it was.
func widenPipe(f *os.File) {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		return
	}
	if rc, err := f.SyscallConn(); err == nil { // not Fd(): that makes f blocking
		rc.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20) })
	}
}

func runGet(args []string) error {
	fs := newFlagSet("fungi get")
	api := apiFlag(fs)
	out := fs.String("o", "", "output path (must not exist; default: the CID)")
	quiet := fs.Bool("q", false, "no progress")
	setUsage(fs, "usage: fungi get CID|CID/PATH [-o PATH]\n\nflags:\n")
	t, err := parseTarget(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		*out = t.name
	}
	repo, err := connect(*api)
	if err != nil {
		return err
	}
	defer repo.Close()
	ctx, stop := signalContext()
	defer stop()
	c, err := t.cid(ctx, repo)
	if err != nil {
		return err
	}
	prog := newProgress(*quiet, "getting")
	var total int64
	if prog.on { // the size, for the ETA: the entries' (cumulative) sizes
		if ents, err := repo.Ls(ctx, c); err == nil {
			for _, e := range ents {
				total += int64(e.Size)
			}
		}
	}
	var done atomic.Int64
	err = repo.Get(ctx, c, *out, func(n int64) { prog.updateOf(done.Add(n), total) })
	prog.done()
	if err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprintf(os.Stderr, "saved %s to %s\n", c, *out)
	}
	return nil
}

func runLs(args []string) error {
	fs := newFlagSet("fungi ls")
	api := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	t, err := parseTarget(fs, args)
	if err != nil {
		return err
	}
	repo, err := connect(*api)
	if err != nil {
		return err
	}
	defer repo.Close()
	c, err := t.cid(context.Background(), repo)
	if err != nil {
		return err
	}
	ents, err := repo.Ls(context.Background(), c)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(ents)
	}
	for _, e := range ents {
		name := e.Name
		if e.Type == "directory" {
			name += "/"
		}
		size := strconv.FormatUint(e.Size, 10)
		if e.Type == "directory" {
			size = "-"
		}
		fmt.Printf("%s %12s %s\n", e.CID, size, name)
	}
	return nil
}

// parseInterspersed parses flags that may come before or after the
// positional arguments, as Kubo's commands allow, and returns the
// positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	fs.SetOutput(discardUnlessHelp{})
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.Usage()
			return nil, err
		}
		if err != nil {
			return nil, usagef("%v", err)
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func baseName(p string) string {
	p = strings.TrimRight(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

func runStat(args []string) error {
	fs := newFlagSet("fungi stat")
	api := apiFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	verify := fs.Bool("verify", false, "fetch and verify every fragment (default: ask whether it is there)")
	layout := fs.Bool("blocks", false, "list where each block's fragments live (always in --json)")
	setUsage(fs, "usage: fungi stat [--verify] [--blocks] [--json] CID\n\n"+
		"Shows how an object is stored: size, coding, the holders of its fragments,\n"+
		"how many fragments and nodes it can still lose, and unreachable holders.\n\nflags:\n")
	c, err := parseCIDArgs(fs, args)
	if err != nil {
		return err
	}
	repo, err := connect(*api)
	if err != nil {
		return err
	}
	defer repo.Close()
	ctx, stop := signalContext()
	defer stop()
	st, err := repo.Stat(ctx, c, *verify)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(st)
	}
	inline := ""
	if st.Inline > 0 {
		inline = fmt.Sprintf(" (%d kept inline in the replicated metadata: no fragments)", st.Inline)
	}
	fmt.Printf("%s\n  size %d bytes in %d blocks%s, coding %s\n", st.Root, st.Size, st.Blocks, inline, st.Coding)
	fmt.Printf("  %d holder(s):\n", len(st.Holders))
	for _, h := range st.Holders {
		fmt.Printf("    %s %d fragments", h.ID, h.Fragments)
		if h.Missing > 0 {
			fmt.Printf(", %d missing", h.Missing)
		}
		if h.Corrupt > 0 {
			fmt.Printf(" (%d of them CORRUPT)", h.Corrupt)
		}
		if !h.Reachable {
			fmt.Print(", UNREACHABLE")
		}
		fmt.Println()
	}
	if *layout {
		short := map[string]int{}
		for i, h := range st.Holders {
			short[h.ID] = i + 1
		}
		fmt.Println("  blocks (fragment i on holder #n, in the order above; x: missing):")
		for _, b := range st.Layout {
			miss := map[int]bool{}
			for _, i := range b.Missing {
				miss[i] = true
			}
			fmt.Printf("    %6d %s", b.Index, b.CID)
			if b.Inline {
				fmt.Print(" inline")
			}
			for i, h := range b.Holders {
				if miss[i] {
					fmt.Print(" x")
				} else {
					fmt.Printf(" %d", short[h])
				}
			}
			fmt.Println()
		}
	}
	fmt.Printf("  health: %s\n", st.Health)
	if st.SpareFragments < 0 {
		fmt.Printf("  UNREADABLE: %d block(s) short of fragments\n", len(st.Damaged))
	} else {
		fmt.Printf("  can lose now: any %d holder node(s), or any %d more fragment(s) per block\n", st.TolerableNodeLosses, st.SpareFragments)
	}
	if len(st.Damaged) > 0 {
		fmt.Printf("  %d block(s) below full redundancy: the cluster repairs them by itself (after repair.grace for a member down); fungi repair %s does it now\n", len(st.Damaged), st.Root)
	}
	for _, u := range st.Unreachable {
		fmt.Printf("  unreachable: %s\n", u)
	}
	return nil
}

// treeSize is the bytes of the regular files under path (for the ETA of
// an add); dotfiles count only with hidden, as the import does.
func treeSize(path string, hidden bool) int64 {
	var n int64
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p != path && !hidden && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
