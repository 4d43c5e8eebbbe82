package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipld/go-car/v2"
	mh "github.com/multiformats/go-multihash"

	"github.com/fungistor/fungistor/node"
	"github.com/fungistor/fungistor/testnet"
)

// gatewayOf returns the base URL of node i's gateway.
func (c *cluster) gatewayOf(i int) string {
	c.t.Helper()
	id := c.mustID(i)
	if id.Gateway == "" {
		c.t.Fatalf("node %d runs no gateway", i)
	}
	return "http://" + id.Gateway
}

// noRedirects shows the gateway's redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// fetch does one gateway request; hdr are "Key: value" pairs.
func fetch(t *testing.T, method, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ": ")
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, body
}

func wantStatus(t *testing.T, what string, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		b := string(body)
		if len(b) > 300 {
			b = b[:300]
		}
		t.Fatalf("%s: status %d, want %d: %s", what, resp.StatusCode, want, b)
	}
}

// A 5-node testnet: content added on node 1 is served by node 5's gateway
// (a no_store node: it holds no fragment) as the IPFS specs ask: files,
// listings, index.html, raw blocks, CARs, ranges, cache headers, status
// codes, subdomains, identity CIDs, HAMT directories, and a 504 when the
// holders are gone.
func TestGateway(t *testing.T) {
	src := t.TempDir()
	tree := filepath.Join(src, "site")
	randomFile(t, filepath.Join(tree, "big.bin"), 3*mib+12345, 7)
	randomFile(t, filepath.Join(tree, "one.bin"), mib+1, 8)
	os.WriteFile(filepath.Join(tree, "hello.txt"), []byte("hello gateway\n"), 0o644)
	os.MkdirAll(filepath.Join(tree, "www"), 0o755)
	os.WriteFile(filepath.Join(tree, "www", "index.html"), []byte("<h1>fungi</h1>\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "empty"), nil, 0o644)
	// DNSLink names, as Kubo's tests set them: IPFS_NS_MAP (the daemons
	// inherit it); the CID is known before anything is stored
	hash, err := exec.Command(fungiBin, "add", "--only-hash", "-Q", tree).Output()
	if err != nil {
		t.Fatal(err)
	}
	key := newIPNSKey(t)
	t.Setenv("IPFS_NS_MAP", "site.fungi.example:/ipfs/"+strings.TrimSpace(string(hash))+
		",named.fungi.example:"+key.key())
	t.Setenv(node.DebugAPIEnv, "1")
	// node 5 holds nothing (no_store): its gateway reads everything from
	// the others
	c := upTestnet(t, testnet.Options{N: 5, NoStore: []int{5}, Configure: func(i int, cfg *node.Config) {
		cfg.Coding = "4/2"
		// a public subdomain gateway with inline DNSLink, as Kubo's
		// Gateway.PublicGateways
		cfg.Gateway.PublicGateways = map[string]*node.PublicGateway{
			"gw.fungi.example": {Paths: []string{"/ipfs", "/ipns"}, UseSubdomains: true, InlineDNSLink: true},
		}
	}}, 2*time.Minute)
	root := c.addBoth(1, tree)
	gw := c.gatewayOf(5)
	if st := c.st.Nodes[4].Gateway; "http://"+st != gw {
		t.Errorf("testnet says node 5's gateway is %s, the node says %s", st, gw)
	}
	bigBytes, _ := os.ReadFile(filepath.Join(tree, "big.bin"))

	// files byte-exact, with the spec's headers
	for _, name := range []string{"big.bin", "one.bin", "hello.txt", "empty"} {
		want, _ := os.ReadFile(filepath.Join(tree, name))
		resp, body := fetch(t, "GET", gw+"/ipfs/"+root+"/"+name)
		wantStatus(t, name, resp, body, 200)
		if !bytes.Equal(body, want) {
			t.Fatalf("%s: %d bytes differ from the %d added", name, len(body), len(want))
		}
		if p := resp.Header.Get("X-Ipfs-Path"); p != "/ipfs/"+root+"/"+name {
			t.Errorf("%s: X-Ipfs-Path %q", name, p)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("%s: Cache-Control %q, want immutable", name, cc)
		}
		if resp.Header.Get("Etag") == "" {
			t.Errorf("%s: no Etag", name)
		}
	}
	// HEAD: the size, no body; If-None-Match: 304
	resp, body := fetch(t, "HEAD", gw+"/ipfs/"+root+"/big.bin")
	wantStatus(t, "HEAD", resp, body, 200)
	if resp.ContentLength != int64(len(bigBytes)) || len(body) != 0 {
		t.Fatalf("HEAD: length %d, body %d", resp.ContentLength, len(body))
	}
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"/big.bin", "If-None-Match: "+resp.Header.Get("Etag"))
	wantStatus(t, "If-None-Match", resp, body, 304)

	// a directory listing names every entry; a directory with index.html
	// serves it
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"/")
	wantStatus(t, "listing", resp, body, 200)
	for _, name := range []string{"big.bin", "one.bin", "hello.txt", "www", "empty"} {
		if !bytes.Contains(body, []byte(">"+name+"<")) {
			t.Errorf("listing lacks %s", name)
		}
	}
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"/www/")
	wantStatus(t, "index.html", resp, body, 200)
	if string(body) != "<h1>fungi</h1>\n" {
		t.Fatalf("index.html: %q", body)
	}

	// 20 ranges across block boundaries
	rng := rand.New(rand.NewPCG(1, 2))
	for k := 0; k < 20; k++ {
		b := int64(1+rng.IntN(3)) * mib
		from := max(b-int64(rng.IntN(5000)), 0)
		to := min(b+int64(rng.IntN(5000)), int64(len(bigBytes))-1)
		resp, body := fetch(t, "GET", gw+"/ipfs/"+root+"/big.bin", fmt.Sprintf("Range: bytes=%d-%d", from, to))
		wantStatus(t, "range", resp, body, 206)
		if !bytes.Equal(body, bigBytes[from:to+1]) {
			t.Fatalf("range %d-%d: wrong bytes", from, to)
		}
	}
	// a bounded range fetches the fragments of its own block, not the ten
	// blocks boxo's reader would prefetch
	fetched := func() (n float64) {
		for _, v := range c.metrics(5, "fungi_fragments_fetched_total") {
			n += v
		}
		return n
	}
	before := fetched()
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"/big.bin", "Range: bytes=100-109")
	wantStatus(t, "small range", resp, body, 206)
	if !bytes.Equal(body, bigBytes[100:110]) {
		t.Fatal("small range: wrong bytes")
	}
	if n := fetched() - before; n > 6 { // K=4, plus hedges
		t.Errorf("a 10-byte range fetched %v fragments (coding 4/2: want at most 6)", n)
	}

	// a suffix range and a multi-range
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"/big.bin", "Range: bytes=-100")
	wantStatus(t, "suffix range", resp, body, 206)
	if !bytes.Equal(body, bigBytes[len(bigBytes)-100:]) {
		t.Fatal("suffix range: wrong bytes")
	}
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"/big.bin", "Range: bytes=0-9,2097150-2097160")
	wantStatus(t, "multi-range", resp, body, 206)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") ||
		!bytes.Contains(body, bigBytes[:10]) || !bytes.Contains(body, bigBytes[2097150:2097161]) {
		t.Fatalf("multi-range: %s, %d bytes", resp.Header.Get("Content-Type"), len(body))
	}

	// a raw block hashes to its CID
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"?format=raw")
	wantStatus(t, "raw root", resp, body, 200)
	checkBlock(t, root, body)
	if resp.Header.Get("Content-Type") != "application/vnd.ipld.raw" {
		t.Errorf("raw: Content-Type %q", resp.Header.Get("Content-Type"))
	}
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"/hello.txt", "Accept: application/vnd.ipld.raw")
	wantStatus(t, "raw leaf", resp, body, 200)
	if string(body) != "hello gateway\n" || resp.Header.Get("X-Ipfs-Roots") == "" {
		t.Fatalf("raw leaf: %q, X-Ipfs-Roots %q", body, resp.Header.Get("X-Ipfs-Roots"))
	}

	// a CAR of the whole tree: every block verifies, and together they
	// rebuild every file
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"?format=car")
	wantStatus(t, "car", resp, body, 200)
	if n := carBlocks(t, body, root); n < 8 {
		t.Fatalf("car: only %d blocks", n)
	}
	// dag-scope=entity of a file, entity-bytes of a range
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"/big.bin?format=car&dag-scope=block")
	wantStatus(t, "car block scope", resp, body, 200)
	if n := carBlocks(t, body, ""); n != 2 { // the directory and the file's root
		t.Fatalf("car dag-scope=block: %d blocks", n)
	}
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"/big.bin?format=car&dag-scope=entity&entity-bytes=0:10")
	wantStatus(t, "car entity-bytes", resp, body, 200)
	if n := carBlocks(t, body, ""); n != 3 { // directory, file root, first leaf
		t.Fatalf("car entity-bytes=0:10: %d blocks", n)
	}

	// subdomain requests on localhost, as Kubo answers them
	rc, _ := cid.Decode(root)
	sub := rc.String() + ".ipfs.localhost"
	resp, body = fetch(t, "GET", gw+"/hello.txt", "Host: "+sub)
	wantStatus(t, "subdomain", resp, body, 200)
	if string(body) != "hello gateway\n" {
		t.Fatalf("subdomain: %q", body)
	}
	resp, body = fetch(t, "GET", strings.Replace(gw, "127.0.0.1", "localhost", 1)+"/ipfs/"+root+"/hello.txt")
	wantStatus(t, "path on localhost", resp, body, http.StatusMovedPermanently)
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "http://"+sub+":") {
		t.Fatalf("path on localhost: redirected to %q, want %s", loc, sub)
	}

	// the public gateway hostname: subdomains, path redirects, inline
	// DNSLink (site.fungi.example as one label)
	resp, body = fetch(t, "GET", gw+"/hello.txt", "Host: "+rc.String()+".ipfs.gw.fungi.example")
	wantStatus(t, "public subdomain", resp, body, 200)
	if string(body) != "hello gateway\n" {
		t.Fatalf("public subdomain: %q", body)
	}
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"/hello.txt", "Host: gw.fungi.example")
	wantStatus(t, "public path", resp, body, http.StatusMovedPermanently)
	if loc := resp.Header.Get("Location"); loc != "http://"+rc.String()+".ipfs.gw.fungi.example/hello.txt" {
		t.Fatalf("public path: redirected to %q", loc)
	}
	resp, body = fetch(t, "GET", gw+"/hello.txt", "Host: site-fungi-example.ipns.gw.fungi.example")
	wantStatus(t, "inline dnslink", resp, body, 200)
	if string(body) != "hello gateway\n" {
		t.Fatalf("inline dnslink: %q", body)
	}

	// CAR parameters: version, order and duplicates as asked
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"?format=car&car-version=1&car-order=dfs&car-dups=y")
	wantStatus(t, "car params", resp, body, 200)
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "dups=y") || !strings.Contains(ct, "order=dfs") {
		t.Errorf("car params: Content-Type %q", ct)
	}
	carBlocks(t, body, root)
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root, "Accept: application/vnd.ipld.car; version=2")
	if resp.StatusCode == 200 {
		t.Errorf("a CARv2 request was answered 200 (%s)", resp.Header.Get("Content-Type"))
	}

	// identity CIDs need no storage
	id, _ := cid.V1Builder{Codec: cid.Raw, MhType: mh.IDENTITY}.Sum([]byte("inline"))
	resp, body = fetch(t, "GET", gw+"/ipfs/"+id.String())
	wantStatus(t, "identity", resp, body, 200)
	if string(body) != "inline" {
		t.Fatalf("identity: %q", body)
	}

	// IPNS: a signed record put on node 1 resolves on node 5's gateway
	recFile, rec := key.record(t, root, 1, time.Now().Add(time.Hour))
	c.must(1, "routing", "put", key.key(), recFile)
	resp, body = fetch(t, "GET", gw+key.key()+"/hello.txt")
	wantStatus(t, "ipns", resp, body, 200)
	if string(body) != "hello gateway\n" {
		t.Fatalf("ipns: %q", body)
	}
	resp, body = fetch(t, "GET", gw+key.key()+"?format=ipns-record")
	wantStatus(t, "ipns record", resp, body, 200)
	if !bytes.Equal(body, rec) {
		t.Fatal("ipns record: not the bytes put")
	}
	resp, body = fetch(t, "GET", gw+newIPNSKey(t).key()+"/")
	wantStatus(t, "unknown ipns name", resp, body, 404)
	// DNSLink: by path, by Host header, and a DNSLink to an IPNS name
	for _, r := range []struct{ url, host string }{
		{gw + "/ipns/site.fungi.example/hello.txt", ""},
		{gw + "/hello.txt", "site.fungi.example"},
		{gw + "/ipns/named.fungi.example/hello.txt", ""},
	} {
		var hdr []string
		if r.host != "" {
			hdr = append(hdr, "Host: "+r.host)
		}
		resp, body = fetch(t, "GET", r.url, hdr...)
		wantStatus(t, "dnslink "+r.url+" "+r.host, resp, body, 200)
		if string(body) != "hello gateway\n" {
			t.Fatalf("dnslink %s %s: %q", r.url, r.host, body)
		}
	}

	// CONNECT as Kubo: 200
	resp, body = fetch(t, "CONNECT", gw+"/")
	wantStatus(t, "CONNECT", resp, body, 200)

	// status codes: a bad CID 400, unknown content 404, a missing path 404
	resp, body = fetch(t, "GET", gw+"/ipfs/not-a-cid")
	wantStatus(t, "bad CID", resp, body, 400)
	unknown, _ := cid.V1Builder{Codec: cid.Raw, MhType: mh.SHA2_256}.Sum([]byte("nobody added this"))
	resp, body = fetch(t, "GET", gw+"/ipfs/"+unknown.String())
	wantStatus(t, "unknown CID", resp, body, 404)
	resp, body = fetch(t, "GET", gw+"/ipfs/"+root+"/no/such/path")
	wantStatus(t, "missing path", resp, body, 404)

	// a HAMT-sharded directory of 5,000 entries resolves paths
	hamt := filepath.Join(src, "hamt")
	os.MkdirAll(hamt, 0o755)
	for k := 0; k < 5000; k++ {
		os.WriteFile(filepath.Join(hamt, fmt.Sprintf("entry-%05d.txt", k)), []byte(fmt.Sprintf("entry %d\n", k%7)), 0o644)
	}
	hroot := c.addBoth(1, hamt)
	resp, body = fetch(t, "GET", gw+"/ipfs/"+hroot+"?format=raw")
	wantStatus(t, "hamt root", resp, body, 200)
	for _, k := range []int{0, 1234, 4999} {
		resp, body := fetch(t, "GET", fmt.Sprintf("%s/ipfs/%s/entry-%05d.txt", gw, hroot, k))
		wantStatus(t, "hamt entry", resp, body, 200)
		if want := fmt.Sprintf("entry %d\n", k%7); string(body) != want {
			t.Fatalf("hamt entry %d: %q", k, body)
		}
	}
	resp, body = fetch(t, "GET", gw+"/ipfs/"+hroot+"/entry-99999.txt")
	wantStatus(t, "hamt missing entry", resp, body, 404)

	// what the gateway serves by path, cat/ls/get reach by the same path
	if got := c.must(5, "cat", root+"/hello.txt"); got != "hello gateway" {
		t.Fatalf("cat CID/hello.txt: %q", got)
	}
	if got := c.must(5, "cat", "/ipfs/"+hroot+"/entry-01234.txt"); got != fmt.Sprintf("entry %d", 1234%7) {
		t.Fatalf("cat of a HAMT entry by path: %q", got)
	}
	if got := c.must(5, "ls", "/ipfs/"+root+"/www"); !strings.Contains(got, "index.html") {
		t.Fatalf("ls by path: %q", got)
	}
	out := filepath.Join(t.TempDir(), "www-copy")
	c.must(5, "get", "-q", root+"/www", "-o", out)
	if b, err := os.ReadFile(filepath.Join(out, "index.html")); err != nil || string(b) != "<h1>fungi</h1>\n" {
		t.Fatalf("get by path: %q, %v", b, err)
	}
	oneLineError(t, "cat of a missing path", c.fungiOn(5, nil, "cat", root+"/no/such"), "no entry")
	oneLineError(t, "cat through a file", c.fungiOn(5, nil, "cat", root+"/hello.txt/x"), "not a directory")

	// metrics: requests by status and format, bytes, first byte
	resp, body = fetch(t, "GET", "http://"+c.st.Nodes[4].API+"/metrics")
	for _, want := range []string{
		`fungi_gateway_requests_total{format="raw",method="GET",status="200"}`,
		`fungi_gateway_requests_total{format="car",method="GET",status="200"}`,
		`fungi_gateway_requests_total{format="deserialized",method="GET",status="404"}`,
		`fungi_gateway_requests_total{format="deserialized",method="GET",status="206"}`,
		`fungi_gateway_first_byte_seconds_count{format="deserialized"}`,
		"fungi_gateway_bytes_total ",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// holders gone: a 504 before any byte, never a 200 cut off (content
	// never read before: nothing of it in node 5's block cache)
	cold := filepath.Join(src, "cold.bin")
	randomFile(t, cold, 2*mib+7, 9)
	coldCID := c.addBoth(1, cold)
	for _, i := range []int{2, 3, 4} {
		if err := testnet.Stop(c.dir, []int{i}, true); err != nil {
			t.Fatal(err)
		}
	}
	resp, body = fetch(t, "GET", gw+"/ipfs/"+coldCID)
	wantStatus(t, "holders down", resp, body, 504)
	resp, body = fetch(t, "GET", gw+"/ipfs/"+coldCID, "Range: bytes=2000000-2000100")
	wantStatus(t, "holders down, range", resp, body, 504)
}

// checkBlock fails unless data hashes to c.
func checkBlock(t *testing.T, c string, data []byte) {
	t.Helper()
	want, err := cid.Decode(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := want.Prefix().Sum(data)
	if err != nil || !got.Equals(want) {
		t.Fatalf("block %s: data hashes to %v", c, got)
	}
}

// carBlocks reads a CAR, checks its root (unless "") and that every block
// hashes to its CID, and returns the number of blocks.
func carBlocks(t *testing.T, data []byte, root string) int {
	t.Helper()
	br, err := car.NewBlockReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("car: %v", err)
	}
	if len(br.Roots) != 1 || (root != "" && br.Roots[0].String() != root) {
		t.Fatalf("car roots %v, want %s", br.Roots, root)
	}
	n := 0
	for {
		b, err := br.Next()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatalf("car block %d: %v", n, err)
		}
		checkBlock(t, b.Cid().String(), b.RawData())
		n++
	}
}
