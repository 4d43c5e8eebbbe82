package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fungistor/fungistor/node"
)

func vectorContent(seed string, n int) []byte {
	out := make([]byte, 0, n+32)
	for i := uint64(0); len(out) < n; i++ {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], i)
		sum := sha256.Sum256(append([]byte(seed), b[:]...))
		out = append(out, sum[:]...)
	}
	return out[:n]
}

// `fungi add --only-hash` prints Kubo's CIDs (from fungi/testdata, computed
// by Kubo 0.43), for a file and a directory, in both profiles.
func TestAddOnlyHash(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "b.bin")
	os.WriteFile(file, vectorContent("fungi-b", 3145733), 0o644)
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
	os.WriteFile(filepath.Join(tree, "one.txt"), vectorContent("fungi-d1", 1000), 0o644)
	os.WriteFile(filepath.Join(tree, "two.bin"), vectorContent("fungi-d2", 2000000), 0o644)
	os.WriteFile(filepath.Join(tree, "sub", "three"), vectorContent("fungi-d3", 5), 0o644)
	os.WriteFile(filepath.Join(tree, ".hidden"), []byte("left out, as by ipfs add -r"), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"add", "--only-hash", "-q", file}, "bafybeihdn6ilhibetsbhz73vogklwdfsupf7glils36qadbu7wt7agpxki"},
		{[]string{"add", "-n", "-q", "--profile", "kubo-v1-default", file}, "bafybeiguvfu3r3xnp3kj4iw2gmrjeodfbkjevhzgqqd7clnscfkan5mxcu"},
		{[]string{"add", "-n", "-q", tree}, "bafybeigdnut6sum53yg62szab2b6zaw64moulrbcdpwxbiqa4zaeb5eg2m"},
		{[]string{"add", "-n", tree, "-q", "--profile", "kubo-v1-default"}, "bafybeiaory7mtmqcsfyb6oz7aqd5fo5bxbejqit7s5jmns44toduc3xcpi"},
		{[]string{"add", "-n", file}, "added bafybeihdn6ilhibetsbhz73vogklwdfsupf7glils36qadbu7wt7agpxki b.bin"},
	}
	for _, tc := range cases {
		out, err := exec.Command(fungiBin, tc.args...).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("fungi %v = %q, %v; want %q", tc.args, out, err, tc.want)
		}
	}
}

// fungi init, add, cat, get, ls against a repo in $FUNGI_PATH, as a user
// runs them.
func TestContentCommands(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(fungiBin, args...)
		cmd.Env = append(os.Environ(), "FUNGI_PATH="+repo)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if err != nil {
			return errb.String(), err
		}
		return out.String(), nil
	}
	if out, err := run("cat", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"); err == nil || !strings.Contains(out, "fungi init") {
		t.Fatalf("cat before init: %q %v", out, err)
	}
	if out, err := run("init", "--ec", "4/2"); err != nil {
		t.Fatalf("init: %v %s", err, out)
	}
	if out, err := run("init"); err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("second init: %q %v", out, err)
	}
	file := filepath.Join(t.TempDir(), "f.bin")
	data := vectorContent("fungi-b", 3145733)
	os.WriteFile(file, data, 0o644)
	out, err := run("add", "-q", file)
	if err != nil || strings.TrimSpace(out) != "bafybeihdn6ilhibetsbhz73vogklwdfsupf7glils36qadbu7wt7agpxki" {
		t.Fatalf("add = %q, %v", out, err)
	}
	c := strings.TrimSpace(out)
	if out, err = run("cat", c); err != nil || out != string(data) {
		t.Fatalf("cat: %d bytes, %v", len(out), err)
	}
	if out, err = run("cat", "--offset", "1048570", "--length", "12", c); err != nil || out != string(data[1048570:1048582]) {
		t.Fatalf("cat range: %q, %v", out, err)
	}
	dst := filepath.Join(t.TempDir(), "got")
	if out, err = run("get", c, "-o", dst, "-q"); err != nil {
		t.Fatalf("get: %v %s", err, out)
	}
	if b, _ := os.ReadFile(dst); string(b) != string(data) {
		t.Fatal("get differs")
	}
	if out, err = run("ls", c); err != nil || !strings.Contains(out, "3145733") {
		t.Fatalf("ls: %q %v", out, err)
	}
	// bad input: one line, non-zero exit
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cat", "not-a-cid"}, `invalid CID "not-a-cid"`},
		{[]string{"cat", "bafkreifvzgs7jaus4p54dnftzvev25wpnbuxvublv4e4c5ang4sq653fte"}, "content unavailable"},
		{[]string{"cat", "bafybeigdnut6sum53yg62szab2b6zaw64moulrbcdpwxbiqa4zaeb5eg2m"}, "not found"},
		{[]string{"cat", "--offset", "99999999", c}, "range outside the content"},
		{[]string{"get", c, "-o", dst}, "already exists"},
		{[]string{"add", "/nonexistent"}, "no such file or directory"},
		{[]string{"add", "--ec", "3/0", file}, "--ec"},
	} {
		out, err := run(tc.args...)
		if err == nil || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") > 0 {
			t.Errorf("%v: %q, %v; want one line with %q", tc.args, out, err, tc.want)
		}
	}
}

