package main

// Blocks of any codec and CAR files against a real Kubo (built by
// scripts/kubo.sh) and a 5-node cluster: `ipfs dag export` of a UnixFS
// tree (CIDv1 and CIDv0), a dag-json and a dag-cbor DAG imported with
// `fungi dag import` export back byte-identical with `fungi dag export`;
// single blocks read as `ipfs block get|stat` reads them; bad CARs fail
// with one line and store nothing.

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	mh "github.com/multiformats/go-multihash"
)

// kubo runs ipfs commands in a repo of its own, offline.
type kubo struct {
	t    *testing.T
	bin  string
	repo string
}

func newKubo(t *testing.T) *kubo {
	t.Helper()
	k := &kubo{t: t, bin: kuboBin(t), repo: t.TempDir()}
	k.run(nil, "init", "-e")
	return k
}

// run runs ipfs with stdin, failing the test on an error; it returns
// stdout.
func (k *kubo) run(stdin []byte, args ...string) []byte {
	k.t.Helper()
	cmd := exec.Command(k.bin, args...)
	cmd.Env = append(os.Environ(), "IPFS_PATH="+k.repo)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		k.t.Fatalf("ipfs %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

func (k *kubo) line(stdin []byte, args ...string) string {
	k.t.Helper()
	return strings.TrimSpace(string(k.run(stdin, args...)))
}

// export writes `ipfs dag export c` to a file and returns its path and
// bytes.
func (k *kubo) export(c string) (string, []byte) {
	k.t.Helper()
	b := k.run(nil, "dag", "export", c)
	path := filepath.Join(k.t.TempDir(), c+".car")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		k.t.Fatal(err)
	}
	return path, b
}

// exportOn runs fungi dag export on node i and returns the CAR.
func (c *cluster) exportOn(i int, root string) []byte {
	c.t.Helper()
	var buf bytes.Buffer
	r := c.fungiOn(i, &buf, "dag", "export", root)
	if r.code != 0 {
		c.t.Fatalf("node %d: fungi dag export %s: exit %d: %s", i, root, r.code, r.stderr)
	}
	return buf.Bytes()
}

// carSections lists the CIDs of a CARv1's sections, in order.
func carSections(t testing.TB, b []byte) []cid.Cid {
	t.Helper()
	br, err := car.NewBlockReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out []cid.Cid
	for {
		blk, err := br.Next()
		if err != nil {
			return out
		}
		out = append(out, blk.Cid())
	}
}

// rawCAR builds a CARv1 with one root from sections (CID, data).
func rawCAR(root cid.Cid, sections ...[]byte) []byte {
	// {"roots": [root], "version": 1} in DAG-CBOR, as go-car writes it
	cb := append([]byte{0}, root.Bytes()...)
	h := []byte{0xa2, 0x65, 'r', 'o', 'o', 't', 's', 0x81, 0xd8, 0x2a, 0x58, byte(len(cb))}
	h = append(h, cb...)
	h = append(h, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01)
	out := binary.AppendUvarint(nil, uint64(len(h)))
	out = append(out, h...)
	for _, s := range sections {
		out = binary.AppendUvarint(out, uint64(len(s)))
		out = append(out, s...)
	}
	return out
}

func rawCID(t testing.TB, data []byte) cid.Cid {
	t.Helper()
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDAGKubo(t *testing.T) {
	k := newKubo(t)
	src := t.TempDir()
	tree := filepath.Join(src, "tree")
	bigSum := randomFile(t, filepath.Join(tree, "a", "b", "big.bin"), 3*mib+17, 400)
	randomFile(t, filepath.Join(tree, "a", "mid.bin"), mib+1, 401)
	randomFile(t, filepath.Join(tree, "top.bin"), 300, 402)
	randomFile(t, filepath.Join(tree, "a", "b", "c", "tiny"), 1, 403)
	randomFile(t, filepath.Join(tree, "a", "empty"), 0, 404)

	// in Kubo: the tree as CIDv1 (raw leaves) and CIDv0 (dag-pb leaves),
	// a raw block, a dag-json node linking the raw block and the CIDv1
	// tree, a dag-cbor node linking all of them, an identity CID and a
	// blake3 node
	u1 := k.line(nil, "add", "-r", "-Q", "--cid-version", "1", tree)
	u0 := k.line(nil, "add", "-r", "-Q", tree)
	big1 := k.line(nil, "add", "-Q", "--cid-version", "1", filepath.Join(tree, "a", "b", "big.bin"))
	big0 := k.line(nil, "add", "-Q", filepath.Join(tree, "a", "b", "big.bin"))
	raw := k.line([]byte("a raw block"), "block", "put")
	js := k.line([]byte(`{"name":"json","raw":{"/":"`+raw+`"},"tree":[1,{"/":"`+u1+`"}]}`), "dag", "put", "--store-codec", "dag-json")
	id := k.line([]byte(`{"id":true}`), "dag", "put", "--store-codec", "dag-cbor", "--hash", "identity")
	b3 := k.line([]byte(`{"r":{"/":"`+raw+`"}}`), "dag", "put", "--store-codec", "dag-cbor", "--hash", "blake3")
	cb := k.line([]byte(`{"json":{"/":"`+js+`"},"v0":{"/":"`+u0+`"},"id":{"/":"`+id+`"},"b3":{"/":"`+b3+`"},"raw":[{"/":"`+raw+`"},{"/":"`+raw+`"}]}`),
		"dag", "put", "--store-codec", "dag-cbor")
	carU1, wantU1 := k.export(u1)
	carJS, wantJS := k.export(js)
	carCB, wantCB := k.export(cb)
	_, wantU0 := k.export(u0)

	c := upCluster(t, 5, nil)
	l := c.leader(others(5))
	follower := others(5, l)[0]
	t.Logf("node %d leads; importing on node %d", l, follower)
	_, frags0, err := c.fragments(others(5))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("import", func(t *testing.T) {
		// the UnixFS tree first, on a follower (forwarded to the leader)
		out := c.must(follower, "dag", "import", "--stats", carU1)
		if want := "Pinned root\t" + u1 + "\tsuccess\nImported "; !strings.HasPrefix(out, want) {
			t.Fatalf("import output %q", out)
		}
		// the dag-json DAG as a CARv2 on stdin: all but its own block are
		// held already
		v2 := filepath.Join(t.TempDir(), "js-v2.car")
		if err := car.WrapV1File(carJS, v2); err != nil {
			t.Fatal(err)
		}
		b2, _ := os.ReadFile(v2)
		if r := c.fungiStdin(l, b2, "dag", "import", "-"); r.code != 0 || r.stdout != "Pinned root\t"+js+"\tsuccess\n" {
			t.Fatalf("CARv2 from stdin: exit %d, %q %q", r.code, r.stdout, r.stderr)
		}
		// the dag-cbor DAG links everything: imported on a third node,
		// twice (the second stores nothing new)
		for range 2 {
			if out := c.must(3, "dag", "import", carCB); out != "Pinned root\t"+cb+"\tsuccess" {
				t.Fatalf("import output %q", out)
			}
		}
		pins := strings.Fields(c.must(5, "pin", "ls"))
		for _, r := range []string{u1, js, cb} {
			if !slices.Contains(pins, r) {
				t.Errorf("root %s not pinned: %v", r, pins)
			}
		}
	})

	t.Run("export is byte-identical to Kubo's", func(t *testing.T) {
		for _, tc := range []struct {
			name, root string
			want       []byte
		}{{"unixfs v1", u1, wantU1}, {"unixfs v0", u0, wantU0}, {"dag-json", js, wantJS}, {"dag-cbor", cb, wantCB}} {
			for _, i := range []int{5, l} {
				got := c.exportOn(i, tc.root)
				if !bytes.Equal(got, tc.want) {
					gs, ws := carSections(t, got), carSections(t, tc.want)
					t.Errorf("%s from node %d: %d bytes, %d sections; Kubo's %d bytes, %d sections", tc.name, i, len(got), len(gs), len(tc.want), len(ws))
				}
			}
		}
	})

	t.Run("the gateway's CARs carry the same blocks", func(t *testing.T) {
		gw := c.gatewayOf(4)
		for _, tc := range []struct {
			root string
			want []byte
		}{{u1, wantU1}, {cb, wantCB}} {
			resp, body := fetch(t, "GET", gw+"/ipfs/"+tc.root+"?format=car")
			wantStatus(t, "CAR of "+tc.root, resp, body, 200)
			// identity CIDs are sections in dag export, not in a gateway
			// CAR (boxo's, as Kubo's gateway)
			noID := func(cs []cid.Cid) []cid.Cid {
				return slices.DeleteFunc(cs, func(c cid.Cid) bool { return c.Prefix().MhType == mh.IDENTITY })
			}
			got, want := noID(carSections(t, body)), noID(carSections(t, tc.want))
			slices.SortFunc(got, func(a, b cid.Cid) int { return strings.Compare(a.KeyString(), b.KeyString()) })
			slices.SortFunc(want, func(a, b cid.Cid) int { return strings.Compare(a.KeyString(), b.KeyString()) })
			if !slices.Equal(slices.Compact(got), want) {
				t.Errorf("gateway CAR of %s: %d blocks, Kubo's export %d", tc.root, len(got), len(want))
			}
		}
		// the codec formats of a dag-cbor block: the block itself, its
		// dag-json rendering, and a path through it into the raw block
		cbBlock := k.run(nil, "block", "get", cb)
		resp, body := fetch(t, "GET", gw+"/ipfs/"+cb+"?format=dag-cbor")
		wantStatus(t, "dag-cbor", resp, body, 200)
		if !bytes.Equal(body, cbBlock) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/vnd.ipld.dag-cbor") {
			t.Errorf("?format=dag-cbor: %s, %d bytes (block %d)", resp.Header.Get("Content-Type"), len(body), len(cbBlock))
		}
		// no codec conversion (IPIP-524, Kubo 0.43's default): 406
		resp, body = fetch(t, "GET", gw+"/ipfs/"+cb, "Accept: application/vnd.ipld.dag-json")
		wantStatus(t, "dag-json of a dag-cbor block", resp, body, 406)
		// a path through the dag-cbor node into the raw block it links
		resp, body = fetch(t, "GET", gw+"/ipfs/"+cb+"/raw/0")
		wantStatus(t, "path through dag-cbor", resp, body, 200)
		if string(body) != "a raw block" {
			t.Errorf("path through dag-cbor: %q", body)
		}
		resp, body = fetch(t, "GET", gw+"/ipfs/"+js+"?format=dag-json")
		wantStatus(t, "dag-json", resp, body, 200)
		if want := k.run(nil, "block", "get", js); !bytes.Equal(body, want) {
			t.Errorf("?format=dag-json of a dag-json block: %q, want %q", body, want)
		}
	})

	t.Run("block get and stat as Kubo", func(t *testing.T) {
		sections := carSections(t, wantCB)
		if len(sections) < 20 {
			t.Fatalf("%d sections", len(sections))
		}
		picks := []string{raw, js, cb, id, b3, u0, u1}
		for i := 0; i < len(sections); i += 7 {
			picks = append(picks, sections[i].String())
		}
		for n, b := range picks {
			i := n%5 + 1
			var got bytes.Buffer
			if r := c.fungiOn(i, &got, "block", "get", b); r.code != 0 {
				t.Fatalf("node %d: block get %s: %s", i, b, r.stderr)
			}
			if want := k.run(nil, "block", "get", b); !bytes.Equal(got.Bytes(), want) {
				t.Errorf("node %d: block get %s: %d bytes, Kubo %d", i, b, got.Len(), len(want))
			}
			if got, want := c.must(i, "block", "stat", b), k.line(nil, "block", "stat", b); got != want {
				t.Errorf("node %d: block stat %s: %q, Kubo %q", i, b, got, want)
			}
		}
	})

	t.Run("cat and ls of the imported trees", func(t *testing.T) {
		for _, f := range []string{big1, big0} {
			if sum, n := c.catSum(4, f); n != 3*mib+17 || sum != bigSum {
				t.Errorf("cat %s: %d bytes, sha256 match %v", f, n, sum == bigSum)
			}
		}
		for _, root := range []string{u1, u0} {
			ls := c.must(2, "ls", root)
			if !strings.Contains(ls, "top.bin") || !strings.Contains(ls, "a/") {
				t.Errorf("ls %s: %q", root, ls)
			}
		}
	})

	// what a good import stored, for the bad ones to leave as it is
	pinsBefore := c.must(1, "pin", "ls")
	_, fragsBefore, err := c.fragments(others(5))
	if err != nil {
		t.Fatal(err)
	}
	if fragsBefore <= frags0 {
		t.Fatalf("imports stored no fragments (%d, before %d)", fragsBefore, frags0)
	}

	t.Run("bad input stores nothing", func(t *testing.T) {
		// fresh content (nothing held), 3 MiB of raw leaves: a bad CAR
		// has stored some before it breaks
		fresh := filepath.Join(t.TempDir(), "fresh")
		randomFile(t, fresh, 3*mib, 410)
		fr := k.line(nil, "add", "-Q", "--cid-version", "1", fresh)
		_, good := k.export(fr)
		dir := t.TempDir()
		write := func(name string, b []byte) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
		last := carSections(t, good)
		corrupt := bytes.Clone(good)
		corrupt[len(corrupt)-100] ^= 0x01 // inside the last block
		huge := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, good...)
		hugeSection := append(bytes.Clone(good), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)
		a := []byte("not the root")
		notRoot := rawCAR(rawCID(t, []byte("the root")), append(rawCID(t, a).Bytes(), a...))
		big := make([]byte, 3*mib)
		copy(big, "a block over 2 MiB")
		bigCAR := rawCAR(rawCID(t, big), append(rawCID(t, big).Bytes(), big...))
		cases := []struct {
			what, path, want string
		}{
			{"truncated", write("truncated.car", good[:len(good)*2/3]), "truncated"},
			{"not a CAR", write("garbage.car", []byte("this is not a CAR file, just some text")), "bad CAR"},
			{"block not matching its CID", write("corrupt.car", corrupt), "integrity"},
			{"root not in the file", write("noroot.car", notRoot), "not in the CAR"},
			{"huge header varint", write("huge.car", huge), "bad CAR"},
			{"huge section varint", write("huge-section.car", hugeSection), "bad CAR"},
			{"block over 2 MiB", write("big.car", bigCAR), "limit"},
			{"no such file", filepath.Join(dir, "nothing.car"), "no such file"},
		}
		for _, tc := range cases {
			i := follower
			if tc.what == "truncated" {
				i = l
			}
			oneLineError(t, tc.what, c.fungiOn(i, nil, "dag", "import", tc.path), tc.want)
		}
		if got := c.must(1, "pin", "ls"); got != pinsBefore {
			t.Errorf("pins changed: %q, were %q", got, pinsBefore)
		}
		if _, n, err := c.fragments(others(5)); err != nil || n != fragsBefore {
			t.Errorf("fragments: %d (%v), were %d", n, err, fragsBefore)
		}
		for _, b := range []string{fr, last[len(last)-1].String()} {
			oneLineError(t, "block get after a failed import", c.fungiOn(2, nil, "block", "get", b), "not found")
		}
		oneLineError(t, "export of an unknown CID", c.fungiOn(2, nil, "dag", "export", fr), "not found")
		// a big block passes with the limit raised
		c.must(follower, "dag", "import", "--allow-big-block", "--pin-roots=false", filepath.Join(dir, "big.car"))
		// and the daemons still serve: the good CAR imports and exports
		if out := c.must(follower, "dag", "import", write("good.car", good)); out != "Pinned root\t"+fr+"\tsuccess" {
			t.Fatalf("import output %q", out)
		}
		if got := c.exportOn(5, fr); !bytes.Equal(got, good) {
			t.Error("export of the good CAR after the bad ones differs from Kubo's")
		}
	})

	t.Run("partial DAG", func(t *testing.T) {
		// a dag-cbor node linking a block that is nowhere
		nowhere := rawCID(t, []byte("nowhere"))
		p := k.line([]byte(`{"missing":{"/":"`+nowhere.String()+`"},"raw":{"/":"`+raw+`"}}`), "dag", "put", "--store-codec", "dag-cbor")
		pc, err := cid.Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		data := k.run(nil, "block", "get", p)
		path := filepath.Join(t.TempDir(), "partial.car")
		os.WriteFile(path, rawCAR(pc, append(pc.Bytes(), data...)), 0o644)
		r := c.fungiOn(follower, nil, "dag", "import", path)
		oneLineError(t, "pinning a partial DAG", r, "FAILED")
		// its block is stored all the same (as Kubo), and not pinned
		var got bytes.Buffer
		if r := c.fungiOn(5, &got, "block", "get", p); r.code != 0 || !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("block get of the partial DAG's root: %s", r.stderr)
		}
		if slices.Contains(strings.Fields(c.must(5, "pin", "ls")), p) {
			t.Error("a partial DAG was pinned")
		}
		if out := c.must(follower, "dag", "import", "--pin-roots=false", path); out != "" {
			t.Errorf("import --pin-roots=false printed %q", out)
		}
		// the export fails at the missing block, after the blocks before it
		// (as Kubo's), with one line
		r = c.fungiOn(5, nil, "dag", "export", p)
		if line := strings.TrimSuffix(r.stderr, "\n"); r.code == 0 || strings.Contains(line, "\n") || !strings.Contains(line, nowhere.String()) {
			t.Errorf("export of a partial DAG: exit %d, stderr %q", r.code, r.stderr)
		}
		if got := carSections(t, []byte(r.stdout)); len(got) != 2 || got[0] != pc {
			t.Errorf("export of a partial DAG wrote %v", got)
		}
	})
}

