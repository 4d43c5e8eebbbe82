package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// stuckNode knows one raw block and takes until release to deliver it;
// everything else is unknown.
type stuckNode struct {
	blk     blocks.Block
	release chan struct{}
	asked   chan struct{}
	once    sync.Once
}

func (n *stuckNode) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if !c.Equals(n.blk.Cid()) {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	n.once.Do(func() { close(n.asked) })
	select {
	case <-n.release:
		return n.blk, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (n *stuckNode) GetBlocks(ctx context.Context, cs []cid.Cid) <-chan blocks.Block {
	out := make(chan blocks.Block, len(cs))
	for _, c := range cs {
		if b, err := n.GetBlock(ctx, c); err == nil {
			out <- b
		}
	}
	close(out)
	return out
}

func (n *stuckNode) HasBlock(_ context.Context, c cid.Cid) (bool, error) {
	return c.Equals(n.blk.Cid()), nil
}

func (n *stuckNode) BlockSize(_ context.Context, c cid.Cid) (int, error) {
	if !c.Equals(n.blk.Cid()) {
		return 0, ipld.ErrNotFound{Cid: c}
	}
	return len(n.blk.RawData()), nil
}

func (n *stuckNode) OpenFile(context.Context, cid.Cid) (File, error) { panic("no files here") }
func (n *stuckNode) OpenFileRange(context.Context, cid.Cid, int64, int64) (File, error) {
	panic("no files here")
}

func newStuckNode(t *testing.T) *stuckNode {
	c, err := cid.V1Builder{Codec: cid.Raw, MhType: mh.SHA2_256}.Sum([]byte("slow block"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := blocks.NewBlockWithCid([]byte("slow block"), c)
	return &stuckNode{blk: blk, release: make(chan struct{}), asked: make(chan struct{})}
}

// One client with a request in flight at its limit gets 429 for the next
// one; another client is served; once the first ends the client is served
// again.
func TestPerClientLimit(t *testing.T) {
	n := newStuckNode(t)
	h, err := New(Config{MaxRequestsPerClient: 1}, n)
	if err != nil {
		t.Fatal(err)
	}
	url := "/ipfs/" + n.blk.Cid().String() + "?format=raw"
	serve := func(remote string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", url, nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- serve("192.0.2.1:1000") }()
	<-n.asked // the first request holds its client's one slot
	if rec := serve("192.0.2.1:1001"); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("second request of the client: %d %q, want 429 with Retry-After", rec.Code, rec.Body.String())
	}
	other := make(chan *httptest.ResponseRecorder)
	go func() { other <- serve("192.0.2.2:1000") }()
	close(n.release)
	for _, ch := range []chan *httptest.ResponseRecorder{first, other} {
		if rec := <-ch; rec.Code != http.StatusOK || rec.Body.String() != "slow block" {
			t.Fatalf("request: %d %q", rec.Code, rec.Body.String())
		}
	}
	if rec := serve("192.0.2.1:1002"); rec.Code != http.StatusOK {
		t.Fatalf("after the first ended: %d", rec.Code)
	}
}

// A request whose block never comes ends with 504 once the retrieval
// timeout passes, not with a response cut off.
func TestRetrievalTimeout(t *testing.T) {
	n := newStuckNode(t)
	h, err := New(Config{RetrievalTimeout: 200 * time.Millisecond}, n)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/ipfs/"+n.blk.Cid().String()+"?format=raw", nil)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { h.ServeHTTP(rec, req); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a stuck request was not ended by the retrieval timeout")
	}
	if rec.Code != http.StatusGatewayTimeout {
		t.Fatalf("stuck request: %d %q, want 504", rec.Code, rec.Body.String())
	}
	close(n.release)
}

func TestFormatOf(t *testing.T) {
	for _, tc := range []struct{ url, accept, want string }{
		{"/ipfs/x?format=car", "", "car"},
		{"/ipfs/x?format=nonsense", "", "other"},
		{"/ipfs/x", "application/vnd.ipld.raw", "raw"},
		{"/ipfs/x", "application/vnd.ipld.car; version=1", "car"},
		{"/ipfs/x", "text/html", "deserialized"},
	} {
		req := httptest.NewRequest("GET", tc.url, nil)
		req.Header.Set("Accept", tc.accept)
		if got := formatOf(req); got != tc.want {
			t.Errorf("formatOf(%s, %q) = %s, want %s", tc.url, tc.accept, got, tc.want)
		}
	}
}