// addVectors writes the file and tree of TestAddOnlyHash, whose CIDs Kubo
// 0.43 computed.
func addVectors(t *testing.T) (file, tree string) {
	t.Helper()
	dir := t.TempDir()
	file = filepath.Join(dir, "b.bin")
	os.WriteFile(file, vectorContent("fungi-b", 3145733), 0o644)
	tree = filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "sub"), 0o755)
	os.WriteFile(filepath.Join(tree, "one.txt"), vectorContent("fungi-d1", 1000), 0o644)
	os.WriteFile(filepath.Join(tree, "two.bin"), vectorContent("fungi-d2", 2000000), 0o644)
	os.WriteFile(filepath.Join(tree, "sub", "three"), vectorContent("fungi-d3", 5), 0o644)
	os.WriteFile(filepath.Join(tree, ".hidden"), []byte("left out, as by ipfs add -r"), 0o644)
	return file, tree
}

const (
	fileV2025 = "bafybeihdn6ilhibetsbhz73vogklwdfsupf7glils36qadbu7wt7agpxki"
	fileKubo  = "bafybeiguvfu3r3xnp3kj4iw2gmrjeodfbkjevhzgqqd7clnscfkan5mxcu"
	treeV2025 = "bafybeigdnut6sum53yg62szab2b6zaw64moulrbcdpwxbiqa4zaeb5eg2m"
	treeKubo  = "bafybeiaory7mtmqcsfyb6oz7aqd5fo5bxbejqit7s5jmns44toduc3xcpi"
)

// runIn runs fungi with FUNGI_PATH=repo: stdout, stderr, exit code.
func runIn(t *testing.T, repo string, args ...string) (string, string, int) {
	t.Helper()
	return runFungi(t, 2*time.Minute, repo, args...)
}

