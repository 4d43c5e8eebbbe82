package zdb

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultNamespace always exists and cannot be deleted.
const DefaultNamespace = "default"

// Config configures a DB. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// DataDir holds one directory of data files per namespace.
	DataDir string
	// IndexDir holds one directory of settings and index files per
	// namespace; it may equal DataDir.
	IndexDir string
	// Mode is the key mode of namespaces created without one, including
	// the default namespace on first start.
	Mode Mode
	// DataSize is the size at which a data file is closed and the next one
	// started (default 256 MiB, at most 4 GiB - 16 MiB).
	DataSize int64
	// Sync fsyncs every write before it is acknowledged. Without it, writes
	// reach the OS before they are acknowledged (a crash of the process
	// loses nothing) and are fsynced every SyncInterval.
	Sync bool
	// SyncInterval is the background fsync period without Sync (default
	// 1 s; negative disables it).
	SyncInterval time.Duration
	// MaxSize is the size limit of the default namespace on first start
	// (0: none).
	MaxSize int64
	// Logger receives warnings about recovery and failures (default: the
	// slog default logger).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// DefaultConfig returns the defaults of 0-db's zdb.
func DefaultConfig() Config {
	return Config{
		DataDir:      "zdb-data",
		IndexDir:     "zdb-index",
		DataSize:     256 << 20,
		SyncInterval: time.Second,
	}
}

// Validate checks a config after defaults are filled.
func (c Config) Validate() error {
	if c.DataDir == "" || c.IndexDir == "" {
		return errors.New("zdb: data and index directories are required")
	}
	if c.DataSize < 64<<10 || c.DataSize > 4<<30-16<<20 {
		return fmt.Errorf("zdb: datasize %d out of range (64 KiB to 4080 MiB)", c.DataSize)
	}
	if c.MaxSize < 0 {
		return fmt.Errorf("zdb: maxsize %d is negative", c.MaxSize)
	}
	return nil
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.DataSize == 0 {
		c.DataSize = d.DataSize
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = d.SyncInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// DB is a set of namespaces in two directory trees, owned by one process (a
// lock file in DataDir keeps a second one out).
type DB struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File

	mu       sync.Mutex
	nss      map[string]*Namespace
	creating map[string]bool
	closed   bool

	ckpt chan *Namespace
	stop chan struct{}
	wg   sync.WaitGroup

	stats Stats
}

// Stats counts disk traffic and failures since Open.
type Stats struct {
	DataReadBytes   atomic.Int64
	DataWriteBytes  atomic.Int64
	DataReadErrors  atomic.Int64
	DataWriteErrors atomic.Int64
}

// Stats returns the DB's live counters.
func (db *DB) Stats() *Stats { return &db.stats }

// Reload closes a namespace and opens it again from its files (RELOAD).
func (db *DB) Reload(name string) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	ns := db.nss[name]
	if ns == nil {
		return ErrNoNamespace
	}
	if err := ns.close(true); err != nil {
		return err
	}
	fresh, err := db.openNamespace(name, nil)
	if err != nil {
		delete(db.nss, name)
		return err
	}
	db.nss[name] = fresh
	return nil
}

// ErrLocked reports that another process has the data directory open.
var ErrLocked = errors.New("data directory is in use by another process")

// Open opens (creating if needed) the DB, recovering every namespace: a torn
// tail is cut, a missing or stale index is rebuilt from the data files.
func Open(cfg Config) (*DB, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.DataDir, cfg.IndexDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("zdb: %w", err)
		}
	}
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	db := &DB{cfg: cfg, log: cfg.Logger, lock: lock, nss: map[string]*Namespace{}, creating: map[string]bool{},
		ckpt: make(chan *Namespace, 64), stop: make(chan struct{})}
	names, err := db.listNamespaces()
	if err == nil {
		for _, name := range names {
			var ns *Namespace
			if ns, err = db.openNamespace(name, nil); err != nil {
				err = fmt.Errorf("zdb: namespace %s: %w", name, err)
				break
			}
			db.nss[name] = ns
		}
	}
	if err == nil && db.nss[DefaultNamespace] == nil {
		var ns *Namespace
		ns, err = db.openNamespace(DefaultNamespace, &Settings{Mode: cfg.Mode, Public: true, MaxSize: cfg.MaxSize})
		if err == nil {
			db.nss[DefaultNamespace] = ns
		}
	}
	if err != nil {
		for _, ns := range db.nss {
			ns.close(false)
		}
		lock.Close()
		return nil, err
	}
	db.wg.Add(1)
	go db.background()
	return db, nil
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".zdb.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("zdb: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("zdb: %s: %w", dir, ErrLocked)
	}
	return f, nil
}

