package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	boxogw "github.com/ipfs/boxo/gateway"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fungistor/fungistor/fungi"
)

// Blocks is what the gateway needs from the node. Methods are called from
// many goroutines at once.
type Blocks interface {
	// GetBlock returns a verified block; an unknown CID gives an error
	// matching ipld.ErrNotFound, unreadable content one matching
	// fungi.ErrUnavailable.
	GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error)
	// GetBlocks fetches in parallel and delivers blocks as they are ready
	// (those that fail are left out); the channel closes when done.
	GetBlocks(ctx context.Context, cs []cid.Cid) <-chan blocks.Block
	// HasBlock and BlockSize answer from an index, without fetching.
	HasBlock(ctx context.Context, c cid.Cid) (bool, error)
	BlockSize(ctx context.Context, c cid.Cid) (int, error)
}

// Config configures the gateway handler. Zero values mean defaults.
type Config struct {
	// PublicGateways are hostnames served as Kubo's
	// Gateway.PublicGateways; "localhost" is a subdomain gateway unless
	// set (a nil entry removes it, as in Kubo).
	PublicGateways map[string]*boxogw.PublicGateway
	// NoDNSLink: no DNSLink lookups for unknown Host headers.
	NoDNSLink bool
	// RetrievalTimeout ends a request with 504 when it cannot send its
	// first byte (or its next bytes) in time (default 30 s).
	RetrievalTimeout time.Duration
	// MaxConcurrentRequests caps requests in flight (default 4096).
	MaxConcurrentRequests int
	// MaxRequestsPerClient caps one remote IP's requests in flight
	// (default 64); beyond it the client gets 429.
	MaxRequestsPerClient int
	// ValueStore finds IPNS records (nil: none).
	ValueStore routing.ValueStore
	// Registry receives the gateway's metrics (nil: none kept).
	Registry prometheus.Registerer
	// Logger gets an access log line per request at debug level.
	Logger *slog.Logger
}

// defaultPublicGateways is what Kubo knows without configuration: the
// subdomain gateway on localhost.
func defaultPublicGateways() map[string]*boxogw.PublicGateway {
	return map[string]*boxogw.PublicGateway{
		"localhost": {Paths: []string{"/ipfs", "/ipns"}, UseSubdomains: true, DeserializedResponses: true},
	}
}

// Node is what the gateway needs of the node: blocks and files.
type Node interface {
	Blocks
	Files
}

// New returns the gateway's HTTP handler over the node's content.
func New(cfg Config, b Node) (http.Handler, error) {
	if cfg.RetrievalTimeout == 0 {
		cfg.RetrievalTimeout = 30 * time.Second
	}
	if cfg.MaxConcurrentRequests == 0 {
		cfg.MaxConcurrentRequests = 4096
	}
	if cfg.MaxRequestsPerClient == 0 {
		cfg.MaxRequestsPerClient = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	pub := defaultPublicGateways()
	for host, gw := range cfg.PublicGateways {
		if gw == nil {
			delete(pub, host)
			continue
		}
		pub[host] = gw
	}
	bs := blockstore.NewIdStore(indexStore{b})
	bsvc := blockservice.New(bs, fetcher{b})
	opts := []boxogw.BackendOption{boxogw.WithPrometheusRegistry(reg)}
	if cfg.ValueStore != nil {
		opts = append(opts, boxogw.WithValueStore(names{cfg.ValueStore}))
	}
	blocksBackend, err := boxogw.NewBlocksBackend(bsvc, opts...)
	if err != nil {
		return nil, err
	}
	backend := &backend{BlocksBackend: blocksBackend, blocks: b, files: b}
	gwc := boxogw.Config{
		DeserializedResponses: true,
		NoDNSLink:             cfg.NoDNSLink,
		// the path gateway spec still expects X-Ipfs-Path
		DeprecatedXIpfsPath:   true,
		PublicGateways:        pub,
		RetrievalTimeout:      cfg.RetrievalTimeout,
		MaxConcurrentRequests: cfg.MaxConcurrentRequests,
		DiagnosticServiceURL:  "", // no outside service to send users to
		MetricsRegistry:       reg,
	}
	inner := http.NewServeMux()
	paths := boxogw.NewHandler(gwc, backend)
	inner.Handle("/ipfs/", paths)
	inner.Handle("/ipns/", paths)
	var h http.Handler = boxogw.NewHostnameHandler(gwc, backend, inner)
	h = boxogw.NewHeaders(nil).WithDeprecatedXIpfsPath().ApplyCors().Wrap(h)
	h = multiRange(h)
	m := newMetrics(reg)
	lim := &clientLimit{max: cfg.MaxRequestsPerClient, n: map[string]int{}}
	log := cfg.Logger
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// net/http's mux cannot route CONNECT: answer it as Kubo does
		if r.Method == http.MethodConnect {
			w.WriteHeader(http.StatusOK)
			return
		}
		ip := clientIP(r)
		if !lim.acquire(ip) {
			m.limited.Inc()
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many concurrent requests from this client", http.StatusTooManyRequests)
			return
		}
		defer lim.release(ip)
		start := time.Now()
		rw := &recorder{ResponseWriter: w, start: start}
		h.ServeHTTP(rw, r)
		status := rw.status
		if status == 0 {
			status = http.StatusOK
		}
		format := formatOf(r)
		m.requests.WithLabelValues(r.Method, strconv.Itoa(status), format).Inc()
		m.bytes.Add(float64(rw.bytes))
		if !rw.first.IsZero() {
			m.ttfb.WithLabelValues(format).Observe(rw.first.Sub(start).Seconds())
		}
		log.Debug("gateway", "method", r.Method, "host", r.Host, "path", r.URL.RequestURI(),
			"status", status, "bytes", rw.bytes, "took", time.Since(start), "client", ip)
	}), nil
}

