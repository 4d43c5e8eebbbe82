// Package server serves a zdb.DB over RESP, as ThreeFold's 0-db does: the
// same commands, replies and error strings, so existing 0-db clients work
// unchanged.
//
// One goroutine serves each connection. It parses every command already
// received, batching replies, and before any reply reaches the socket the
// writes it acknowledges are committed (written to the OS, and fsynced in
// sync mode) with one call per batch: pipelined clients get group commit for
// free. A malformed stream gets an error reply and is closed; no input can
// crash the server or reach the data files unchecked.
package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fungistor/fungistor/store"
	"github.com/fungistor/fungistor/store/resp"
	"github.com/fungistor/fungistor/store/zdb"
)

// Config configures a Server. Zero values are 0-db's defaults.
type Config struct {
	// Admin is the admin password; empty makes every client admin, as in
	// 0-db.
	Admin string
	// Protect makes the default namespace read-only until a client selects
	// it with the admin password (0-db's --protect; needs Admin).
	Protect bool
	// FixedMode refuses NSSET mode (0-db with --mode given).
	FixedMode bool
	// PartialTimeout closes a connection that stops in the middle of a
	// command for this long (default 30 s). Idle connections between
	// commands are never timed out.
	PartialTimeout time.Duration
	// MaxClients caps concurrent connections (default 10000).
	MaxClients int
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.Protect && c.Admin == "" {
		return errors.New("protected mode only works with admin password")
	}
	return nil
}

// Server is a RESP front end for a DB.
type Server struct {
	db  *zdb.DB
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool
	wg        sync.WaitGroup

	waiters atomic.Int32 // sessions blocked in WAIT
	waitMu  sync.Mutex
	waits   map[*waiter]struct{}

	boot       time.Time
	instanceID uint32
	stats      stats
}

type stats struct {
	clients, commands, failed, unauthorized atomic.Int64
	rx, tx                                  atomic.Int64
}

// New returns a server for db. It does not own db: close db after Shutdown.
func New(db *zdb.DB, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PartialTimeout == 0 {
		cfg.PartialTimeout = 30 * time.Second
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		db: db, cfg: cfg, log: cfg.Logger,
		listeners:  map[net.Listener]struct{}{},
		conns:      map[*conn]struct{}{},
		waits:      map[*waiter]struct{}{},
		boot:       time.Now(),
		instanceID: uint32(time.Now().UnixNano()),
	}
	if cfg.Protect {
		ns, err := db.Namespace(zdb.DefaultNamespace)
		if err != nil {
			return nil, err
		}
		if err := ns.Update(func(st *zdb.Settings) error { st.Password = cfg.Admin; return nil }); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// MaxArgs is the most arguments, command name included, that one command
// may announce; a larger array is refused as soon as its header is read,
// with "-Protocol error: too many arguments (N, at most 1024)", and the
// connection is closed (the arguments that follow cannot be told from
// commands). 0-db's limit is 8: none of its commands takes more than 5.
// MGET, which 0-db lacks, takes a key per argument, and store/client sends
// up to client.MGETBatch (1000) keys in one, so the limit here is 1024:
// MGET with up to 1023 keys.
const MaxArgs = 1024

// requestLimits bound what a client may send: 0-db's 8 MiB per argument
// (its REDIS_MAX_PAYLOAD; a key is at most 255 bytes, a value at most
// store.MaxValueSize) and MaxArgs arguments.
var requestLimits = resp.Limits{MaxArgs: MaxArgs, MaxBulk: store.MaxValueSize}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("zdb server closed")

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// out of file descriptors or a transient error: back off
				delay = min(max(delay*2, 5*time.Millisecond), time.Second)
				s.log.Warn("zdb: accept", "err", err)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.startConn(nc)
	}
}

