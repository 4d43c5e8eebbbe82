package node

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"
)

// Content is what the content commands need: a local repo opened directly,
// or the daemon that holds it, through its API.
type Content interface {
	Add(ctx context.Context, path string, o AddOptions) (*AddResult, error)
	// CatRange returns the bytes from offset, at most length (-1: all),
	// and the content's total size.
	CatRange(ctx context.Context, c cid.Cid, offset, length int64) (io.ReadCloser, int64, error)
	Ls(ctx context.Context, c cid.Cid) ([]Entry, error)
	Get(ctx context.Context, c cid.Cid, out string, progress func(int64)) error
	Stat(ctx context.Context, c cid.Cid, verify bool) (*Stat, error)
	// Resolve returns the CID a path (CID/a/b or /ipfs/CID/a/b) names.
	Resolve(ctx context.Context, path string) (cid.Cid, error)
	DAGs
}

var (
	_ Content = (*Repo)(nil)
	_ Content = (*APIClient)(nil)
)

// Connect returns the daemon's API when one runs on the repo at path (or
// api is given), else the repo opened directly.
func Connect(path, api string) (Content, error) {
	if api == "" {
		api = APIAddr(path)
	}
	if api != "" {
		return NewAPIClient(api), nil
	}
	return OpenRepo(path, nil)
}

// CatRange implements Content for a local repo.
func (r *Repo) CatRange(ctx context.Context, c cid.Cid, offset, length int64) (io.ReadCloser, int64, error) {
	rd, err := r.Cat(ctx, c)
	if err != nil {
		return nil, 0, err
	}
	size := int64(rd.Size())
	if offset < 0 || offset > size {
		rd.Close()
		return nil, size, fmt.Errorf("offset %d: %w (%d bytes)", offset, ErrBadRange, size)
	}
	if _, err := rd.Seek(offset, io.SeekStart); err != nil {
		rd.Close()
		return nil, size, err
	}
	if length < 0 {
		return rd, size, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rd, length), rd}, size, nil
}

// APIClient talks to a daemon's HTTP API.
type APIClient struct {
	base string
	hc   *http.Client
}

// NewAPIClient returns a client of the API at addr (host:port).
func NewAPIClient(addr string) *APIClient {
	return &APIClient{base: "http://" + addr + "/api/v0/", hc: &http.Client{}}
}

func (a *APIClient) Close() error { return nil }

// apiError turns an error response into an error.
func apiError(resp *http.Response) error {
	var e struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return errors.New(e.Error)
	}
	return fmt.Errorf("daemon: %s", resp.Status)
}

func (a *APIClient) call(ctx context.Context, method, path string, q url.Values, body io.Reader, ctype string) (*http.Response, error) {
	u := a.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("daemon API: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, apiError(resp)
	}
	return resp, nil
}

// streamErr reports a failure the daemon sent after the body started.
func streamErr(resp *http.Response) error {
	if e := resp.Trailer.Get("X-Stream-Error"); e != "" {
		return errors.New(e)
	}
	return nil
}

// Add uploads path and follows the progress: a regular file as the
// request's body, a directory or a symlink in Kubo's multipart format.
//
// An add the cluster could not take because it had no leader, or lost it
// midway, is sent again (up to three times, a few seconds apart): adds are
// idempotent, the same content gives the same fragments and CID.
func (a *APIClient) Add(ctx context.Context, path string, o AddOptions) (*AddResult, error) {
	return resend(ctx, o.Progress, func(progress func(int64)) (*AddResult, error) {
		oo := o
		oo.Progress = progress
		return a.addOnce(ctx, path, oo)
	})
}

// resend calls once, and calls it again (up to three times in all, a few
// seconds apart) while it fails for leaderTrouble. progress (nil: none)
// hears what each attempt reports, and is wound back by what an attempt
// had reported before the next starts. An attempt whose input cannot be
// read again (errNoResend) ends it with the previous attempt's error.
func resend[T any](ctx context.Context, progress func(int64), once func(progress func(int64)) (*T, error)) (*T, error) {
	var last error
	for attempt := 1; ; attempt++ {
		var sent int64
		res, err := once(func(n int64) {
			sent += n
			if progress != nil {
				progress(n)
			}
		})
		if errors.Is(err, errNoResend) && last != nil {
			return nil, last
		}
		if err == nil || attempt == 3 || !leaderTrouble(err) {
			return res, err
		}
		last = err
		if progress != nil {
			progress(-sent) // starting over
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * 1500 * time.Millisecond):
		}
	}
}

