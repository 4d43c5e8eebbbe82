package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fungistor/fungistor/node"
)

// zdbFlags are 0-db's zdb flags, with its defaults.
type zdbFlags struct {
	data, index, listen, socket, mode, admin, logLevel string
	port                                               int
	datasize, maxsize                                  byteSize
	synctime, threads                                  int
	sync, protect, dualnet, verbose                    bool
}

func (f *zdbFlags) register(fs *flag.FlagSet) {
	f.datasize = 256 << 20
	fs.StringVar(&f.data, "data", "./zdb-data", "data files directory")
	fs.StringVar(&f.index, "index", "./zdb-index", "index files directory")
	fs.StringVar(&f.listen, "listen", "::", "TCP listen address")
	fs.IntVar(&f.port, "port", 9900, "TCP port")
	fs.StringVar(&f.socket, "socket", "", "unix socket path (replaces TCP unless --dualnet)")
	fs.BoolVar(&f.dualnet, "dualnet", false, "listen on the unix socket and TCP")
	fs.StringVar(&f.mode, "mode", "", "key mode for every namespace: user or seq (default: mixed, per namespace)")
	fs.Var(&f.datasize, "datasize", "data file size before rotating to the next (bytes; K/M/G suffixes)")
	fs.StringVar(&f.admin, "admin", "", "admin password (without it every client is admin)")
	fs.BoolVar(&f.protect, "protect", false, "default namespace read-only until SELECT with the admin password")
	fs.Var(&f.maxsize, "maxsize", "size limit of the default namespace (bytes; 0 = none)")
	fs.BoolVar(&f.sync, "sync", false, "fsync every write before acknowledging it")
	fs.IntVar(&f.synctime, "synctime", 1, "without --sync: fsync in the background every N seconds (0: never)")
	fs.BoolVar(&f.verbose, "verbose", false, "debug logging")
	fs.IntVar(&f.threads, "threads", node.DefaultZDBThreads(), "CPU cores the server may use at once (GOMAXPROCS)")
}

func (f *zdbFlags) dbConfig(log *slog.Logger) (node.ZDBConfig, error) {
	cfg := node.DefaultZDBConfig()
	cfg.DataDir, cfg.IndexDir = f.data, f.index
	cfg.DataSize = int64(f.datasize)
	cfg.MaxSize = int64(f.maxsize)
	cfg.Sync = f.sync
	cfg.Logger = log
	if f.synctime <= 0 {
		cfg.SyncInterval = -1
	} else {
		cfg.SyncInterval = time.Duration(f.synctime) * time.Second
	}
	if f.mode != "" {
		m, err := node.ParseZDBMode(f.mode)
		if err != nil {
			return cfg, usagef("--mode: %v", err)
		}
		cfg.Mode = m
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usagef("%v", err)
	}
	return cfg, nil
}

func newLogger(verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func runZDB(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return runZDBCheck(args[1:])
		case "compact":
			return runZDBCompact(args[1:])
		}
	}
	fs := newFlagSet("fungi zdb")
	var f zdbFlags
	f.register(fs)
	setUsage(fs, "usage: fungi zdb [flags]          a 0-db compatible server (drop-in for zdb)\n"+
		"       fungi zdb check [flags]    verify every record's checksum (--repair cuts a torn tail)\n"+
		"       fungi zdb compact [flags]  rewrite namespaces without dead records\n\nflags:\n")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.port < 0 || f.port > 65535 {
		return usagef("--port %d out of range", f.port)
	}
	log := newLogger(f.verbose)
	cfg, err := f.dbConfig(log)
	if err != nil {
		return err
	}
	if f.threads < 1 {
		return usagef("--threads must be at least 1")
	}
	runtime.GOMAXPROCS(f.threads)
	o := node.ZDBOptions{
		DB:     cfg,
		Server: node.ZDBServerConfig{Admin: f.admin, Protect: f.protect, FixedMode: f.mode != ""},
		Logger: log,
	}
	if err := o.Server.Validate(); err != nil {
		return usagef("%v", err)
	}
	if f.socket == "" || f.dualnet {
		o.TCP = net.JoinHostPort(f.listen, strconv.Itoa(f.port))
	}
	o.Socket = f.socket
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return node.RunZDB(ctx, o)
}