func (s *Server) startConn(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := newConn(s, nc)
	s.mu.Lock()
	if s.closing || len(s.conns) >= s.cfg.MaxClients {
		full := !s.closing
		s.mu.Unlock()
		if full {
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(nc, "-Too many clients connected\r\n")
		}
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.stats.clients.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// Shutdown stops accepting, lets every connection finish the commands it
// has received (their writes committed and replies sent), closes them, and
// waits for them until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close() // a unix listener removes its socket file
	}
	for c := range s.conns {
		c.stop()
	}
	s.mu.Unlock()
	s.wakeWaiters()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// Listen opens a TCP or unix listener; a stale unix socket file (one no
// process listens on) is replaced.
func Listen(network, addr string) (net.Listener, error) {
	if network == "unix" {
		if c, err := net.Dial("unix", addr); err == nil {
			c.Close()
			return nil, errors.New("unix socket " + addr + " is in use by another process")
		}
		os.Remove(addr)
	}
	return net.Listen(network, addr)
}

// conn is one client connection and its session state.
type conn struct {
	s  *Server
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
	r  *resp.Reader
	w  *resp.Writer

	stopping atomic.Bool
	mid      bool // a command has started arriving: time out if it stalls
	deadline bool // a read deadline is set

	sess session
}

// connReader reads from the socket with a deadline while a command is
// half received, and counts bytes.
type connReader struct{ c *conn }

func (cr connReader) Read(p []byte) (int, error) {
	c := cr.c
	if c.stopping.Load() {
		c.nc.SetReadDeadline(time.Now())
	} else if c.mid {
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.PartialTimeout))
		c.deadline = true
	} else if c.deadline {
		c.nc.SetReadDeadline(time.Time{})
		c.deadline = false
	}
	n, err := c.nc.Read(p)
	if n > 0 {
		c.mid = true
		c.s.stats.rx.Add(int64(n))
	}
	return n, err
}

// connWriter commits pending writes before any reply reaches the socket, so
// no acknowledgement ever precedes the data it acknowledges.
type connWriter struct{ c *conn }

func (cw connWriter) Write(p []byte) (int, error) {
	c := cw.c
	if x := &c.sess; x.pending != 0 && !x.pendingNS.Committed(x.pending) {
		// let other connections append their writes first: one write (and
		// fsync) then covers them all
		runtime.Gosched()
	}
	if err := c.sess.commit(); err != nil {
		// the writes could not be made durable: never acknowledge them
		c.s.log.Error("zdb: commit failed; closing connection", "err", err)
		c.nc.Close()
		return 0, err
	}
	n, err := c.nc.Write(p)
	c.s.stats.tx.Add(int64(n))
	return n, err
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc}
	c.br = bufio.NewReaderSize(connReader{c}, 64<<10)
	c.bw = bufio.NewWriterSize(connWriter{c}, 64<<10)
	c.r = resp.NewReader(c.br, requestLimits)
	c.w = resp.NewWriter(c.bw)
	c.sess = session{s: s, c: c, admin: s.cfg.Admin == "", writable: !s.cfg.Protect, nsName: zdb.DefaultNamespace}
	return c
}

// stop asks the connection to end after the commands it has received.
func (c *conn) stop() {
	c.stopping.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

func (c *conn) serve() {
	defer c.nc.Close()
	defer c.sess.commit()
	for {
		if c.br.Buffered() == 0 {
			// the rest of a refused command is still to come
			c.mid = c.r.Skipping()
			// about to wait for the network: send what we have
			if err := c.bw.Flush(); err != nil {
				return
			}
			if c.stopping.Load() {
				return
			}
		}
		cmd, err := c.r.ReadCommand()
		if err != nil {
			var pe *resp.ProtocolError
			switch {
			case errors.Is(err, resp.ErrTooLarge):
				// answered as soon as the length is read, as 0-db does; the
				// payload is then skipped, not waited for before replying
				c.w.Error("Payload too big")
				if c.bw.Flush() != nil {
					return
				}
				continue
			case errors.As(err, &pe):
				c.w.Error(pe.Error())
				c.bw.Flush()
				return
			case errors.Is(err, os.ErrDeadlineExceeded) && !c.stopping.Load():
				c.w.Error("Timeout: incomplete command")
				c.bw.Flush()
				return
			}
			return // EOF, reset, or shutdown
		}
		if c.br.Buffered() == 0 {
			c.mid = false
		}
		c.s.stats.commands.Add(1)
		if !c.sess.dispatch(cmd.Args) {
			c.bw.Flush()
			return
		}
	}
}

// Run serves on the listeners until ctx is done, then shuts down, giving
// connections grace to finish. It returns the first serve error, if any.
func (s *Server) Run(ctx context.Context, grace time.Duration, ls ...net.Listener) error {
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- s.Serve(l) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	s.Shutdown(sctx)
	return err
}