// leaderTrouble: an add or import failed because the cluster had no
// leader or lost it, or a storage node failed midway; a retry may succeed.
func leaderTrouble(err error) bool {
	s := err.Error()
	return strings.Contains(s, ErrLeaderLost.Error()) || strings.Contains(s, "no leader") ||
		strings.Contains(s, ErrPoolChanged.Error()) ||
		strings.Contains(s, "no longer the leader") || strings.Contains(s, "leadership lost")
}

func (a *APIClient) addOnce(ctx context.Context, path string, o AddOptions) (*AddResult, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPathErr(err))
	}
	name := filepath.Base(filepath.Clean(path))
	if fi.Mode().IsRegular() {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, unwrapPathErr(err))
		}
		defer f.Close()
		return a.addBody(ctx, name, f, fi.Size(), o)
	}
	n, err := files.NewSerialFile(path, o.Hidden, fi)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	return a.addNode(ctx, name, n, o)
}

// addBody adds one file whose bytes are body (size of them, -1 if not
// known) as the request's body itself, not multipart: the daemon reads
// it straight from the connection.
func (a *APIClient) addBody(ctx context.Context, name string, body io.Reader, size int64, o AddOptions) (*AddResult, error) {
	q := a.addQuery(o)
	q.Set("name", name)
	u := a.base + "add?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, "POST", u, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("daemon API: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, apiError(resp)
	}
	return a.addReply(resp, o)
}

func (a *APIClient) addQuery(o AddOptions) url.Values {
	q := url.Values{}
	if o.Profile != "" {
		q.Set("profile", o.Profile)
	}
	if o.Coding != "" {
		q.Set("ec", o.Coding)
	}
	if o.ToFiles != "" {
		q.Set("to-files", o.ToFiles)
		if o.FilesReplace {
			q.Set("to-files-replace", "true")
		}
	}
	return q
}

// AddReader adds the bytes of rd as one file named name (the name only
// matters with ToFiles ending in /). It is sent once: rd cannot be read
// again.
func (a *APIClient) AddReader(ctx context.Context, name string, rd io.Reader, o AddOptions) (*AddResult, error) {
	return a.addNode(ctx, name, files.NewReaderFile(rd), o)
}

func (a *APIClient) addNode(ctx context.Context, name string, n files.Node, o AddOptions) (*AddResult, error) {
	mfr := files.NewMultiFileReader(files.NewMapDirectory(map[string]files.Node{name: n}), true, false)
	resp, err := a.call(ctx, "POST", "add", a.addQuery(o), mfr, "multipart/form-data; boundary="+mfr.Boundary())
	if err != nil {
		return nil, err
	}
	return a.addReply(resp, o)
}

// addReply reads an add's stream of progress lines and its result.
func (a *APIClient) addReply(resp *http.Response, o AddOptions) (*AddResult, error) {
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var res *AddResult
	var last int64
	for sc.Scan() {
		var line struct {
			Bytes *int64 `json:"bytes"`
			Error string `json:"error"`
			AddResult
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("daemon: bad add reply: %v", err)
		}
		if line.Error != "" {
			continue // the trailer has it too
		}
		if line.Bytes != nil {
			if o.Progress != nil {
				o.Progress(*line.Bytes - last)
			}
			last = *line.Bytes
			continue
		}
		r := line.AddResult
		res = &r
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := streamErr(resp); err != nil {
		return nil, err
	}
	if res == nil {
		return nil, errors.New("daemon: add returned no result")
	}
	return res, nil
}

// CatRange streams a byte range of a file.
func (a *APIClient) CatRange(ctx context.Context, c cid.Cid, offset, length int64) (io.ReadCloser, int64, error) {
	q := url.Values{"arg": {c.String()}, "offset": {strconv.FormatInt(offset, 10)}}
	if length >= 0 {
		q.Set("length", strconv.FormatInt(length, 10))
	}
	resp, err := a.call(ctx, "GET", "cat", q, nil, "")
	if err != nil {
		return nil, 0, err
	}
	size, _ := strconv.ParseInt(resp.Header.Get("X-Content-Size"), 10, 64)
	return trailerCheck{resp}, size, nil
}

// trailerCheck turns the X-Stream-Error trailer into a read error at EOF.
type trailerCheck struct{ resp *http.Response }

func (t trailerCheck) Read(p []byte) (int, error) {
	n, err := t.resp.Body.Read(p)
	if err == io.EOF {
		if serr := streamErr(t.resp); serr != nil {
			return n, serr
		}
	}
	return n, err
}

func (t trailerCheck) Close() error { return t.resp.Body.Close() }

// Stat reports how an object is stored.
func (a *APIClient) Stat(ctx context.Context, c cid.Cid, verify bool) (*Stat, error) {
	var st Stat
	if err := a.doJSON(ctx, "GET", "stat", url.Values{"arg": {c.String()}, "verify": {strconv.FormatBool(verify)}}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Ls lists a directory.
func (a *APIClient) Ls(ctx context.Context, c cid.Cid) ([]Entry, error) {
	var ents []Entry
	if err := a.doJSON(ctx, "GET", "ls", url.Values{"arg": {c.String()}}, &ents); err != nil {
		return nil, err
	}
	return ents, nil
}

// Get saves a file or tree from the daemon's tar stream to out, which must
// not exist; entries that would land outside out are refused.
func (a *APIClient) Get(ctx context.Context, c cid.Cid, out string, progress func(int64)) error {
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("%s: %w", out, ErrExists)
	}
	resp, err := a.call(ctx, "GET", "get", url.Values{"arg": {c.String()}}, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tr := tar.NewReader(trailerCheck{resp})
	prefix := c.String()
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return streamErr(resp)
		}
		if err != nil {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(h.Name, prefix), "/")
		if h.Name != prefix && h.Name != prefix+"/" && !strings.HasPrefix(h.Name, prefix+"/") {
			return fmt.Errorf("daemon sent an entry outside %s: %q", prefix, h.Name)
		}
		for _, part := range strings.Split(strings.TrimPrefix(rel, "/"), "/") {
			if part != "" && !validName(part) {
				return fmt.Errorf("refusing unsafe path %q", h.Name)
			}
		}
		dst := filepath.Join(out, filepath.FromSlash(rel))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, dst); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			var w io.Writer = f
			if progress != nil {
				w = progressWriter{f, progress}
			}
			_, err = io.Copy(w, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("daemon sent an unsupported entry %q", h.Name)
		}
	}
}

// ErrNoDaemon: a command that needs the running node found none.
var ErrNoDaemon = errors.New("no daemon is running on this repo (start `fungi daemon`)")

// Daemon returns the API client of the daemon on the repo at path (or at
// api), or ErrNoDaemon.
func Daemon(path, api string) (*APIClient, error) {
	if api == "" {
		api = APIAddr(path)
	}
	if api == "" {
		return nil, ErrNoDaemon
	}
	return NewAPIClient(api), nil
}

func (a *APIClient) getJSON(ctx context.Context, path string, out any) error {
	return a.doJSON(ctx, "GET", path, nil, out)
}

func (a *APIClient) doJSON(ctx context.Context, method, path string, q url.Values, out any) error {
	return a.sendJSON(ctx, method, path, q, nil, "", out)
}

// sendJSON makes a request with body (of type ctype) and decodes its JSON
// reply into out.
func (a *APIClient) sendJSON(ctx context.Context, method, path string, q url.Values, body io.Reader, ctype string, out any) error {
	resp, err := a.call(ctx, method, path, q, body, ctype)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("daemon: bad %s reply: %v", path, err)
	}
	return nil
}

