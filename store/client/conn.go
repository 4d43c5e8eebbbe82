package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/fungistor/fungistor/store/resp"
)

const bufSize = 64 << 10

// conn is one connection with its session selected. It is used by one
// goroutine at a time (the pipelined writer aside, which owns the write side
// while the caller reads).
type conn struct {
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
	w  *resp.Writer
	rr *resp.ReplyReader

	readTimeout, writeTimeout time.Duration

	// deadline is the current call's context deadline (zero: none); set
	// before any I/O of the call and only read during it.
	deadline time.Time
	// broken marks a connection that must not go back to the pool.
	broken bool
}

func newConn(nc net.Conn, cfg Config) *conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
	}
	cn := &conn{nc: nc, readTimeout: cfg.ReadTimeout, writeTimeout: cfg.WriteTimeout}
	cn.br = bufio.NewReaderSize(deadlineReader{cn}, bufSize)
	cn.bw = bufio.NewWriterSize(deadlineWriter{cn}, bufSize)
	cn.w = resp.NewWriter(cn.bw)
	cn.rr = resp.NewReplyReader(cn.br, resp.Limits{})
	return cn
}

// limit is the deadline of the next read or write: now plus the timeout,
// but no later than the context's deadline.
func (cn *conn) limit(timeout time.Duration) time.Time {
	d := cn.deadline
	if timeout > 0 {
		t := time.Now().Add(timeout)
		if d.IsZero() || t.Before(d) {
			d = t
		}
	}
	return d
}

// deadlineReader sets the read deadline before each read from the socket,
// so ReadTimeout bounds every wait for the server, however long the reply.
type deadlineReader struct{ cn *conn }

func (r deadlineReader) Read(p []byte) (int, error) {
	if err := r.cn.nc.SetReadDeadline(r.cn.limit(r.cn.readTimeout)); err != nil {
		return 0, err
	}
	return r.cn.nc.Read(p)
}

type deadlineWriter struct{ cn *conn }

func (w deadlineWriter) Write(p []byte) (int, error) {
	if err := w.cn.nc.SetWriteDeadline(w.cn.limit(w.cn.writeTimeout)); err != nil {
		return 0, err
	}
	return w.cn.nc.Write(p)
}

// run runs fn, the I/O of one call, under ctx: the context's deadline bounds
// every read and write, and cancelling ctx closes the connection, which
// interrupts fn. An error from fn is a transport error: the stream can no
// longer be trusted, so the connection is marked broken.
func (cn *conn) run(ctx context.Context, fn func(*conn) error) error {
	cn.deadline, _ = ctx.Deadline()
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { cn.nc.Close() })
	}
	err := fn(cn)
	if stop != nil && !stop() {
		cn.broken = true // closed by the context, maybe after fn completed
	}
	if err != nil {
		cn.broken = true
	}
	return err
}

// pipeline writes the n commands that write produces and hands each reply,
// in order, to read. With more than one command the writing goes on in a
// second goroutine while replies are read, so a batch larger than the
// socket buffers cannot deadlock against a server that blocks writing
// replies nobody reads yet.
func (cn *conn) pipeline(n int, write func(w *resp.Writer), read func(i int, r resp.Reply)) error {
	if n == 1 {
		write(cn.w)
		if err := cn.bw.Flush(); err != nil {
			return err
		}
		r, err := cn.readReply()
		if err != nil {
			return err
		}
		read(0, r)
		return nil
	}
	werr := make(chan error, 1)
	go func() {
		write(cn.w)
		err := cn.bw.Flush()
		if err != nil {
			cn.nc.Close() // unblock the reader
		}
		werr <- err
	}()
	var rerr error
	for i := 0; i < n; i++ {
		r, err := cn.readReply()
		if err != nil {
			rerr = err
			cn.nc.Close() // unblock the writer
			break
		}
		read(i, r)
	}
	if err := <-werr; err != nil && (rerr == nil || errors.Is(rerr, net.ErrClosed)) {
		return err // the write failed first; the read error is its echo
	}
	return rerr
}

func (cn *conn) readReply() (resp.Reply, error) {
	r, err := cn.rr.ReadReply()
	if err != nil {
		return r, err
	}
	if r.Kind == resp.KindError && dropsConn(r.Str) {
		cn.broken = true
	}
	return r, nil
}

// handshake authenticates and selects the namespace, in one round trip.
func (cn *conn) handshake(cfg Config) error {
	var names []string
	if cfg.Admin != "" {
		cn.w.Command([]byte("AUTH"), []byte(cfg.Admin))
		names = append(names, "AUTH")
	}
	if cfg.Password != "" {
		cn.w.Command([]byte("SELECT"), []byte(cfg.Namespace), []byte(cfg.Password))
	} else {
		cn.w.Command([]byte("SELECT"), []byte(cfg.Namespace))
	}
	names = append(names, "SELECT")
	if err := cn.bw.Flush(); err != nil {
		return err
	}
	var first error
	for _, name := range names {
		r, err := cn.readReply()
		if err != nil {
			return err
		}
		if first != nil {
			continue
		}
		switch {
		case r.Kind == resp.KindError && string(r.Str) == "Too many clients connected":
			// sent on accept, before any command is read
			first = fmt.Errorf("%s refused the connection: %w", cfg.Addr, resp.ServerError(r.Str))
		case r.Kind == resp.KindError && name == "AUTH" && string(r.Str) == "Authentication disabled":
			// no admin password on the server: everyone is admin
		case r.Kind == resp.KindError && name == "AUTH":
			first = fmt.Errorf("AUTH on %s: %w", cfg.Addr, serverError(r.Str, 0))
		case r.Kind == resp.KindError:
			first = fmt.Errorf("SELECT %q on %s: %w", cfg.Namespace, cfg.Addr, serverError(r.Str, 0))
		case r.Kind != resp.KindSimple:
			first = fmt.Errorf("%s on %s: unexpected reply %s", name, cfg.Addr, r)
		}
	}
	if first != nil {
		return &handshakeError{first}
	}
	return nil
}

// handshakeError is a refusal by the server during the handshake (as
// opposed to a transport error).
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }
