package node

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fungistor/fungistor/consensus"
)

// TreeFill is the answer of /api/v0/debug/tree-fill.
type TreeFill struct {
	Entries   int     `json:"entries"`
	Dirs      int     `json:"dirs"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
}

// treeFill: POST /api/v0/debug/tree-fill?arg=/ROOT&n=N&dirs=D&cid=CID
// links CID (existing content) under N names spread over D directories
// below ROOT (ROOT/d0000/f0000000 ...), one write per entry through the
// normal write path with 64 writers: the shared tree at the scale the
// benchmarks measure (millions of entries) without adding millions of
// files.
func (a *api) treeFill(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	root, err := treePath(q.Get("arg"))
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(q.Get("n"))
	dirs, _ := strconv.Atoi(q.Get("dirs"))
	if n <= 0 || n > 10_000_000 || dirs <= 0 || dirs > n {
		return badRequest("want n in 1..10000000 and dirs in 1..n")
	}
	c, err := ParseCID(q.Get("cid"))
	if err != nil {
		return httpError{http.StatusBadRequest, err}
	}
	ni, err := a.repo.describeCID(r.Context(), c)
	if err != nil {
		return err
	}
	li, err := linkInfo(c, ni)
	if err != nil {
		return err
	}
	if err := a.cluster.ready(); err != nil {
		return err
	}
	cn := a.cluster.node()
	target := c.String()
	var next atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || r.Context().Err() != nil {
					return
				}
				p := fmt.Sprintf("%s/d%04d/f%07d", root, i%dirs, i)
				if _, err := cn.Apply(r.Context(), consensus.FilesLink(p, target, li, true, false)); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if err, _ := firstErr.Load().(error); err != nil {
		return treeStatus(err)
	}
	writeJSON(w, http.StatusOK, TreeFill{Entries: n, Dirs: dirs, Seconds: took.Seconds(), PerSecond: float64(n) / took.Seconds()})
	return nil
}
