package main

import (
	"crypto/sha256"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
