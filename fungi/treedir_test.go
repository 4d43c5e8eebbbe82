package fungi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	mdag "github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// treeDirVectors is testdata/treedir/kubo-vectors.json, made by gen.py with
// Kubo 0.43's MFS.
type treeDirVectors struct {
	Kubo    string `json:"kubo"`
	Vectors []struct {
		Profile string `json:"profile"`
		Links   []struct {
			Name  string `json:"name"`
			Cid   string `json:"cid"`
			Tsize uint64 `json:"tsize"`
		} `json:"links"`
		Generated *struct {
			NamePrefix string `json:"name_prefix"`
			Seed       string `json:"seed"`
			N          int    `json:"n"`
		} `json:"generated"`
		WantRoot  string `json:"want_root"`
		WantTsize uint64 `json:"want_tsize"`
		WantKind  string `json:"want_kind"` // basic or hamt
	} `json:"vectors"`
}

// generatedLinks is gen.py's generator: entry i is a raw block of
// content(seed-i, (i*37)%300) named prefix+i.
func generatedLinks(prefix, seed string, n int) []DirLink {
	links := make([]DirLink, n)
	for i := range links {
		data := content(fmt.Sprintf("%s-%d", seed, i), (i*37)%300)
		h, _ := mh.Sum(data, mh.SHA2_256, -1)
		links[i] = DirLink{Name: fmt.Sprintf("%s%d", prefix, i), Cid: cid.NewCidV1(cid.Raw, h), Tsize: uint64(len(data))}
	}
	return links
}

type treeDirCase struct {
	name    string
	profile Profile
	links   []DirLink
	root    cid.Cid
	tsize   uint64
	kind    string
}