// A repo without a daemon imports and exports by itself.
func TestDAGLocalRepo(t *testing.T) {
	repo := t.TempDir()
	if _, errs, code := runFungi(t, time.Minute, repo, "init"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	vector := "../../fungi/testdata/kubo-export.car"
	want, err := os.ReadFile(vector)
	if err != nil {
		t.Fatal(err)
	}
	root := carSections(t, want)[0].String()
	out, errs, code := runFungi(t, time.Minute, repo, "dag", "import", "--stats", vector)
	if code != 0 || !strings.HasPrefix(out, "Pinned root\t"+root+"\tsuccess\nImported 25 blocks") {
		t.Fatalf("import: exit %d: %q %q", code, out, errs)
	}
	got, errs, code := runFungi(t, time.Minute, repo, "dag", "export", root)
	if code != 0 || got != string(want) {
		t.Fatalf("export: exit %d (%s): %d bytes, want %d", code, errs, len(got), len(want))
	}
	if out, _, _ := runFungi(t, time.Minute, repo, "block", "stat", "bafkreiapc25bzpn4lnz2cmquulal4cssx4xqlfe4iajfz4pqrpjnnin2rq"); out != "Key: bafkreiapc25bzpn4lnz2cmquulal4cssx4xqlfe4iajfz4pqrpjnnin2rq\nSize: 9\n" {
		t.Fatalf("block stat: %q", out)
	}
}
