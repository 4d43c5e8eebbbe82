package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/url"
	"path/filepath"
	"strconv"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/fungi"
)

// ImportFiles uploads the CAR files as one import (a multipart body, as
// Kubo's) and returns once the daemon committed it. An import the cluster
// could not take because it had no leader, or lost it midway, is sent
// again (up to three times, a few seconds apart) when its inputs can be
// read again: imports are idempotent.
func (a *APIClient) ImportFiles(ctx context.Context, cars []CARInput, o DAGImportOptions) (*DAGImportResult, error) {
	return resend(ctx, o.Progress, func(progress func(int64)) (*DAGImportResult, error) {
		oo := o
		oo.Progress = progress
		return a.importOnce(ctx, cars, oo)
	})
}

func (a *APIClient) importOnce(ctx context.Context, cars []CARInput, o DAGImportOptions) (*DAGImportResult, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan struct{})
	var werr error // the part writer's, after done
	go func() {
		defer close(done)
		werr = writeCARParts(mw, cars, o.Progress)
		pw.CloseWithError(werr)
	}()
	defer func() {
		pr.Close()
		<-done
	}()
	q := url.Values{"pin-roots": {strconv.FormatBool(o.PinRoots)}}
	if o.AllowBigBlock {
		q.Set("allow-big-block", "true")
	}
	if o.Coding != "" {
		q.Set("ec", o.Coding)
	}
	resp, err := a.call(ctx, "POST", "dag/import", q, pr, mw.FormDataContentType())
	if err != nil {
		pr.Close()
		<-done
		// a failure to read an input is the better explanation
		var ie inputError
		if errors.As(werr, &ie) {
			return nil, ie.err
		}
		return nil, err
	}
	defer resp.Body.Close()
	res := &DAGImportResult{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	gotStats := false
	for sc.Scan() {
		var line dagImportLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("daemon: bad dag import reply: %v", err)
		}
		switch {
		case line.Root != nil:
			res.Roots = append(res.Roots, *line.Root)
		case line.Stats != nil:
			gotStats = true
			res.Stats, res.Index = *line.Stats, line.Index
			if line.Manifests != nil {
				res.Manifests = *line.Manifests
			}
			if line.Stored != nil {
				res.Stored = *line.Stored
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := streamErr(resp); err != nil {
		return nil, err
	}
	if !gotStats {
		return nil, errors.New("daemon: dag import returned no result")
	}
	return res, nil
}

// inputError is a failure to read an import's input (not the daemon's).
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }

// writeCARParts writes each CAR as a file part.
func writeCARParts(mw *multipart.Writer, cars []CARInput, progress func(int64)) error {
	for i, c := range cars {
		rc, err := c.Open()
		if err != nil {
			return inputError{err}
		}
		part, err := mw.CreateFormFile("file", fmt.Sprintf("%d-%s", i, filepath.Base(c.Name)))
		if err != nil {
			rc.Close()
			return err
		}
		var r io.Reader = rc
		if progress != nil {
			r = &progressReader{r: rc, fn: progress}
		}
		_, err = io.CopyBuffer(part, r, make([]byte, 1<<20))
		rc.Close()
		if err != nil {
			return err
		}
	}
	return mw.Close()
}

// ExportCAR streams the DAG under c as a CARv1 into w.
func (a *APIClient) ExportCAR(ctx context.Context, c cid.Cid, w io.Writer, progress func(int64)) error {
	resp, err := a.call(ctx, "GET", "dag/export", url.Values{"arg": {c.String()}}, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if progress != nil {
		w = progressWriter{w, progress}
	}
	_, err = io.CopyBuffer(struct{ io.Writer }{w}, trailerCheck{resp}, make([]byte, 1<<20))
	return err
}

// GetBlock fetches one block and checks it against its CID.
func (a *APIClient) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	resp, err := a.call(ctx, "GET", "block/get", url.Values{"arg": {c.String()}}, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, fungi.MaxBlockSize+1))
	if err != nil {
		return nil, err
	}
	sum, err := c.Prefix().Sum(data)
	if err != nil || !sum.Equals(c) {
		return nil, fmt.Errorf("daemon sent a block that does not match %s", c)
	}
	return blocks.NewBlockWithCid(data, c)
}

// BlockSize returns the size of one block (Kubo's block stat).
func (a *APIClient) BlockSize(ctx context.Context, c cid.Cid) (int, error) {
	var st BlockStatOutput
	if err := a.doJSON(ctx, "GET", "block/stat", url.Values{"arg": {c.String()}}, &st); err != nil {
		return 0, err
	}
	return st.Size, nil
}
