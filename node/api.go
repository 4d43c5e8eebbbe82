package node

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/files"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/node/repair"
	"github.com/fungistor/fungistor/p2p"
)

// The HTTP API, /api/v0/..., JSON in and out; errors are
// {"error": "..."} with a 4xx (the request was wrong) or 5xx status.
// Streams (add progress) are newline-delimited JSON; a failure after a
// stream started is reported in the X-Stream-Error trailer (and, in add's
// progress stream, as a last {"error": "..."} line too).
type api struct {
	repo    *Repo
	host    *p2p.Host
	cluster *clusterRunner
	content *clusterContent
	served  *faultStore
	fwd     *http.Client    // to the leader, for adds
	gateway string          // the gateway's address, "" if none
	ipfs    *ipfsNet        // bitswap and the IPFS DHT (daemon only)
	tree    *treeHasher     // the shared tree's directory hashes (daemon only)
	mounts  *mounts         // FUSE mounts of the shared tree (daemon only)
	repairs *repair.Service // scrubber, audits, repairs (daemon only)
	log     *slog.Logger
	mux     *http.ServeMux
	reg     *prometheus.Registry

	added, read prometheus.Counter
	requests    *prometheus.CounterVec
}

// Version is the build's version, set by the fungi command.
var Version = "dev"

func newAPI(repo *Repo, log *slog.Logger) *api {
	a := &api{repo: repo, log: log, mux: http.NewServeMux(), reg: prometheus.NewRegistry()}
	a.added = prometheus.NewCounter(prometheus.CounterOpts{Name: "fungi_added_bytes_total", Help: "Content bytes added."})
	a.read = prometheus.NewCounter(prometheus.CounterOpts{Name: "fungi_read_bytes_total", Help: "Content bytes served by cat and get."})
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fungi_api_requests_total", Help: "API requests by endpoint and outcome."}, []string{"endpoint", "outcome"})
	a.reg.MustRegister(a.added, a.read, a.requests, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	a.handle("GET /api/v0/version", a.version)
	a.handle("POST /api/v0/add", a.add)
	a.handle("GET /api/v0/cat", a.cat)
	a.handle("GET /api/v0/ls", a.ls)
	a.handle("GET /api/v0/resolve", a.resolve)
	a.handle("GET /api/v0/get", a.get)
	a.handle("GET /api/v0/stat", a.stat)
	a.handle("GET /api/v0/id", a.id)
	a.handle("GET /api/v0/cluster/peers", a.peers)
	return a
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// httpError carries a status for a request's failure.
type httpError struct {
	status int
	err    error
}

func (e httpError) Error() string { return e.err.Error() }
func (e httpError) Unwrap() error { return e.err }

func badRequest(format string, args ...any) error {
	return httpError{http.StatusBadRequest, fmt.Errorf(format, args...)}
}

func (a *api) handle(pattern string, fn func(w http.ResponseWriter, r *http.Request) error) {
	endpoint := pattern[len("GET "):]
	if pattern[:4] == "POST" {
		endpoint = pattern[len("POST "):]
	}
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			a.requests.WithLabelValues(endpoint, "ok").Inc()
			return
		}
		status := statusOf(err)
		a.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
		if status >= 500 {
			a.log.Error("api", "endpoint", endpoint, "err", err)
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
	})
}

func statusOf(err error) int {
	var he httpError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrIsDirectory), errors.Is(err, ErrBadRange):
		return http.StatusBadRequest
	case errors.Is(err, fungi.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (a *api) version(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"version": Version})
	return nil
}

func cidParam(r *http.Request) (cid.Cid, error) {
	s := r.URL.Query().Get("arg")
	if s == "" {
		return cid.Undef, badRequest("argument \"arg\" (a CID) is required")
	}
	c, err := ParseCID(s)
	if err != nil {
		return cid.Undef, httpError{http.StatusBadRequest, err}
	}
	return c, nil
}