// formatOf names a request's response format for metrics.
func formatOf(r *http.Request) string {
	if f := r.URL.Query().Get("format"); f != "" {
		switch f {
		case "raw", "car", "dag-json", "dag-cbor", "json", "cbor", "tar", "ipns-record":
			return f
		}
		return "other"
	}
	accept := r.Header.Get("Accept")
	for _, t := range []struct{ mime, name string }{
		{"application/vnd.ipld.raw", "raw"}, {"application/vnd.ipld.car", "car"},
		{"application/vnd.ipld.dag-json", "dag-json"}, {"application/vnd.ipld.dag-cbor", "dag-cbor"},
		{"application/vnd.ipfs.ipns-record", "ipns-record"}, {"application/x-tar", "tar"},
	} {
		if strings.Contains(accept, t.mime) {
			return t.name
		}
	}
	return "deserialized"
}

type metrics struct {
	requests *prometheus.CounterVec
	ttfb     *prometheus.HistogramVec
	bytes    prometheus.Counter
	limited  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fungi_gateway_requests_total",
			Help: "Gateway requests by method, status and response format."}, []string{"method", "status", "format"}),
		ttfb: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fungi_gateway_first_byte_seconds",
			Help:    "Time from a gateway request to its first response byte.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}, []string{"format"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "fungi_gateway_bytes_total",
			Help: "Response body bytes the gateway sent."}),
		limited: prometheus.NewCounter(prometheus.CounterOpts{Name: "fungi_gateway_client_limited_total",
			Help: "Requests refused (429) because their client had too many in flight."}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.ttfb, m.bytes, m.limited} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err) // a broken invariant: our own names collide
			}
		}
	}
	return m
}

// recorder notes a response's status, size and first byte.
type recorder struct {
	http.ResponseWriter
	start  time.Time
	first  time.Time
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.first.IsZero() {
		r.first = time.Now()
	}
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// clientLimit counts requests in flight per client.
type clientLimit struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

func (l *clientLimit) acquire(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[ip] >= l.max {
		return false
	}
	l.n[ip]++
	return true
}

func (l *clientLimit) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[ip]--; l.n[ip] <= 0 {
		delete(l.n, ip)
	}
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// indexStore is the blockstore boxo's blockservice asks first: it knows
// what exists and how big it is, but holds no bytes, so every read goes to
// the fetcher (which batches). Writes are dropped: the gateway is
// read-only and blockservice's "cache what was fetched" is the node's
// block cache's job.
type indexStore struct{ b Blocks }

var _ blockstore.Blockstore = indexStore{}

func (s indexStore) Has(ctx context.Context, c cid.Cid) (bool, error) { return s.b.HasBlock(ctx, c) }
func (s indexStore) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	return nil, ipld.ErrNotFound{Cid: c}
}
func (s indexStore) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	return s.b.BlockSize(ctx, c)
}
func (indexStore) Put(context.Context, blocks.Block) error       { return nil }
func (indexStore) PutMany(context.Context, []blocks.Block) error { return nil }
func (indexStore) DeleteBlock(context.Context, cid.Cid) error    { return errReadOnly }
func (indexStore) AllKeysChan(context.Context) (<-chan cid.Cid, error) {
	return nil, errors.New("gateway: listing all blocks is not supported")
}

var errReadOnly = errors.New("gateway: read-only")

// fetcher is the exchange behind the blockservice: the node's reader.
type fetcher struct{ b Blocks }

func (f fetcher) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	ra := readAheadOf(ctx)
	if ra != nil {
		ra.reached(ctx, c)
	}
	blk, err := f.b.GetBlock(ctx, c)
	if ra != nil && err == nil {
		ra.got(ctx, blk)
	}
	return blk, statusError(err)
}

func (f fetcher) GetBlocks(ctx context.Context, cs []cid.Cid) (<-chan blocks.Block, error) {
	return f.b.GetBlocks(ctx, cs), nil
}

func (fetcher) NotifyNewBlocks(context.Context, ...blocks.Block) error { return nil }
func (fetcher) Close() error                                           { return nil }

// statusError gives a read failure the status the gateway specs ask for:
// holders that cannot deliver in time are a gateway timeout (504), never a
// response cut off.
func statusError(err error) error {
	switch {
	case err == nil, ipld.IsNotFound(err):
		return err
	case errors.Is(err, fungi.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return boxogw.NewErrorStatusCode(fmt.Errorf("%w", err), http.StatusGatewayTimeout)
	}
	return boxogw.NewErrorStatusCode(err, http.StatusBadGateway)
}

// names wraps the IPNS value store so that a name with no record is a 404
// (boxo turns a bare routing.ErrNotFound into a 500).
type names struct{ routing.ValueStore }

// nameNotFound is routing.ErrNotFound that is also ipld.ErrNotFound.
type nameNotFound struct{ key string }

func (e nameNotFound) Error() string { return routing.ErrNotFound.Error() }
func (e nameNotFound) Is(target error) bool {
	_, ipldNF := target.(ipld.ErrNotFound)
	return target == routing.ErrNotFound || ipldNF
}

func (n names) GetValue(ctx context.Context, key string, opts ...routing.Option) ([]byte, error) {
	v, err := n.ValueStore.GetValue(ctx, key, opts...)
	if errors.Is(err, routing.ErrNotFound) {
		err = nameNotFound{key}
	}
	return v, err
}

func (n names) SearchValue(ctx context.Context, key string, opts ...routing.Option) (<-chan []byte, error) {
	ch, err := n.ValueStore.SearchValue(ctx, key, opts...)
	if errors.Is(err, routing.ErrNotFound) {
		err = nameNotFound{key}
	}
	return ch, err
}
