package main

// Interoperability with Kubo (built by scripts/kubo.sh): the CIDs
// `fungi add` computes equal `ipfs add`'s for the same trees, in both
// profiles, including HAMT-sharded directories on both sides of Kubo's
// sharding threshold.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func kuboBin(t *testing.T) string {
	t.Helper()
	bin, _ := filepath.Abs("../../.tools/ipfs")
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("Kubo not built: run `make deps` (scripts/kubo.sh)")
	}
	return bin
}

// kuboAdd runs `ipfs add -r -n -Q` in a fresh repo initialised with profile
// ("" for Kubo's defaults), with extra flags.
func kuboAdd(t *testing.T, bin, profile, path string, extra ...string) string {
	t.Helper()
	repo := t.TempDir()
	env := append(os.Environ(), "IPFS_PATH="+repo)
	args := []string{"init", "-e"}
	if profile != "" {
		args = append(args, "--profile", profile)
	}
	init := exec.Command(bin, args...)
	init.Env = env
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("ipfs init: %v\n%s", err, out)
	}
	add := exec.Command(bin, append([]string{"add", "-r", "-n", "-Q"}, append(extra, path)...)...)
	add.Env = env
	out, err := add.CombinedOutput()
	if err != nil {
		t.Fatalf("ipfs add: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func fungiHash(t *testing.T, profile, path string) string {
	t.Helper()
	out, err := exec.Command(fungiBin, "add", "-n", "-q", "--profile", profile, path).CombinedOutput()
	if err != nil {
		t.Fatalf("fungi add: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// tree writes a directory of n small files (names of nameLen bytes,
// unicode included) plus some structure.
func tree(t *testing.T, n, nameLen int) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tree")
	os.MkdirAll(filepath.Join(root, "empty dir"), 0o755)
	os.MkdirAll(filepath.Join(root, "nested", "déjà", "vu"), 0o755)
	os.WriteFile(filepath.Join(root, "nested", "déjà", "vu", "big"), vectorContent("big", 3<<20+5), 0o644)
	os.WriteFile(filepath.Join(root, "empty file"), nil, 0o644)
	os.WriteFile(filepath.Join(root, ".hidden"), []byte("ipfs add -r leaves me out"), 0o644)
	os.Symlink("nested/déjà", filepath.Join(root, "a link"))
	many := filepath.Join(root, "many")
	os.MkdirAll(many, 0o755)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("ü-%d-", i)
		name += strings.Repeat("x", max(0, nameLen-len(name)))
		os.WriteFile(filepath.Join(many, name), []byte(fmt.Sprint("file ", i)), 0o644)
	}
	return root
}

func TestKuboInterop(t *testing.T) {
	bin := kuboBin(t)
	cases := []struct {
		name       string
		n, nameLen int
	}{
		{"small", 10, 8},
		// about the 256 KiB threshold: each entry costs ~48 bytes (links
		// estimate) or ~60 (block estimate), so these land on both sides
		{"below threshold", 3500, 16},
		{"between estimates", 4500, 16},
		{"sharded", 6000, 16},
		{"long names", 1200, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := tree(t, tc.n, tc.nameLen)
			if got, want := fungiHash(t, "unixfs-v1-2025", root), kuboAdd(t, bin, "unixfs-v1-2025", root); got != want {
				t.Errorf("unixfs-v1-2025: fungi %s, kubo %s", got, want)
			}
			if got, want := fungiHash(t, "kubo-v1-default", root), kuboAdd(t, bin, "", root, "--cid-version", "1"); got != want {
				t.Errorf("kubo-v1-default: fungi %s, kubo %s", got, want)
			}
		})
	}
}