// add takes a multipart body in Kubo's format (boxo files.MultiFileReader)
// and streams {"bytes": n} progress lines, then the AddResult.
func (a *api) add(w http.ResponseWriter, r *http.Request) error {
	if leader, ok, err := a.mustForward(r); err != nil {
		return err
	} else if ok {
		return a.forwardAdd(w, r, leader)
	}
	q := r.URL.Query()
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var name string
	var node files.Node
	var it files.DirIterator // of a multipart body
	switch {
	case err == nil && mt == "application/octet-stream":
		// one file, its bytes as the body (what the CLI sends for a
		// regular file): the importer reads them straight from the
		// connection, with none of multipart's scanning and copies; a
		// body cut short fails the read, so never becomes content
		name = q.Get("name")
		if name == "" {
			name = "file"
		}
		node = files.NewReaderFile(r.Body)
	case err == nil && (mt == "multipart/form-data" || mt == "multipart/mixed") && params["boundary"] != "":
		// multipart reads through a 4 KiB buffer: without one of our own
		// in front, that is a syscall per 4 KiB of upload
		body := bufio.NewReaderSize(r.Body, 1<<20)
		dir, err := files.NewFileFromPartReader(multipart.NewReader(body, params["boundary"]), mt)
		if err != nil {
			return badRequest("add: %v", err)
		}
		it = dir.Entries()
		if !it.Next() {
			if it.Err() != nil {
				return badRequest("add: %v", it.Err())
			}
			return badRequest("add: nothing to add")
		}
		name, node = it.Name(), it.Node()
	default:
		return badRequest("add needs a multipart or an application/octet-stream body")
	}
	linkAt, replace, err := a.toFiles(r, name)
	if err != nil {
		return err
	}
	// progress goes out while the upload still comes in: without full
	// duplex, net/http closes the request body at the first flush
	if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Trailer", "X-Stream-Error")
	// One add per connection: with full duplex the body is read straight
	// from the connection, and a read still in flight when the handler
	// returns (seen under load) would collide with the server reading the
	// next request on a kept-alive connection ("invalid concurrent
	// Body.Read call", which drops that next request).
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	var done atomic.Int64
	progress := make(chan struct{}, 1)
	res, err := a.repo.AddNode(r.Context(), node, AddOptions{Profile: q.Get("profile"), Coding: q.Get("ec"),
		Progress: func(n int64) {
			done.Add(n)
			select {
			case progress <- struct{}{}:
			default:
			}
		}}, func() {
		select {
		case <-progress:
			enc.Encode(map[string]int64{"bytes": done.Load()})
			if flusher != nil {
				flusher.Flush()
			}
		default:
		}
	})
	if err == nil && it != nil && it.Next() {
		err = errors.New("add takes one file or directory per request")
	}
	if err == nil && it != nil && it.Err() != nil {
		err = fmt.Errorf("upload: %w", it.Err()) // a cut-off body never becomes content
	}
	if err == nil && linkAt != "" {
		if lerr := a.linkAdded(r.Context(), res, linkAt, replace); lerr != nil {
			err = fmt.Errorf("added %s, but not linked at %s: %w", res.Root, linkAt, lerr)
		}
	}
	if err != nil {
		// in the trailer for clients, and as the stream's last line for
		// browsers (a page's script cannot read trailers)
		w.Header().Set("X-Stream-Error", err.Error())
		enc.Encode(map[string]string{"error": err.Error()})
		a.log.Warn("api: add failed", "name", name, "err", err)
		return nil
	}
	a.added.Add(float64(res.Size))
	res.Name = name
	return enc.Encode(res)
}

// ErrBadRange: a byte range outside the content.
var ErrBadRange = errors.New("range outside the content")

func (a *api) cat(w http.ResponseWriter, r *http.Request) error {
	c, err := cidParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	offset, length := int64(0), int64(-1)
	if s := q.Get("offset"); s != "" {
		if offset, err = strconv.ParseInt(s, 10, 64); err != nil || offset < 0 {
			return badRequest("offset %q: not a byte offset", s)
		}
	}
	if s := q.Get("length"); s != "" {
		if length, err = strconv.ParseInt(s, 10, 64); err != nil || length < 0 {
			return badRequest("length %q: not a byte count", s)
		}
	}
	fs, err := a.repo.CatStream(r.Context(), c)
	if err != nil {
		return err
	}
	size := fs.Size()
	if offset > size {
		return fmt.Errorf("offset %d: %w (%d bytes)", offset, ErrBadRange, size)
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	// the headers go with the first bytes: content that cannot be read at
	// all gets an error status, not a cut-off 200
	out := &catWriter{w: w, size: size, n: n}
	copied, err := fs.WriteRange(r.Context(), out, offset, n)
	a.read.Add(float64(copied))
	if err != nil {
		if !out.started {
			return err
		}
		w.Header().Set("X-Stream-Error", err.Error())
		return nil
	}
	out.start() // an empty range
	return nil
}

// catWriter sends cat's headers before its first bytes.
type catWriter struct {
	w       http.ResponseWriter
	size, n int64
	started bool
}

func (cw *catWriter) start() {
	if cw.started {
		return
	}
	cw.started = true
	h := cw.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Size", strconv.FormatInt(cw.size, 10))
	h.Set("X-Content-Length", strconv.FormatInt(cw.n, 10))
	// no Content-Length: a failure later in the stream must reach the
	// client in the trailer, which needs a chunked body
	h.Set("Trailer", "X-Stream-Error")
	cw.w.WriteHeader(http.StatusOK)
}

func (cw *catWriter) Write(p []byte) (int, error) {
	cw.start()
	return cw.w.Write(p)
}

func (a *api) ls(w http.ResponseWriter, r *http.Request) error {
	c, err := cidParam(r)
	if err != nil {
		return err
	}
	ents, err := a.repo.Ls(r.Context(), c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ents)
	return nil
}

// ID is a node's identity on the network.
type ID struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
	// Gateway is the IPFS gateway's address (host:port), "" if none.
	Gateway string `json:"gateway,omitempty"`
	Version string `json:"version"`
	// Started is when the daemon started; Uptime its seconds since.
	Started time.Time `json:"started"`
	Uptime  float64   `json:"uptime_s"`
	// Domain is this node's failure domain ("" if none).
	Domain string `json:"domain"`
	// Mounts are the shared tree's FUSE mount points.
	Mounts []string `json:"mounts"`
}