// Kubo's add habits: -r, -Q, and --cid-version/--raw-leaves/--chunker
// when they describe one of the profiles (the flags not given take Kubo's
// defaults, so the CID is Kubo's for the same flags); anything else is a
// one-line error naming both.
func TestAddKuboFlags(t *testing.T) {
	file, tree := addVectors(t)
	noRepo := filepath.Join(t.TempDir(), "none")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "-r", "-Q", tree}, treeV2025},
		{[]string{"-n", "--recursive", "--quieter", tree}, treeV2025},
		{[]string{"-n", "-Q", "--cid-version", "1", "--raw-leaves", "--chunker", "size-1048576", file}, fileV2025},
		{[]string{"-n", "-Q", "--cid-version=1", file}, fileKubo}, // Kubo's default chunker
		{[]string{"-n", "-Q", "--cid-version", "1", "--chunker", "size-1048576", file}, fileV2025},
		{[]string{"-n", "-Q", "-r", "--cid-version", "1", "--raw-leaves", "--chunker=size-262144", tree}, treeKubo},
		{[]string{"-n", "-Q", "--profile", "kubo-v1-default", "--cid-version", "1", file}, fileKubo},
		{[]string{"-n", "-Q", "--profile", "unixfs-v1-2025", "--chunker", "size-1048576", "-r", tree}, treeV2025},
		{[]string{"-n", "-r", file}, "added " + fileV2025 + " b.bin"},
	} {
		out, errs, code := runIn(t, noRepo, append([]string{"add"}, tc.args...)...)
		if code != 0 || out != tc.want+"\n" || errs != "" {
			t.Errorf("fungi add %v = %q (stderr %q, exit %d); want %q", tc.args, out, errs, code, tc.want)
		}
	}
	for _, args := range [][]string{
		{"--cid-version", "0"},
		{"--chunker", "rabin"},
		{"--chunker", "buzhash"},
		{"--chunker", "size-4096"},
		{"--raw-leaves=false"},
		{"--raw-leaves=true"},        // CIDv0 with raw leaves to Kubo
		{"--chunker", "size-262144"}, // CIDv0 to Kubo
		{"--profile", "unixfs-v1-2025", "--chunker", "size-262144"},
		{"--profile", "kubo-v1-default", "--cid-version", "0"},
	} {
		out, errs, code := runIn(t, noRepo, append(append([]string{"add", "-n", "-Q"}, args...), file)...)
		line := strings.TrimSuffix(errs, "\n")
		if code != 2 || out != "" || strings.Contains(line, "\n") || !strings.Contains(line, strings.Join(args, " ")) ||
			!strings.Contains(line, "supported: unixfs-v1-2025 (--cid-version 1 --raw-leaves=true --chunker size-1048576), kubo-v1-default (--cid-version 1 --raw-leaves=true --chunker size-262144)") {
			t.Errorf("fungi add %v: stdout %q, stderr %q, exit %d; want one line naming the profiles", args, out, errs, code)
		}
	}

	// the same flags when storing: -Q prints the root CID and nothing else
	repo := filepath.Join(t.TempDir(), "repo")
	if _, errs, code := runIn(t, repo, "init", "--ec", "4/2"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-r", "-Q", tree}, treeV2025},
		{[]string{"-Q", "--cid-version", "1", "--chunker", "size-262144", file}, fileKubo},
		{[]string{"--quieter", "--recursive", "--cid-version", "1", "--raw-leaves", "--chunker", "size-262144", tree}, treeKubo},
	} {
		out, errs, code := runIn(t, repo, append([]string{"add"}, tc.args...)...)
		if code != 0 || out != tc.want+"\n" || errs != "" {
			t.Errorf("fungi add %v = %q (stderr %q, exit %d); want %q", tc.args, out, errs, code, tc.want)
		}
	}
	if out, errs, code := runIn(t, repo, "add", "--chunker", "rabin", "-r", tree); code != 2 || out != "" || !strings.Contains(errs, "--chunker rabin") || !strings.Contains(errs, "no profile matches") {
		t.Errorf("add --chunker rabin on a repo: %q %q %d", out, errs, code)
	}
}

