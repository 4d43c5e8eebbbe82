package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/fungistor/fungistor/store"
	"github.com/fungistor/fungistor/store/resp"
)

// Client is a pool of connections to one namespace of a remote ZDB. It is
// safe for concurrent use.
type Client struct {
	cfg              Config
	network, address string

	sem  chan struct{} // one token per open or opening connection in use
	done chan struct{} // closed by Close

	mu     sync.Mutex
	idle   []*conn            // LIFO, so the warmest connection is reused
	conns  map[*conn]struct{} // every open connection, idle or in use
	closed bool
}

var _ store.KV = (*Client)(nil)

// New validates cfg and connects: it dials one connection (and runs its
// AUTH/SELECT handshake) before returning, so a wrong address, password or
// namespace is reported here. That connection stays in the pool.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	network, address, _ := splitAddr(cfg.Addr)
	c := &Client{
		cfg: cfg, network: network, address: address,
		sem:   make(chan struct{}, cfg.PoolSize),
		done:  make(chan struct{}),
		conns: map[*conn]struct{}{},
	}
	cn, err := c.get(context.Background())
	if err != nil {
		return nil, fmt.Errorf("zdb: %w", err)
	}
	c.put(cn)
	return c, nil
}

// Close closes every connection, interrupting calls in flight; every call
// after it returns ErrClosed. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	conns := c.conns
	c.conns, c.idle = nil, nil
	c.mu.Unlock()
	for cn := range conns {
		cn.nc.Close()
	}
	return nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// get checks a connection out of the pool, dialling one when none is idle;
// it waits while PoolSize connections are in use.
func (c *Client) get(ctx context.Context) (*conn, error) {
	select {
	case c.sem <- struct{}{}:
	default:
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, ErrClosed
		}
	}
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			<-c.sem
			return nil, ErrClosed
		}
		n := len(c.idle)
		if n == 0 {
			c.mu.Unlock()
			break
		}
		cn := c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		if cn.alive() {
			return cn, nil
		}
		c.forget(cn)
	}
	cn, err := c.dial(ctx)
	if err != nil {
		<-c.sem
		return nil, err
	}
	return cn, nil
}

// put returns a connection to the pool, or closes it when it is broken.
func (c *Client) put(cn *conn) {
	c.mu.Lock()
	if cn.broken || c.closed {
		delete(c.conns, cn)
		c.mu.Unlock()
		cn.nc.Close()
	} else {
		c.idle = append(c.idle, cn)
		c.mu.Unlock()
	}
	<-c.sem
}

func (c *Client) forget(cn *conn) {
	c.mu.Lock()
	delete(c.conns, cn)
	c.mu.Unlock()
	cn.nc.Close()
}

// dial opens a connection and runs the handshake, within DialTimeout.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	dctx := ctx
	if c.cfg.DialTimeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, c.cfg.DialTimeout)
		defer cancel()
	}
	ctxDeadline, _ := ctx.Deadline()
	var d net.Dialer
	nc, err := d.DialContext(dctx, c.network, c.address)
	if err != nil {
		if e := c.interrupted(ctx, ctxDeadline, err); e != nil {
			return nil, e
		}
		return nil, err // a *net.OpError naming the address
	}
	cn := newConn(nc, c.cfg)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		nc.Close()
		return nil, ErrClosed
	}
	c.conns[cn] = struct{}{} // so Close interrupts the handshake
	c.mu.Unlock()
	err = cn.run(dctx, func(cn *conn) error { return cn.handshake(c.cfg) })
	if err == nil && cn.broken {
		err = errors.New("connection closed during the handshake")
	}
	if err != nil {
		c.forget(cn)
		var he *handshakeError
		if errors.As(err, &he) {
			return nil, he.err
		}
		if e := c.interrupted(ctx, ctxDeadline, err); e != nil {
			return nil, e
		}
		if dctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("handshake with %s timed out: %w", c.cfg.Addr, err)
		}
		return nil, fmt.Errorf("handshake with %s: %w", c.cfg.Addr, err)
	}
	cn.deadline = time.Time{}
	return cn, nil
}

