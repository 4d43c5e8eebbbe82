package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/fungi"
)

// A repo without a cluster imports Kubo's CAR, exports it back
// byte-identical, serves its blocks and reads its UnixFS trees; a second
// import stores nothing; a bad CAR leaves nothing.
func TestDAGImportExport(t *testing.T) {
	r := newRepo(t)
	ctx := context.Background()
	want, err := os.ReadFile("../fungi/testdata/kubo-export.car")
	if err != nil {
		t.Fatal(err)
	}
	var read int64
	res, err := r.ImportCAR(ctx, bytes.NewReader(want), DAGImportOptions{PinRoots: true, Progress: func(n int64) { read += n }})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Roots) != 1 || res.Roots[0].PinErrorMsg != "" || res.Stats.BlockCount != 25 || res.Manifests == 0 || read != int64(len(want)) {
		t.Fatalf("result %+v (read %d of %d)", res, read, len(want))
	}
	root := res.Roots[0].Cid
	var out bytes.Buffer
	if err := r.ExportCAR(ctx, root, &out, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("export: %d bytes, want %d", out.Len(), len(want))
	}
	// every block is served, verified
	cr, _ := fungi.NewCARReader(bytes.NewReader(want), fungi.CAROptions{})
	for {
		blk, err := cr.Next()
		if err == io.EOF {
			break
		}
		got, err := r.GetBlock(ctx, blk.Cid())
		if err != nil || !bytes.Equal(got.RawData(), blk.RawData()) {
			t.Fatalf("block %s: %v", blk.Cid(), err)
		}
		if n, err := r.BlockSize(ctx, blk.Cid()); err != nil || n != len(blk.RawData()) {
			t.Fatalf("size of %s: %d, %v", blk.Cid(), n, err)
		}
	}
	// the CIDv0 tree (16 KiB dag-pb leaves, dispersed) lists and reads
	v0, _ := cid.Decode("QmTt9ieybptwe32uM84pJiVk668tcMXB4XqjgdKk1Kjr5c")
	ents, err := r.Ls(ctx, v0)
	if err != nil || len(ents) != 2 {
		t.Fatalf("ls: %v, %v", ents, err)
	}
	// again: everything is held, nothing new is stored
	again, err := r.ImportCAR(ctx, bytes.NewReader(want), DAGImportOptions{PinRoots: true})
	if err != nil || again.Manifests != 0 || again.Roots[0].PinErrorMsg != "" {
		t.Fatalf("second import: %+v, %v", again, err)
	}
	// a truncated CAR of new content is a 400 and makes nothing visible
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // one 1 MiB raw block
	c, _ := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum(big)
	var car bytes.Buffer
	fungi.WriteCAR(ctx, &car, c, blockMap{c: big}, fungi.CARWriteOptions{})
	_, err = r.ImportCAR(ctx, bytes.NewReader(car.Bytes()[:car.Len()-10]), DAGImportOptions{PinRoots: true})
	if !errors.Is(err, fungi.ErrBadCAR) || statusOf(err) != 400 {
		t.Fatalf("truncated CAR: %v (status %d)", err, statusOf(err))
	}
	if _, err := r.GetBlock(ctx, c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("block of a failed import: %v", err)
	}
}

// blockMap serves raw blocks from a map.
type blockMap map[cid.Cid][]byte

func (m blockMap) GetBlock(_ context.Context, c cid.Cid) (blocks.Block, error) {
	return blocks.NewBlockWithCid(m[c], c)
}
