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