func (a *api) id(w http.ResponseWriter, _ *http.Request) error {
	out := ID{PeerID: a.host.ID().String(), Addrs: []string{}, Gateway: a.gateway, Version: Version,
		Started: started.UTC().Truncate(time.Second), Uptime: time.Since(started).Seconds(), Domain: a.repo.Config.Cluster.Domain, Mounts: []string{}}
	if a.mounts != nil {
		out.Mounts = orEmpty(a.mounts.List())
	}
	for _, m := range a.host.Addrs() {
		out.Addrs = append(out.Addrs, m.String())
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// Peer is one connected or known peer.
type Peer struct {
	PeerID    string   `json:"peer_id"`
	Addrs     []string `json:"addrs"`
	RTTMillis float64  `json:"rtt_ms"`
	Connected bool     `json:"connected"`
	// Member: the peer is a member of this node's cluster (otherwise,
	// e.g., an IPFS node fetching over bitswap).
	Member bool `json:"member"`
	// Conns is what each live connection negotiated.
	Conns []PeerConn `json:"conns,omitempty"`
}

// PeerConn is one connection's transport and security.
type PeerConn struct {
	Transport   string `json:"transport"`
	Security    string `json:"security"`
	KeyExchange string `json:"key_exchange"`
	PostQuantum bool   `json:"post_quantum"`
}

func (a *api) peers(w http.ResponseWriter, _ *http.Request) error {
	out := []Peer{}
	for _, p := range a.host.Peers() {
		pe := Peer{PeerID: p.ID.String(), RTTMillis: float64(p.RTT.Microseconds()) / 1000, Connected: p.Connected, Addrs: []string{}}
		pe.Member = a.cluster != nil && a.cluster.isMember(p.ID)
		for _, cs := range a.host.ConnSecurity(p.ID) {
			pe.Conns = append(pe.Conns, PeerConn{Transport: cs.Transport, Security: string(cs.Security), KeyExchange: cs.KeyExchange, PostQuantum: cs.PostQuantum})
		}
		for _, m := range p.Addrs {
			pe.Addrs = append(pe.Addrs, m.String())
		}
		out = append(out, pe)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (a *api) stat(w http.ResponseWriter, r *http.Request) error {
	c, err := cidParam(r)
	if err != nil {
		return err
	}
	st, err := a.repo.Stat(r.Context(), c, r.URL.Query().Get("verify") == "true")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// get streams a file or tree as a tar archive.
func (a *api) get(w http.ResponseWriter, r *http.Request) error {
	c, err := cidParam(r)
	if err != nil {
		return err
	}
	nd, dag, _, err := a.repo.object(r.Context(), c)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Trailer", "X-Stream-Error")
	tw := tar.NewWriter(countingWriter{w, a.read})
	if err := writeTar(r.Context(), tw, dag, nd, c.String()); err != nil {
		w.Header().Set("X-Stream-Error", err.Error())
		return nil
	}
	if err := tw.Close(); err != nil {
		w.Header().Set("X-Stream-Error", err.Error())
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	c prometheus.Counter
}

func (cw countingWriter) Write(b []byte) (int, error) {
	n, err := cw.w.Write(b)
	cw.c.Add(float64(n))
	return n, err
}

// writeTar streams nd as a tar archive rooted at name.
func writeTar(ctx context.Context, tw *tar.Writer, dag ipld.DAGService, nd ipld.Node, name string) error {
	return walkObject(ctx, dag, nd, name, func(e objectEntry) error {
		switch {
		case e.Dir:
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: e.Path + "/", Mode: 0o755})
		case e.File == nil:
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: e.Path, Linkname: e.Target, Mode: 0o777})
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.Path, Mode: 0o644, Size: int64(e.File.Size())}); err != nil {
			return err
		}
		_, err := io.Copy(tw, e.File)
		return err
	})
}