// The same Kubo flags give the same CIDs in fungi and in Kubo (with its
// default config); make test builds Kubo first (scripts/kubo.sh).
func TestAddKuboFlagsAgainstKubo(t *testing.T) {
	bin := kuboBin(t)
	file, tree := addVectors(t)
	for _, flags := range [][]string{
		{"--cid-version", "1", "--raw-leaves", "--chunker", "size-1048576"},
		{"--cid-version", "1", "--chunker", "size-262144"},
		{"--cid-version", "1", "--raw-leaves", "--chunker", "size-262144"},
	} {
		for _, path := range []string{file, tree} {
			out, errs, code := runIn(t, t.TempDir(), append(append([]string{"add", "-n", "-r", "-Q"}, flags...), path)...)
			if code != 0 {
				t.Fatalf("fungi add %v: %s", flags, errs)
			}
			if want := kuboAdd(t, bin, "", path, flags...); strings.TrimSpace(out) != want {
				t.Errorf("add %v %s: fungi %s, kubo %s", flags, filepath.Base(path), strings.TrimSpace(out), want)
			}
		}
	}
}

// oneLine checks a failed command: non-zero exit, nothing on stdout, one
// line on stderr that says want.
func oneLine(t *testing.T, args []string, out, errs string, code int, want string) {
	t.Helper()
	line := strings.TrimSuffix(errs, "\n")
	if code == 0 || out != "" || line == "" || strings.Contains(line, "\n") || !strings.Contains(line, want) {
		t.Errorf("fungi %v: stdout %q, stderr %q, exit %d; want one line with %q", args, out, errs, code, want)
	}
}

