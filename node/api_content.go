package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/node/repair"
)

// forwardProto carries writes (adds, DAG imports) from any node to the
// raft leader: HTTP/1.1 over a libp2p stream, members only.
const forwardProto = protocol.ID("/fungi/add/1.0.0")

// forwardedHeader marks a write a node forwarded to the leader: the leader
// never forwards it again (leadership moved: the write fails, the client
// retries).
const forwardedHeader = "X-Fungi-Forwarded-By"

// ErrLeaderLost: the leader went away in the middle of a forwarded write.
var ErrLeaderLost = errors.New("lost the leader during the write")

// forwarded are the endpoints other members send on to the leader: writes
// that disperse content and commit manifests, all idempotent (the same
// content gives the same fragments and manifests), so a client may send
// one again when the leader changed under it.
func (a *api) forwarded() map[string]func(http.ResponseWriter, *http.Request) error {
	return map[string]func(http.ResponseWriter, *http.Request) error{
		"/api/v0/add":        a.add,
		"/api/v0/dag/import": a.dagImport,
	}
}

// serveForwarded serves the forwarded endpoints to the other members over
// libp2p; close the result to stop.
func (a *api) serveForwarded() io.Closer {
	mux := http.NewServeMux()
	for path, fn := range a.forwarded() {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			if err := fn(w, r); err != nil {
				writeJSON(w, statusOf(err), map[string]string{"error": err.Error()})
			}
		})
	}
	l := a.host.ListenMember(forwardProto)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	a.fwd = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			p, err := peer.Decode(host)
			if err != nil {
				return nil, err
			}
			return a.host.DialMember(ctx, p, forwardProto)
		},
		DisableKeepAlives: true,
	}}
	return closerFunc(func() error { return srv.Close() })
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// mustForward reports whether this node should send a write on to the
// leader (and to whom).
func (a *api) mustForward(r *http.Request) (peer.ID, bool, error) {
	if a.content == nil {
		return "", false, nil
	}
	cn := a.cluster.node()
	if cn.IsLeader() {
		return "", false, nil
	}
	if r.Header.Get(forwardedHeader) != "" {
		return "", false, httpError{http.StatusServiceUnavailable, errors.New("this node is no longer the leader; retry")}
	}
	if a.cluster.ready() != nil {
		// in no cluster (yet): handled here, where a bad upload is a 400
		// and a good one fails at the commit with ErrNotJoined
		return "", false, nil
	}
	id := cn.Leader()
	if id == "" {
		return "", false, httpError{http.StatusServiceUnavailable, errors.New("the cluster has no leader right now (election in progress); retry")}
	}
	p, err := peer.Decode(id)
	if err != nil {
		return "", false, err
	}
	return p, true, nil
}

// forwardAdd sends an add on to the leader, with this node's defaults
// (profile, coding) unless the caller chose.
func (a *api) forwardAdd(w http.ResponseWriter, r *http.Request, leader peer.ID) error {
	q := r.URL.Query()
	if q.Get("profile") == "" {
		q.Set("profile", a.repo.Config.Profile)
	}
	if q.Get("ec") == "" {
		q.Set("ec", a.repo.Config.Coding)
	}
	return a.forward(w, r, leader, "add", q)
}

// forward sends a write (endpoint under /api/v0/, with query q) on to the
// leader, which disperses and commits it, and streams its answer back (a
// stream of JSON lines). A line that carries a raft index ("index") waits
// until this node has applied it, so a read here right after sees the
// write.
func (a *api) forward(w http.ResponseWriter, r *http.Request, leader peer.ID, endpoint string, q url.Values) error {
	req, err := http.NewRequestWithContext(r.Context(), "POST", "http://"+leader.String()+"/api/v0/"+endpoint+"?"+q.Encode(), r.Body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
	req.Header.Set(forwardedHeader, a.host.ID().String())
	resp, err := a.fwd.Do(req)
	if err != nil {
		return httpError{http.StatusBadGateway, fmt.Errorf("forward the %s to the leader %s: %w", endpoint, leader, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return httpError{resp.StatusCode, apiError(resp)}
	}
	if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Trailer", "X-Stream-Error")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var rerr error
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && err == nil {
			if bytes.Contains(line, []byte(`"index"`)) || bytes.Contains(line, []byte(`"Index"`)) {
				var res struct {
					Index uint64 `json:"index"` // also matches "Index"
				}
				if json.Unmarshal(line, &res) == nil && res.Index > 0 {
					ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
					a.cluster.node().WaitApplied(ctx, res.Index)
					cancel()
				}
			}
			w.Write(line)
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	switch {
	case rerr != nil:
		err = fmt.Errorf("%w %s: %v (if it committed, it is complete; writes are idempotent: retry)", ErrLeaderLost, leader, rerr)
	case resp.Trailer.Get("X-Stream-Error") != "":
		err = errors.New(resp.Trailer.Get("X-Stream-Error"))
	}
	if err != nil {
		w.Header().Set("X-Stream-Error", err.Error())
		if rerr != nil {
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		}
		a.log.Warn("api: forwarded "+endpoint+" failed", "leader", leader.String(), "err", err)
	}
	return nil
}

// contentMetrics are the read path's counters.
func (a *api) contentMetrics() {
	fetched := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fungi_fragments_fetched_total",
		Help: "Valid fragments this node's reads fetched, by holder."}, []string{"holder"})
	bad := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fungi_fragment_failures_total",
		Help: "Fragments that a holder failed to deliver or that failed verification, by holder."}, []string{"holder"})
	a.reg.MustRegister(fetched, bad)
	a.content.onFetch = func(h string) { fetched.WithLabelValues(h).Inc() }
	a.content.onBad = func(h string, _ cid.Cid, _ int, _ error) { bad.WithLabelValues(h).Inc() }
}