func loadTreeDirVectors(t testing.TB) []treeDirCase {
	t.Helper()
	b, err := os.ReadFile("testdata/treedir/kubo-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v treeDirVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var out []treeDirCase
	for i, vec := range v.Vectors {
		p, err := ParseProfile(vec.Profile)
		if err != nil {
			t.Fatal(err)
		}
		c := treeDirCase{profile: p, root: cid.MustParse(vec.WantRoot), tsize: vec.WantTsize, kind: vec.WantKind}
		if g := vec.Generated; g != nil {
			c.links = generatedLinks(g.NamePrefix, g.Seed, g.N)
			c.name = fmt.Sprintf("%d-%s-generated-%d", i, p.Name, g.N)
		} else {
			c.links = []DirLink{}
			for _, l := range vec.Links {
				c.links = append(c.links, DirLink{Name: l.Name, Cid: cid.MustParse(l.Cid), Tsize: l.Tsize})
			}
			c.name = fmt.Sprintf("%d-%s-%d-links", i, p.Name, len(c.links))
		}
		out = append(out, c)
	}
	if len(out) < 8 {
		t.Fatalf("only %d vectors", len(out))
	}
	return out
}

// dirKind says whether a directory's root block is a basic directory or a
// HAMT shard.
func dirKind(t testing.TB, b blocks.Block) string {
	t.Helper()
	nd, err := mdag.DecodeProtobuf(b.RawData())
	if err != nil {
		t.Fatal(err)
	}
	fsn, err := ft.FSNodeFromBytes(nd.Data())
	if err != nil {
		t.Fatal(err)
	}
	switch fsn.Type() {
	case ft.TDirectory:
		return "basic"
	case ft.THAMTShard:
		return "hamt"
	}
	return fsn.Type().String()
}

// The root CIDs and Tsizes Kubo 0.43's MFS gave for the same entries: at
// both sides of each profile's sharding threshold, 5,000 entries (a
// two-level HAMT), children of every kind, an empty directory.
func TestBuildDirKuboVectors(t *testing.T) {
	kinds := map[string]int{}
	for _, c := range loadTreeDirVectors(t) {
		t.Run(c.name, func(t *testing.T) {
			root, tsize, blks, err := BuildDir(c.links, c.profile)
			if err != nil {
				t.Fatal(err)
			}
			if !root.Equals(c.root) {
				t.Errorf("root %s, Kubo made %s", root, c.root)
			}
			if tsize != c.tsize {
				t.Errorf("tsize %d, Kubo says %d", tsize, c.tsize)
			}
			if len(blks) == 0 || !blks[0].Cid().Equals(root) {
				t.Fatalf("first block is not the root")
			}
			if k := dirKind(t, blks[0]); k != c.kind {
				t.Errorf("a %s directory, Kubo made a %s one", k, c.kind)
			}
			kinds[c.kind]++
		})
	}
	if kinds["basic"] == 0 || kinds["hamt"] == 0 {
		t.Errorf("vectors cover %v, want both kinds", kinds)
	}
}

// Every block decodes and matches its CID, the Tsize adds up, and boxo's
// directory reader over the blocks lists exactly the links given.
func TestBuildDirReadsBack(t *testing.T) {
	ctx := context.Background()
	for _, c := range loadTreeDirVectors(t) {
		t.Run(c.name, func(t *testing.T) {
			root, tsize, blks, err := BuildDir(c.links, c.profile)
			if err != nil {
				t.Fatal(err)
			}
			dag := NewMemDAG(false)
			var own uint64
			seen := map[cid.Cid]bool{}
			for _, b := range blks {
				if seen[b.Cid()] {
					t.Errorf("block %s twice", b.Cid())
				}
				seen[b.Cid()] = true
				if err := checkBlock(b.Cid(), b.RawData()); err != nil {
					t.Fatal(err)
				}
				nd, err := mdag.DecodeProtobuf(b.RawData())
				if err != nil {
					t.Fatal(err)
				}
				if _, err := ft.FSNodeFromBytes(nd.Data()); err != nil {
					t.Fatal(err)
				}
				own += uint64(len(b.RawData()))
				pn, _ := mdag.DecodeProtobufBlock(b)
				if err := dag.Add(ctx, pn); err != nil {
					t.Fatal(err)
				}
			}
			var children uint64
			for _, l := range c.links {
				children += l.Tsize
			}
			if tsize != own+children {
				t.Errorf("tsize %d, blocks %d + children %d", tsize, own, children)
			}
			rootNode, err := dag.Get(ctx, root)
			if err != nil {
				t.Fatal(err)
			}
			dir, err := uio.NewDirectoryFromNode(dag, rootNode)
			if err != nil {
				t.Fatal(err)
			}
			got, err := dir.Links(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.links) {
				t.Fatalf("reader lists %d links, want %d", len(got), len(c.links))
			}
			want := map[string]DirLink{}
			for _, l := range c.links {
				want[l.Name] = l
			}
			for _, l := range got {
				w, ok := want[l.Name]
				if !ok || !w.Cid.Equals(l.Cid) || w.Tsize != l.Size {
					t.Fatalf("reader lists %q %s %d, want %+v", l.Name, l.Cid, l.Size, w)
				}
				delete(want, l.Name)
			}
		})
	}
}

// The order of the links does not matter, and neither does history:
// boxo's DynamicDirectory grown past the threshold and shrunk back by
// removals ends where BuildDir of the final entries does.
func TestBuildDirOrderAndHistory(t *testing.T) {
	ctx := context.Background()
	links := generatedLinks("treedir-entry-", "treedir", 5000)
	for _, p := range Profiles {
		t.Run(p.Name, func(t *testing.T) {
			for _, n := range []int{100, 4300, 5000} {
				want, _, _, err := BuildDir(links[:n], p)
				if err != nil {
					t.Fatal(err)
				}
				shuffled := slices.Clone(links[:n])
				rand.New(rand.NewPCG(uint64(n), 1)).Shuffle(n, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				got, _, _, err := BuildDir(shuffled, p)
				if err != nil {
					t.Fatal(err)
				}
				if !got.Equals(want) {
					t.Errorf("%d links shuffled: %s, want %s", n, got, want)
				}
			}
			// Grow to 5,000 (sharded), shrink to 100 (basic again).
			dag := dirDAG{NewMemDAG(false)}
			dir, err := uio.NewDirectory(dag, uio.WithCidBuilder(p.CidBuilder()),
				uio.WithMaxHAMTFanout(p.HAMTShardWidth), uio.WithSizeEstimationMode(p.HAMTSizeEstimation))
			if err != nil {
				t.Fatal(err)
			}
			dir.SetHAMTShardingSize(p.HAMTShardingSize)
			for _, l := range links {
				if err := dir.AddChild(ctx, l.Name, &stubNode{c: l.Cid, tsize: l.Tsize}); err != nil {
					t.Fatal(err)
				}
			}
			for _, l := range links[100:] {
				if err := dir.RemoveChild(ctx, l.Name); err != nil {
					t.Fatal(err)
				}
			}
			nd, err := dir.GetNode()
			if err != nil {
				t.Fatal(err)
			}
			want, _, _, err := BuildDir(links[:100], p)
			if err != nil {
				t.Fatal(err)
			}
			if !nd.Cid().Equals(want) {
				t.Errorf("grown and shrunk: %s, BuildDir: %s", nd.Cid(), want)
			}
		})
	}
}

func TestBuildDirRejects(t *testing.T) {
	c := cid.MustParse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	for name, links := range map[string][]DirLink{
		"empty name": {{Name: "", Cid: c}},
		"slash":      {{Name: "a/b", Cid: c}},
		"undefined":  {{Name: "a"}},
		"duplicate":  {{Name: "a", Cid: c}, {Name: "b", Cid: c}, {Name: "a", Cid: c}},
	} {
		if _, _, _, err := BuildDir(links, DefaultProfile); !errors.Is(err, ErrBadDirLink) {
			t.Errorf("%s: err %v, want ErrBadDirLink", name, err)
		}
	}
	never := DefaultProfile
	never.HAMTShardingSize = 0
	_, _, blks, err := BuildDir(generatedLinks("x", "y", 10000), never)
	if err != nil || len(blks) != 1 || dirKind(t, blks[0]) != "basic" {
		t.Errorf("threshold 0: %d blocks, %v; want one basic directory", len(blks), err)
	}
	bad := DefaultProfile
	bad.HAMTShardWidth = 100
	if _, _, _, err := BuildDir([]DirLink{{Name: "a", Cid: c}}, bad); err == nil {
		t.Error("a fanout of 100 was accepted")
	}
}

// BuildDir at the sizes a tree directory has: small, at the threshold
// (the costliest basic directory: boxo looks names up linearly) and
// sharded.
func BenchmarkBuildDir(b *testing.B) {
	for _, n := range []int{100, 4200, 20000} {
		links := generatedLinks("treedir-entry-", "treedir", n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if _, _, _, err := BuildDir(links, DefaultProfile); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