// ID returns the daemon's peer ID and addresses.
func (a *APIClient) ID(ctx context.Context) (*ID, error) {
	var id ID
	return &id, a.getJSON(ctx, "id", &id)
}

// Peers lists the daemon's peers with their RTTs.
func (a *APIClient) Peers(ctx context.Context) ([]Peer, error) {
	var ps []Peer
	return ps, a.getJSON(ctx, "cluster/peers", &ps)
}

// ClusterStatus returns the daemon's view of the cluster.
func (a *APIClient) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	var st ClusterStatus
	return &st, a.getJSON(ctx, "cluster/status", &st)
}

// Join makes the daemon's node join the cluster of the member at addr;
// secret (hex) overrides the repo's cluster secret.
func (a *APIClient) Join(ctx context.Context, addr, secret string, force bool) (*ClusterStatus, error) {
	q := url.Values{"arg": {addr}}
	if secret != "" {
		q.Set("secret", secret)
	}
	if force {
		q.Set("force", "true")
	}
	var st ClusterStatus
	return &st, a.doJSON(ctx, "POST", "cluster/join", q, &st)
}

// Leave takes the daemon's node out of its cluster.
func (a *APIClient) Leave(ctx context.Context) (*ClusterStatus, error) {
	var st ClusterStatus
	return &st, a.doJSON(ctx, "POST", "cluster/leave", nil, &st)
}

// Pin pins (add) or unpins CIDs, atomically.
func (a *APIClient) Pin(ctx context.Context, add bool, cids ...string) (*PinResult, error) {
	path := "pin/rm"
	if add {
		path = "pin/add"
	}
	var res PinResult
	return &res, a.doJSON(ctx, "POST", path, url.Values{"arg": cids}, &res)
}

// PinAddOptions configure PinAdd.
type PinAddOptions struct {
	// Timeout: fetching content the cluster lacks gives up when no block
	// arrives for this long (0: the daemon's ipfs.fetch_timeout).
	Timeout time.Duration
	// Progress, if set, is called as blocks of content the cluster lacks
	// arrive from IPFS peers.
	Progress func(IngestProgress)
}

// PinAdd pins CIDs. Those the cluster does not hold are first fetched
// from IPFS peers and stored (each its own commit); the pins of the
// others commit together.
func (a *APIClient) PinAdd(ctx context.Context, o PinAddOptions, cids ...string) (*PinResult, error) {
	q := url.Values{"arg": cids, "progress": {"true"}}
	if o.Timeout > 0 {
		q.Set("timeout", o.Timeout.String())
	}
	resp, err := a.call(ctx, "POST", "pin/add", q, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var res *PinResult
	dec := json.NewDecoder(resp.Body)
	for {
		var line struct {
			IngestProgress
			Pins  []string `json:"pins"`
			Index uint64   `json:"index"`
		}
		if err := dec.Decode(&line); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("daemon: bad pin add reply: %v", err)
		}
		if line.Pins != nil {
			res = &PinResult{Pins: line.Pins, Index: line.Index}
			continue
		}
		if o.Progress != nil {
			o.Progress(line.IngestProgress)
		}
	}
	if err := streamErr(resp); err != nil {
		return nil, err
	}
	if res == nil {
		return nil, errors.New("daemon: pin add returned no result")
	}
	return res, nil
}

// Pins lists the cluster's pins.
func (a *APIClient) Pins(ctx context.Context) ([]string, error) {
	var out []string
	return out, a.getJSON(ctx, "pin/ls", &out)
}

// RepoStat reports what the daemon's own ZDB holds.
func (a *APIClient) RepoStat(ctx context.Context) (*RepoStat, error) {
	var st RepoStat
	return &st, a.getJSON(ctx, "repo/stat", &st)
}

// GC collects orphan fragments on the daemon's node older than minAge
// (negative: the configured age).
func (a *APIClient) GC(ctx context.Context, minAge time.Duration) (*GCResult, error) {
	q := url.Values{}
	if minAge >= 0 {
		q.Set("min-age", minAge.String())
	}
	var res GCResult
	return &res, a.doJSON(ctx, "POST", "repo/gc", q, &res)
}