// offlineFlags are the flags of check and compact.
func offlineFlags(name string) (*flag.FlagSet, *zdbFlags, *bool, *bool) {
	fs := newFlagSet(name)
	var f zdbFlags
	f.datasize = 256 << 20
	fs.StringVar(&f.data, "data", "./zdb-data", "data files directory")
	fs.StringVar(&f.index, "index", "./zdb-index", "index files directory")
	fs.Var(&f.datasize, "datasize", "data file size of rewritten files (bytes; K/M/G suffixes)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("quiet", false, "no progress output")
	return fs, &f, asJSON, quiet
}

func runZDBCheck(args []string) error {
	fs, f, asJSON, quiet := offlineFlags("fungi zdb check")
	repair := fs.Bool("repair", false, "cut a torn tail off the last data file of each namespace")
	setUsage(fs, "usage: fungi zdb check [--data DIR] [--index DIR] [--repair] [--json]\n\n"+
		"Verifies both checksums of every record; the server must be stopped.\n"+
		"Exits 0 when all is sound (or repaired), 1 when damage remains.\n\nflags:\n")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, err := os.Stat(f.data); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	cfg, err := f.dbConfig(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	prog := newProgress(*quiet || *asJSON, "checked")
	rep, err := node.CheckZDB(cfg, *repair, prog.update)
	prog.done()
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		for _, ns := range rep.Namespaces {
			status := "ok"
			if len(ns.Problems) > 0 {
				status = fmt.Sprintf("%d problem(s)", len(ns.Problems))
			}
			fmt.Printf("%-20s %d files, %d records, %d bytes: %s\n", ns.Name, ns.Files, ns.Records, ns.Bytes, status)
			for _, p := range ns.Problems {
				fix := ""
				if p.Repaired {
					fix = " (repaired: cut)"
				} else if p.Kind == "torn tail" {
					fix = " (run with --repair to cut it)"
				}
				fmt.Printf("  %s: %s at offset %d, %d bytes%s\n", p.File, p.Kind, p.Offset, p.Bytes, fix)
			}
		}
	}
	if !rep.OK() {
		return errors.New("damaged records found")
	}
	return nil
}

func runZDBCompact(args []string) error {
	fs, f, asJSON, quiet := offlineFlags("fungi zdb compact")
	nsName := fs.String("namespace", "", "namespace to compact (default: all)")
	setUsage(fs, "usage: fungi zdb compact [--data DIR] [--index DIR] [--namespace NS] [--json]\n\n"+
		"Rewrites namespaces keeping only the latest version of each live key\n"+
		"(history is dropped). Crash-safe: an interrupted compaction leaves the\n"+
		"old or the new files whole. The server must be stopped.\n\nflags:\n")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if _, err := os.Stat(f.data); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	cfg, err := f.dbConfig(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	var names []string
	if *nsName != "" {
		names = []string{*nsName}
	}
	var prog *progress
	all, err := node.CompactZDB(cfg, names, func(name string) func(done, total int64) {
		prog.done()
		prog = newProgress(*quiet || *asJSON, "compacting "+name)
		return prog.updateOf
	})
	if prog != nil {
		prog.done()
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(all)
	}
	if !*quiet {
		for _, st := range all {
			fmt.Printf("%-20s %d records, %d -> %d bytes\n", st.Namespace, st.Records, st.BytesBefore, st.BytesAfter)
		}
	}
	return nil
}

// byteSize is a flag of bytes with optional K, M, G, T suffixes (powers of
// 1024).
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	v, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = byteSize(v)
	return nil
}

func parseBytes(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return v * mult, nil
}
