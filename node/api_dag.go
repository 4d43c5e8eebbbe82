package node

import (
	"bufio"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
)

// handleDAG registers the dag and block endpoints. Reads take GET (and
// POST, as Kubo's RPC); the import is forwarded to the leader like an add.
func (a *api) handleDAG() {
	a.handle("POST /api/v0/dag/import", a.dagImport)
	for _, m := range []string{"GET ", "POST "} {
		a.handle(m+"/api/v0/dag/export", a.dagExport)
		a.handle(m+"/api/v0/block/get", a.blockGet)
		a.handle(m+"/api/v0/block/stat", a.blockStat)
	}
}

// dagImportLine is one line of the import's answer: Kubo's CarImportOutput
// (Root or Stats), and on the last line the raft index of the commit and
// what the import stored.
type dagImportLine struct {
	Root      *DAGRoot        `json:",omitempty"`
	Stats     *DAGImportStats `json:",omitempty"`
	Index     uint64          `json:",omitempty"`
	Manifests *int            `json:",omitempty"`
	Stored    *uint64         `json:",omitempty"`
}

// boolParam reads a boolean query parameter with a default.
func boolParam(r *http.Request, name string, def bool) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, badRequest("%s=%q: want true or false", name, s)
	}
	return v, nil
}

// dagImport: POST /api/v0/dag/import[?pin-roots=true|false][&allow-big-block=true][&ec=K/M]
// with one CAR as the body, or several as the files of a multipart body
// (Kubo's form). The answer, once everything is committed, is Kubo's:
// a {"Root": {"Cid": {"/": ...}, "PinErrorMsg": ...}} line per root (with
// pin-roots, the default), then {"Stats": {...}, "Index": ...}.
func (a *api) dagImport(w http.ResponseWriter, r *http.Request) error {
	if leader, ok, err := a.mustForward(r); err != nil {
		return err
	} else if ok {
		q := r.URL.Query()
		if q.Get("ec") == "" { // this node's default, not the leader's
			q.Set("ec", a.repo.Config.Coding)
		}
		return a.forward(w, r, leader, "dag/import", q)
	}
	var o DAGImportOptions
	var err error
	if o.PinRoots, err = boolParam(r, "pin-roots", true); err != nil {
		return err
	}
	if o.AllowBigBlock, err = boolParam(r, "allow-big-block", false); err != nil {
		return err
	}
	o.Coding = r.URL.Query().Get("ec")
	body := bufio.NewReaderSize(r.Body, 1<<20)
	next := func() func() (io.Reader, error) {
		done := false
		return func() (io.Reader, error) {
			if done {
				return nil, io.EOF
			}
			done = true
			return body, nil
		}
	}()
	if mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil &&
		(mt == "multipart/form-data" || mt == "multipart/mixed") {
		if params["boundary"] == "" {
			return badRequest("dag import: multipart body without a boundary")
		}
		mr := multipart.NewReader(body, params["boundary"])
		next = func() (io.Reader, error) {
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					return nil, io.EOF
				}
				if err != nil {
					return nil, badRequest("dag import: %v", err)
				}
				if p.FileName() != "" || p.FormName() == "file" || p.FormName() == "path" {
					return p, nil
				}
			}
		}
	}
	res, err := a.repo.ImportCARs(r.Context(), next, o)
	if err != nil {
		a.log.Warn("api: dag import failed", "err", err)
		return err
	}
	a.added.Add(float64(res.Stats.BlockBytesCount))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for i := range res.Roots {
		enc.Encode(dagImportLine{Root: &res.Roots[i]})
	}
	return enc.Encode(dagImportLine{Stats: &res.Stats, Index: res.Index, Manifests: &res.Manifests, Stored: &res.Stored})
}

// dagExport: GET /api/v0/dag/export?arg=CID streams the DAG as a CARv1
// (Kubo's dag export). The root is fetched before the answer starts (an
// unknown CID is a 404); a failure later goes into the X-Stream-Error
// trailer.
func (a *api) dagExport(w http.ResponseWriter, r *http.Request) error {
	c, err := cidParam(r)
	if err != nil {
		return err
	}
	root, err := a.repo.GetBlock(r.Context(), c)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/vnd.ipld.car")
	// no Content-Length: a failure after the start must reach the client
	// in the trailer, which needs a chunked body
	w.Header().Set("Trailer", "X-Stream-Error")
	bw := bufio.NewWriterSize(countingWriter{w, a.read}, 1<<20)
	_, err = a.repo.exportCAR(r.Context(), root, bw, nil)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		bw.Flush()
		w.Header().Set("X-Stream-Error", err.Error())
		a.log.Warn("api: dag export failed", "root", c.String(), "err", err)
	}
	return nil
}

// blockGet: GET /api/v0/block/get?arg=CID answers the block's bytes.
func (a *api) blockGet(w http.ResponseWriter, r *http.Request) error {
	c, err := cidParam(r)
	if err != nil {
		return err
	}
	blk, err := a.repo.GetBlock(r.Context(), c)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(blk.RawData())))
	n, _ := w.Write(blk.RawData())
	a.read.Add(float64(n))
	return nil
}

// blockStat: GET /api/v0/block/stat?arg=CID answers {"Key": cid, "Size": n}
// from the block index (nothing is fetched when a manifest records the
// size).
func (a *api) blockStat(w http.ResponseWriter, r *http.Request) error {
	c, err := cidParam(r)
	if err != nil {
		return err
	}
	n, err := a.repo.BlockSize(r.Context(), c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, BlockStatOutput{Key: c.String(), Size: n})
	return nil
}