// listNamespaces finds namespaces by their directories in either tree,
// finishing or undoing an interrupted compaction on the way.
func (db *DB) listNamespaces() ([]string, error) {
	if err := recoverCompactions(db.cfg.DataDir, db.log); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, root := range []string{db.cfg.IndexDir, db.cfg.DataDir} {
		ents, err := os.ReadDir(root)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() && ValidName(e.Name()) {
				seen[e.Name()] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func (db *DB) now() uint32 { return uint32(db.cfg.Now().Unix()) }

// Config returns the DB's configuration with defaults filled in.
func (db *DB) Config() Config { return db.cfg }

// Namespace returns an open namespace, or ErrNoNamespace.
func (db *DB) Namespace(name string) (*Namespace, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	ns := db.nss[name]
	if ns == nil {
		return nil, ErrNoNamespace
	}
	return ns, nil
}

// Errors about namespaces.
var (
	ErrNoNamespace   = errors.New("namespace not found")
	ErrNSExists      = errors.New("namespace already exists")
	ErrBadNSName     = errors.New("invalid namespace name")
	ErrDeleteDefault = errors.New("the default namespace cannot be deleted")
)

// CreateNamespace makes a new, empty namespace in the DB's default mode.
// Its files are created outside the DB lock, so other namespaces are not
// held up by the fsyncs.
func (db *DB) CreateNamespace(name string) (*Namespace, error) {
	if !ValidName(name) {
		return nil, ErrBadNSName
	}
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil, ErrClosed
	}
	if db.nss[name] != nil || db.creating[name] {
		db.mu.Unlock()
		return nil, ErrNSExists
	}
	db.creating[name] = true
	db.mu.Unlock()
	ns, err := db.openNamespace(name, &Settings{Mode: db.cfg.Mode, Public: true})
	db.mu.Lock()
	defer db.mu.Unlock()
	delete(db.creating, name)
	if err != nil {
		return nil, err
	}
	db.nss[name] = ns
	return ns, nil
}

// DeleteNamespace removes a namespace and all its files.
func (db *DB) DeleteNamespace(name string) error {
	if name == DefaultNamespace {
		return ErrDeleteDefault
	}
	db.mu.Lock()
	ns := db.nss[name]
	if ns == nil {
		db.mu.Unlock()
		return ErrNoNamespace
	}
	delete(db.nss, name)
	db.mu.Unlock()
	ns.close(false)
	if err := os.RemoveAll(ns.dataDir); err != nil {
		return err
	}
	return os.RemoveAll(ns.indexDir)
}

// Names lists the namespaces, sorted.
func (db *DB) Names() []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	names := make([]string, 0, len(db.nss))
	for n := range db.nss {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (db *DB) namespaces() []*Namespace {
	db.mu.Lock()
	defer db.mu.Unlock()
	out := make([]*Namespace, 0, len(db.nss))
	for _, ns := range db.nss {
		out = append(out, ns)
	}
	return out
}

// checkpointSoon asks the background goroutine to checkpoint ns's index.
func (db *DB) checkpointSoon(ns *Namespace) {
	select {
	case db.ckpt <- ns:
	default: // one is queued already, or we are busy; the next rotation will do
	}
}

// background fsyncs periodically (without Config.Sync) and writes index
// checkpoints after data file rotations.
func (db *DB) background() {
	defer db.wg.Done()
	var tick <-chan time.Time
	if !db.cfg.Sync && db.cfg.SyncInterval > 0 {
		t := time.NewTicker(db.cfg.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-db.stop:
			return
		case <-tick:
			for _, ns := range db.namespaces() {
				if f := ns.flushed.Load(); ns.synced.Load() < f {
					if err := ns.syncTo(f); err != nil && !errors.Is(err, ErrClosed) {
						db.log.Warn("zdb: background sync", "namespace", ns.name, "err", err)
					}
				}
			}
		case ns := <-db.ckpt:
			if err := ns.checkpoint(); err != nil && !errors.Is(err, ErrClosed) {
				db.log.Warn("zdb: index checkpoint", "namespace", ns.name, "err", err)
			}
		}
	}
}

// Close flushes, fsyncs and checkpoints every namespace and releases the
// directory. Writes in flight finish first or fail with ErrClosed.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	db.mu.Unlock()
	close(db.stop)
	db.wg.Wait()
	var first error
	for _, ns := range db.namespaces() {
		if err := ns.close(true); err != nil && first == nil {
			first = err
		}
	}
	db.lock.Close()
	return first
}

// Sync fsyncs every namespace.
func (db *DB) Sync() error {
	for _, ns := range db.namespaces() {
		if err := ns.Sync(); err != nil {
			return err
		}
	}
	return nil
}