// RepoStat is what this node's own ZDB holds.
type RepoStat struct {
	Fragments     int64 `json:"fragments"`
	FragmentBytes int64 `json:"fragment_bytes"` // payload of live fragments
	DataBytes     int64 `json:"data_bytes"`     // ZDB data files, fragments and metadata
	// Capacity is what this node offers the pool (configured, or the
	// size of its file system; 0 with no_store); DiskTotal and DiskFree
	// are the file system's that holds the data.
	Capacity  uint64 `json:"capacity"`
	DiskTotal uint64 `json:"disk_total"`
	DiskFree  uint64 `json:"disk_free"`
	// Scrub is the scrubber's progress and findings (daemon only).
	Scrub *repair.ScrubStatus `json:"scrub,omitempty"`
}

func (a *api) repoStat(w http.ResponseWriter, _ *http.Request) error {
	st := a.repo.RepoStat()
	if a.repairs != nil {
		sc := a.repairs.Status().Scrub
		st.Scrub = &sc
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// RepoStat reports what the repo's ZDB holds.
func (r *Repo) RepoStat() RepoStat {
	st := RepoStat{Fragments: r.frags.Len(), FragmentBytes: r.frags.Payload(),
		DataBytes: r.frags.DataSize() + r.meta.DataSize()}
	st.Capacity, _ = r.usage()
	var fs syscall.Statfs_t
	if syscall.Statfs(filepath.Join(r.Path, r.Config.ZDB.Data), &fs) == nil {
		st.DiskTotal, st.DiskFree = fs.Blocks*uint64(fs.Bsize), fs.Bavail*uint64(fs.Bsize)
	}
	return st
}

// gc: POST /api/v0/repo/gc[?min-age=D] collects orphan fragments now.
func (a *api) gc(w http.ResponseWriter, r *http.Request) error {
	age, err := a.repo.Config.orphanAge()
	if err != nil {
		return err
	}
	if s := r.URL.Query().Get("min-age"); s != "" {
		if age, err = time.ParseDuration(s); err != nil || age < 0 {
			return badRequest("min-age %q: want a duration such as 1h or 0s", s)
		}
	}
	res, err := a.content.collectOrphans(r.Context(), age)
	if errors.Is(err, ErrNotCaughtUp) {
		return httpError{http.StatusServiceUnavailable, err}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// faultStore is the store this node serves to its peers, with injectable
// faults for tests (debug API): corrupted or slow answers to gets.
type faultStore struct {
	fungi.FragmentStore
	mode  atomic.Int32 // faultOff, faultCorrupt, faultSlow
	delay atomic.Int64
}

const (
	faultOff int32 = iota
	faultCorrupt
	faultSlow
	// faultDrop: a holder that lies: it says it has every fragment, takes
	// every put and keeps nothing (what it held is gone)
	faultDrop
)

func (f *faultStore) HasFragment(ctx context.Context, key []byte) (bool, error) {
	if f.mode.Load() == faultDrop {
		return true, nil
	}
	return f.FragmentStore.HasFragment(ctx, key)
}

func (f *faultStore) PutFragment(ctx context.Context, key, data []byte) error {
	if f.mode.Load() == faultDrop {
		return nil
	}
	return f.FragmentStore.PutFragment(ctx, key, data)
}

func (f *faultStore) GetFragment(ctx context.Context, key []byte) ([]byte, error) {
	switch f.mode.Load() {
	case faultDrop:
		return nil, fungi.ErrFragmentNotFound
	case faultSlow:
		t := time.NewTimer(time.Duration(f.delay.Load()))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	case faultCorrupt:
		data, err := f.FragmentStore.GetFragment(ctx, key)
		if err == nil && len(data) > 0 {
			data = bytes.Clone(data)
			data[len(data)/2] ^= 0x5a
		}
		return data, err
	}
	return f.FragmentStore.GetFragment(ctx, key)
}

// GetFragmentPooled is the store's, without a fault (else GetFragment's).
func (f *faultStore) GetFragmentPooled(ctx context.Context, key []byte) ([]byte, func(), error) {
	if pg, ok := f.FragmentStore.(fungi.PooledFragmentGetter); ok && f.mode.Load() == faultOff {
		return pg.GetFragmentPooled(ctx, key)
	}
	v, err := f.GetFragment(ctx, key)
	return v, nil, err
}

func (f *faultStore) PutFragments(ctx context.Context, keys, values [][]byte) error {
	if f.mode.Load() == faultDrop {
		return nil
	}
	return fungi.PutFragments(ctx, f.FragmentStore, keys, values)
}

func (f *faultStore) DeleteFragment(ctx context.Context, key []byte) error {
	if d, ok := f.FragmentStore.(fungi.FragmentDeleter); ok {
		return d.DeleteFragment(ctx, key)
	}
	return errors.New("store cannot delete")
}

// fault: POST /api/v0/debug/fault?mode=off|corrupt|slow[&delay=D] makes
// this node's fragment server misbehave.
func (a *api) fault(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	mode := map[string]int32{"off": faultOff, "corrupt": faultCorrupt, "slow": faultSlow, "drop": faultDrop}
	m, ok := mode[q.Get("mode")]
	if !ok {
		return badRequest("mode %q: want off, corrupt, slow or drop", q.Get("mode"))
	}
	d := 2 * time.Second
	if s := q.Get("delay"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < 0 {
			return badRequest("delay %q: want a duration", s)
		}
	}
	a.served.delay.Store(int64(d))
	a.served.mode.Store(m)
	writeJSON(w, http.StatusOK, map[string]string{"mode": q.Get("mode"), "delay": d.String()})
	return nil
}