// interrupted returns the error to report for a transport error err when
// the call was ended by its context (ctx.Err()) or by Close (ErrClosed);
// nil otherwise. deadline is the context's deadline: a net deadline set from
// it can fire a moment before the context's own timer.
func (c *Client) interrupted(ctx context.Context, deadline time.Time, err error) error {
	if e := ctx.Err(); e != nil {
		return e
	}
	if !deadline.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(deadline) {
		return context.DeadlineExceeded
	}
	if c.isClosed() {
		return ErrClosed
	}
	return nil
}

// exec runs fn, the I/O of one call, on a pooled connection. It returns
// ctx.Err() when the context ended the call and ErrClosed after Close; other
// transport errors are returned as they are (the connection is discarded).
func (c *Client) exec(ctx context.Context, fn func(*conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cn, err := c.get(ctx)
	if err != nil {
		return err
	}
	err = cn.run(ctx, fn)
	deadline := cn.deadline
	c.put(cn) // cn may be someone else's from here
	if err == nil {
		return nil
	}
	if e := c.interrupted(ctx, deadline, err); e != nil {
		return e
	}
	var ne net.Error
	if !errors.As(err, &ne) {
		err = fmt.Errorf("connection to %s: %w", c.cfg.Addr, err) // e.g. io.EOF
	}
	return err
}

// pipeline runs n commands on one connection (see conn.pipeline).
func (c *Client) pipeline(ctx context.Context, n int, write func(w *resp.Writer), read func(i int, r resp.Reply)) error {
	return c.exec(ctx, func(cn *conn) error { return cn.pipeline(n, write, read) })
}

// roundTrip sends one command and reads its reply.
func (c *Client) roundTrip(ctx context.Context, args ...[]byte) (resp.Reply, error) {
	var rep resp.Reply
	err := c.pipeline(ctx, 1, func(w *resp.Writer) { w.Command(args...) }, func(_ int, r resp.Reply) { rep = r })
	return rep, err
}

// wrap adds the operation and key to an error, except to the context's
// errors and ErrClosed, which are returned as they are.
func wrap(op string, key []byte, err error) error {
	if bare(err) {
		return err
	}
	return fmt.Errorf("zdb %s %q: %w", op, key, err)
}

// bare reports the errors returned without context.
func bare(err error) bool {
	return err == nil || err == ErrClosed || err == store.ErrNotFound ||
		err == context.Canceled || err == context.DeadlineExceeded
}

// Do sends any command and returns its reply. An error reply is returned
// both as the Reply and as an error wrapping a resp.ServerError (and the
// matching store sentinel, if any): SCAN's "No more data" is an error
// reply. SELECT and AUTH are refused, since they would change the session of
// a pooled connection; set Config.Namespace and Config.Admin instead. After
// QUIT the connection is discarded. A blocking command (WAIT) needs a
// ReadTimeout longer than its own timeout, or a negative one.
func (c *Client) Do(ctx context.Context, args ...[]byte) (resp.Reply, error) {
	if len(args) == 0 {
		return resp.Reply{}, errors.New("zdb: Do without a command")
	}
	name := string(bytes.ToUpper(args[0]))
	switch name {
	case "SELECT", "AUTH":
		return resp.Reply{}, fmt.Errorf("zdb: %s would change a pooled connection's session; set it in the Config", name)
	}
	var rep resp.Reply
	err := c.exec(ctx, func(cn *conn) error {
		err := cn.pipeline(1, func(w *resp.Writer) { w.Command(args...) }, func(_ int, r resp.Reply) { rep = r })
		if name == "QUIT" || name == "STOP" {
			cn.broken = true
		}
		return err
	})
	if err != nil {
		if bare(err) {
			return rep, err
		}
		return rep, fmt.Errorf("zdb %s: %w", name, err)
	}
	if rep.Kind == resp.KindError {
		return rep, fmt.Errorf("zdb %s: %w", name, serverError(rep.Str, 0))
	}
	return rep, nil
}

// Ping checks that a connection works (taking one from the pool, or dialling
// one).
func (c *Client) Ping(ctx context.Context) error {
	rep, err := c.Do(ctx, []byte("PING"))
	if err != nil {
		return err
	}
	if rep.Kind != resp.KindSimple || string(rep.Str) != "PONG" {
		return fmt.Errorf("zdb PING: unexpected reply %s", rep)
	}
	return nil
}
