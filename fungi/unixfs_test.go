package fungi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// content is the vectors' generator: SHA256(seed || uint64_be(i)) for
// i = 0, 1, ..., cut to n bytes.
func content(seed string, n int) []byte {
	out := make([]byte, 0, n+32)
	for i := uint64(0); len(out) < n; i++ {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], i)
		sum := sha256.Sum256(append([]byte(seed), b[:]...))
		out = append(out, sum[:]...)
	}
	return out[:n]
}

type vectors struct {
	Files []struct {
		Seed    string `json:"seed"`
		Size    int    `json:"size"`
		V1_2025 string `json:"unixfs-v1-2025"`
		KuboV1  string `json:"kubo-v1-default"`
	} `json:"files"`
	Directories []struct {
		Layout  map[string][2]json.RawMessage `json:"layout"`
		V1_2025 string                        `json:"unixfs-v1-2025"`
		KuboV1  string                        `json:"kubo-v1-default"`
	} `json:"directories"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/cid-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Files) == 0 || len(v.Directories) == 0 {
		t.Fatal("no vectors")
	}
	return v
}

// The CIDs Kubo 0.43 computed for the same content and profile.
func TestKuboCIDVectors(t *testing.T) {
	v := loadVectors(t)
	ctx := context.Background()
	for _, f := range v.Files {
		data := content(f.Seed, f.Size)
		for _, tc := range []struct {
			p    Profile
			want string
		}{{ProfileV1_2025, f.V1_2025}, {ProfileKuboV1, f.KuboV1}} {
			nd, err := ImportFile(ctx, bytes.NewReader(data), tc.p, NewMemDAG(true))
			if err != nil {
				t.Fatal(err)
			}
			if got := nd.Cid().String(); got != tc.want {
				t.Errorf("%s %d bytes, %s: %s, Kubo says %s", f.Seed, f.Size, tc.p.Name, got, tc.want)
			}
		}
	}
	for _, d := range v.Directories {
		root := t.TempDir()
		for name, spec := range d.Layout {
			var seed string
			var size int
			json.Unmarshal(spec[0], &seed)
			json.Unmarshal(spec[1], &size)
			path := filepath.Join(root, name)
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, content(seed, size), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			p    Profile
			want string
		}{{ProfileV1_2025, d.V1_2025}, {ProfileKuboV1, d.KuboV1}} {
			c, err := ImportPath(ctx, root, tc.p, NewMemDAG(true), ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if c.String() != tc.want {
				t.Errorf("directory, %s: %s, Kubo says %s", tc.p.Name, c, tc.want)
			}
		}
	}
}