// fungi init --gateway, and fungi config: get, set, show and bad input,
// on a repo without and with a daemon.
func TestConfigCommand(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ flag, want string }{
		{"", "127.0.0.1:8080"},
		{"127.0.0.1:9191", "127.0.0.1:9191"},
		{"off", ""},
		{"=", ""}, // --gateway=""
	} {
		repo := filepath.Join(dir, "g"+strings.ReplaceAll(tc.flag, ":", "_"))
		args := []string{"init"}
		if tc.flag == "=" {
			args = append(args, "--gateway=")
		} else if tc.flag != "" {
			args = append(args, "--gateway", tc.flag)
		}
		if _, errs, code := runIn(t, repo, args...); code != 0 {
			t.Fatalf("%v: %s", args, errs)
		}
		if out, errs, code := runIn(t, repo, "config", "gateway.listen"); code != 0 || out != tc.want+"\n" {
			t.Errorf("%v: gateway.listen = %q (%s)", args, out, errs)
		}
	}
	bad := filepath.Join(dir, "bad")
	out, errs, code := runIn(t, bad, "init", "--gateway", "nowhere")
	oneLine(t, []string{"init", "--gateway", "nowhere"}, out, errs, code, `gateway.listen "nowhere": want host:port`)
	if _, err := os.Stat(bad); err == nil {
		t.Error("a refused init created the repo")
	}

	repo := filepath.Join(dir, "repo")
	if _, errs, code := runIn(t, repo, "init"); code != 0 {
		t.Fatal(errs)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gateway.listen"}, "127.0.0.1:8080\n"},
		{[]string{"--json", "gateway.listen"}, "\"127.0.0.1:8080\"\n"},
		{[]string{"cluster.no_store"}, "false\n"},
		{[]string{"zdb"}, "{\n  \"data\": \"zdb/data\",\n  \"index\": \"zdb/index\"\n}\n"},
		{[]string{"cluster.domain", "rack 1"}, ""},
		{[]string{"cluster.domain"}, "rack 1\n"},
		{[]string{"--bool", "cluster.no_store", "true"}, ""},
		{[]string{"cluster.no_store"}, "true\n"},
		{[]string{"--json", "cluster.voters", "5"}, ""},
		{[]string{"cluster.voters"}, "5\n"},
		{[]string{"gateway.listen", "127.0.0.1:8181"}, ""},
		{[]string{"--json", `gateway.public_gateways."example.com"`, `{"Paths": ["/ipfs"], "UseSubdomains": true}`}, ""},
		{[]string{"gateway.public_gateways.example.com.UseSubdomains"}, "true\n"},
		{[]string{"--json", "p2p.listen.0", `"/ip4/127.0.0.1/tcp/4101"`}, ""},
		{[]string{"p2p.listen.0"}, "/ip4/127.0.0.1/tcp/4101\n"},
	} {
		out, errs, code := runIn(t, repo, append([]string{"config"}, tc.args...)...)
		if code != 0 || out != tc.want || errs != "" {
			t.Errorf("fungi config %v = %q (stderr %q, exit %d); want %q", tc.args, out, errs, code, tc.want)
		}
	}
	before, _ := os.ReadFile(filepath.Join(repo, "config.json"))
	for _, tc := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"gateway.lisen"}, `unknown key "gateway.lisen" (gateway has: listen,`, 2},
		{[]string{"nope", "x"}, `unknown key "nope"`, 2},
		{[]string{"cluster.voters", "3"}, "cluster.voters is a number, not a string (use --json or --bool for other values)", 2},
		{[]string{"--json", "cluster.voters", "4"}, "cluster.voters is 4: use 3 or 5", 2},
		{[]string{"--json", "cluster.voters", "{"}, `--json: "{" is not JSON`, 2},
		{[]string{"--bool", "cluster.no_store", "maybe"}, `--bool: "maybe" is not true or false`, 2},
		{[]string{"--json", "--bool", "cluster.no_store", "true"}, "exclude each other", 2},
		{[]string{"gateway.listen", "nocolon"}, `gateway.listen "nocolon": want host:port`, 2},
		{[]string{"--json", "zdb", `{"data": "d"}`}, "zdb.data and zdb.index are required", 2},
		{[]string{"p2p.listen.7"}, "p2p.listen has 2 entries: no index 7", 2},
		{[]string{"gateway.public_gateways.other.org.Paths", "x"}, `quote map keys that hold dots: gateway.public_gateways."other.org"`, 2},
		{[]string{}, "name a KEY", 2},
		{[]string{"a", "b", "c"}, `unexpected argument "c"`, 2},
		{[]string{"--frob", "x"}, "flag provided but not defined: -frob", 2},
	} {
		out, errs, code := runIn(t, repo, append([]string{"config"}, tc.args...)...)
		oneLine(t, tc.args, out, errs, code, tc.want)
		if code != tc.code {
			t.Errorf("fungi config %v: exit %d, want %d", tc.args, code, tc.code)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(repo, "config.json")); !bytes.Equal(before, after) {
		t.Errorf("refused changes changed config.json:\n%s", after)
	}
	out, errs, code = runIn(t, filepath.Join(dir, "none"), "config", "gateway.listen")
	oneLine(t, []string{"config (no repo)"}, out, errs, code, "fungi init")

	// show prints the whole config, which the daemon's strict reader takes
	out, errs, code = runIn(t, repo, "config", "show")
	var cfg node.Config
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if code != 0 || dec.Decode(&cfg) != nil || cfg.Gateway.Listen != "127.0.0.1:8181" || cfg.Cluster.Domain != "rack 1" ||
		!cfg.Cluster.NoStore || cfg.Cluster.Voters != 5 || !cfg.Gateway.PublicGateways["example.com"].UseSubdomains || cfg.Validate() != nil {
		t.Fatalf("config show = %q (%s)", out, errs)
	}
	if !bytes.Equal([]byte(out), before) {
		t.Errorf("config show differs from config.json:\n%s\n%s", out, before)
	}

	// with a daemon on the repo (here: something answering at its api
	// address), the file changes and stderr says to restart it
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.WriteFile(filepath.Join(repo, "api"), []byte(l.Addr().String()), 0o644)
	out, errs, code = runIn(t, repo, "config", "cluster.domain", "rack 2")
	if code != 0 || out != "" || !strings.Contains(errs, "restart it for the change to apply") || strings.Count(errs, "\n") != 1 {
		t.Errorf("set with a daemon: %q %q %d", out, errs, code)
	}
	if out, _, _ := runIn(t, repo, "config", "cluster.domain"); out != "rack 2\n" {
		t.Errorf("after the set with a daemon: %q", out)
	}
}
