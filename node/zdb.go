package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/fungistor/fungistor/store/server"
	"github.com/fungistor/fungistor/store/zdb"
)

// The standalone ZDB's types, re-exported so commands need only node.
type (
	ZDBConfig       = zdb.Config
	ZDBServerConfig = server.Config
	ZDBCheckReport  = zdb.CheckReport
	ZDBCompactStats = zdb.CompactStats
	ZDBMode         = zdb.Mode
)

// DefaultZDBConfig returns 0-db's defaults.
func DefaultZDBConfig() ZDBConfig { return zdb.DefaultConfig() }

// DefaultZDBThreads is how many cores a standalone ZDB uses by default: half
// the machine's, at least one. A request is a few microseconds of work
// between two syscalls; measured on 2 cores with the clients beside it, one
// scheduler thread serves 10-20% more than two, because idle threads spin
// for work the clients need the CPU for (docs/benchmarks.md).
func DefaultZDBThreads() int { return max(1, runtime.NumCPU()/2) }

// ParseZDBMode parses "user" or "seq".
func ParseZDBMode(s string) (ZDBMode, error) { return zdb.ParseMode(s) }

// ZDBOptions configure a standalone ZDB server.
type ZDBOptions struct {
	DB     ZDBConfig
	Server ZDBServerConfig
	// TCP is the host:port to listen on ("" for none); when the host is
	// "::" and IPv6 is unavailable, 0.0.0.0 is used, as 0-db does.
	TCP string
	// Socket is a unix socket path ("" for none).
	Socket string
	// Grace is how long shutdown waits for connections (default 10 s).
	Grace  time.Duration
	Logger *slog.Logger
}

// RunZDB serves a DB over RESP until ctx is done, then closes connections
// gracefully and the DB (flushed, synced, index checkpointed).
func RunZDB(ctx context.Context, o ZDBOptions) error {
	if o.TCP == "" && o.Socket == "" {
		return errors.New("nothing to listen on")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Grace == 0 {
		o.Grace = 10 * time.Second
	}
	o.DB.Logger, o.Server.Logger = o.Logger, o.Logger
	if err := o.Server.Validate(); err != nil {
		return err
	}
	var ls []net.Listener
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	if o.TCP != "" {
		l, err := server.Listen("tcp", o.TCP)
		if host, port, _ := net.SplitHostPort(o.TCP); err != nil && host == "::" {
			l, err = server.Listen("tcp", net.JoinHostPort("0.0.0.0", port))
		}
		if err != nil {
			return fmt.Errorf("listen on %s: %w", o.TCP, err)
		}
		ls = append(ls, l)
	}
	if o.Socket != "" {
		l, err := server.Listen("unix", o.Socket)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen on %s: %w", o.Socket, err)
		}
		ls = append(ls, l)
	}
	db, err := zdb.Open(o.DB)
	if err != nil {
		closeAll()
		return err
	}
	srv, err := server.New(db, o.Server)
	if err != nil {
		closeAll()
		db.Close()
		return err
	}
	cfg := db.Config()
	for _, l := range ls {
		o.Logger.Info("zdb: listening", "addr", l.Addr().Network()+"://"+l.Addr().String(),
			"data", cfg.DataDir, "index", cfg.IndexDir, "sync", cfg.Sync)
	}
	serveErr := srv.Run(ctx, o.Grace, ls...)
	closeErr := db.Close()
	o.Logger.Info("zdb: stopped")
	if serveErr != nil {
		return serveErr
	}
	return closeErr
}

// CheckZDB verifies every record of a stopped ZDB (see zdb.Check).
func CheckZDB(cfg ZDBConfig, repair bool, progress func(done int64)) (ZDBCheckReport, error) {
	return zdb.Check(cfg, repair, progress)
}

// CompactZDB rewrites the named namespaces of a stopped ZDB (all when names
// is empty), calling progress per namespace.
func CompactZDB(cfg ZDBConfig, names []string, each func(name string) func(done, total int64)) ([]ZDBCompactStats, error) {
	db, err := zdb.Open(cfg)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if len(names) == 0 {
		names = db.Names()
	}
	var all []ZDBCompactStats
	for _, name := range names {
		if _, err := db.Namespace(name); err != nil {
			return all, fmt.Errorf("namespace %q not found", name)
		}
		st, err := db.Compact(name, each(name))
		if err != nil {
			return all, err
		}
		all = append(all, st)
	}
	return all, db.Close()
}
