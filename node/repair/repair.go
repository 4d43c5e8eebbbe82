package repair

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/fungistor/fungistor/fungi"
)

// Node is what the repair service needs from the daemon it runs in.
type Node interface {
	// Self is this node's member id.
	Self() string
	// Leader reports whether this node leads the cluster: the leader runs
	// the monitor, the repairs and the audits.
	Leader() bool
	// Version changes whenever objects, layouts, members or damage
	// reports may have changed (the replicated state's applied index).
	Version() uint64
	// Objects lists every object with the layout its fragments follow.
	Objects(ctx context.Context) ([]fungi.RepairObject, error)
	// Members lists the members with the leader's view of their health
	// (ErrNoView when this node cannot get it).
	Members(ctx context.Context) ([]Member, error)
	// Epochs lists the repair epochs, ascending.
	Epochs() []Epoch
	// Damages lists the fragments reported bad or missing on live holders.
	Damages() []Damage
	// Store is a node's fragment store.
	Store(id string) fungi.FragmentStore
	// Codec decodes and encodes blocks of coding c.
	Codec(c fungi.Coding) (*fungi.Codec, error)
	// Begin commits a repair epoch; End marks epochs up to seq done.
	Begin(ctx context.Context, reason string, lost []string, pool []fungi.Candidate) error
	End(ctx context.Context, seq uint64) error
	// Report and Clear record and forget damage reports.
	Report(ctx context.Context, ds []Damage) error
	Clear(ctx context.Context, ds []Damage) error
	// Local is this node's own fragment store, for the scrubber (nil when
	// it stores nothing).
	Local() Local
	// Busy reports whether foreground reads are running on this node.
	Busy() bool
}

// ErrNoView: the leader's view of the members is not available.
var ErrNoView = errors.New("no leader view of the members")

// Member is one member as the monitor sees it.
type Member struct {
	ID      string
	Domain  string
	Storing bool   // offers capacity (not no_store)
	Free    uint64 // bytes it can still take
	Up      bool   // heard from lately
	// Contact is when the leader last heard from it (zero: not since it
	// leads; the grace then runs from when it took over).
	Contact time.Time
}

// Epoch is a repair epoch as the replicated state records it.
type Epoch struct {
	fungi.Move
	Reason string
	Begun  time.Time
}

// Damage is a fragment found bad or missing on a live holder.
type Damage struct {
	Holder string
	Key    []byte
	Block  cid.Cid
	Coding fungi.Coding
	Index  int
}

// Local is a node's own fragment store as the scrubber reads it.
type Local interface {
	// Scan returns up to n keys after cursor (nil: from the start), with
	// the cursor to continue from; no items means the end.
	Scan(cursor []byte, n int) ([]Item, []byte, error)
	// Get returns a fragment, checked against the store's own checksum
	// (an error wrapping ErrCorrupt when it fails).
	Get(ctx context.Context, key []byte) ([]byte, error)
	Has(ctx context.Context, key []byte) (bool, error)
	Delete(ctx context.Context, key []byte) error
}

// ErrCorrupt is what Local.Get wraps when stored bytes fail their checksum.
var ErrCorrupt = errors.New("stored bytes failed their checksum")

// Item is one stored fragment.
type Item struct {
	Key  []byte
	Size int
}

// Config are the repair settings.
type Config struct {
	// Grace: a member unheard this long counts as lost.
	Grace time.Duration
	// Rate caps repair traffic (fragment bytes fetched and written per
	// second); 0 lifts the cap.
	Rate int64
	// ScrubRate caps the bytes per second the scrubber reads; 0 turns
	// the scrubber off.
	ScrubRate int64
	// ScrubEvery is how often a scrub pass begins (at most): a pass
	// longer than that is followed by the next at once.
	ScrubEvery time.Duration
	// AuditEvery is how often the leader audits each holder; 0: never.
	AuditEvery time.Duration
	// AuditSample is how many fragments one audit asks of a holder.
	AuditSample int
	// AuditStrikes: a holder that fails this many audit rounds in a row
	// is replaced as if lost.
	AuditStrikes int
	// Interval is how often the monitor looks (default 2 s).
	Interval time.Duration
	// Workers is how many blocks are repaired at once (default 4).
	Workers int
}

// Defaults for the settings.
const (
	DefaultGrace        = 5 * time.Minute
	DefaultRate         = 50e6 // bytes a second: leaves most of a small machine to reads
	DefaultScrubRate    = 4 << 20
	DefaultScrubEvery   = time.Hour
	DefaultAuditEvery   = time.Minute
	DefaultAuditSample  = 16
	DefaultAuditStrikes = 2
)

func (c *Config) defaults() {
	if c.Interval <= 0 {
		c.Interval = 2 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.AuditSample <= 0 {
		c.AuditSample = DefaultAuditSample
	}
	if c.AuditStrikes <= 0 {
		c.AuditStrikes = DefaultAuditStrikes
	}
}

// Service runs the monitor, the repairs, the audits and the scrubber.
type Service struct {
	node Node
	cfg  Config
	log  *slog.Logger
	lim  *limiter
	scr  *scrubber
	kick chan struct{}

	mu        sync.Mutex
	status    Status
	statusAt  uint64 // the replicated state's version status was seen at
	leadSince time.Time
	audits    map[string]*auditRecord
	objs      []fungi.RepairObject
	objsAt    uint64
	plans     map[string]fungi.RepairPlan // the last plan, by what it saw
	running   bool                        // a repair pass is running
	counters  Counters
}

// New returns a service; Run starts it.
func New(n Node, cfg Config, log *slog.Logger) *Service {
	cfg.defaults()
	s := &Service{node: n, cfg: cfg, log: log, lim: newLimiter(cfg.Rate), kick: make(chan struct{}, 1),
		audits: map[string]*auditRecord{}}
	s.scr = newScrubber(s, cfg.ScrubRate)
	return s
}

// SetRate changes the repair rate cap while running (0 lifts it).
func (s *Service) SetRate(bps int64) { s.lim.setRate(bps) }

// Rate is the current repair rate cap.
func (s *Service) Rate() int64 { return s.lim.rate() }

// Kick makes the monitor look now.
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run runs until ctx ends.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.scr.run(ctx) })
	if s.cfg.AuditEvery > 0 {
		wg.Go(func() { s.auditLoop(ctx) })
	}
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("repair monitor", "err", err)
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// objects returns the objects, decoded again only when the state moved.
func (s *Service) objects(ctx context.Context) ([]fungi.RepairObject, error) {
	v := s.node.Version()
	s.mu.Lock()
	if s.objs != nil && s.objsAt == v {
		o := s.objs
		s.mu.Unlock()
		return o, nil
	}
	s.mu.Unlock()
	objs, err := s.node.Objects(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.objs, s.objsAt = objs, v
	s.mu.Unlock()
	return objs, nil
}

// objsVersion is the version the objects were read at.
func (s *Service) objsVersion() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.objsAt
}

// damageSet indexes the damage reports by holder and key.
func damageSet(ds []Damage) map[string]Damage {
	out := make(map[string]Damage, len(ds))
	for _, d := range ds {
		out[d.Holder+"\x00"+string(d.Key)] = d
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
