// Package client is a pooled, pipelining client for remote ZDBs: 0-db
// compatible servers such as store/server (`fungi zdb`) or ThreeFold's 0-db.
//
// A Client owns a bounded pool of connections to one namespace of one server
// and implements store.KV over it, so the layers above can use a remote
// namespace exactly as they use an embedded zdb.Namespace. Server error
// replies are mapped to the store sentinel errors (store.ErrNotFound,
// store.ErrReadOnly, ...) where they correspond; the others come back as a
// resp.ServerError wrapped with the command and key. Keys over
// store.MaxKeySize and values over store.MaxValueSize are refused before
// anything is sent.
//
// New dials eagerly: it opens one connection (AUTH when Config.Admin is set,
// then SELECT of the namespace with its password) before returning, so a
// wrong address, password or namespace is reported by New rather than by the
// first call. Later connections are dialled on demand, each with the same
// handshake, up to Config.PoolSize; callers beyond that wait for a free
// connection (or for their context).
//
// Invariants:
//   - A connection carries one request/response stream at a time: it is
//     checked out of the pool for a whole call (one command, or one pipelined
//     batch), and returned only with every reply of that call read.
//   - A connection that hit a network or protocol error, whose call was
//     interrupted by its context (cancelled mid-request, the connection is
//     closed at once, since a late reply would desynchronise it), or that the
//     server closed, is discarded and never reused. An idle connection is
//     probed without blocking before reuse, so a server restart costs no
//     failed call.
//   - Every call honours its context: ctx.Deadline() bounds the connection's
//     reads and writes (together with Config.ReadTimeout and WriteTimeout,
//     which bound each network read or write), and a cancelled or expired
//     context makes the call return ctx.Err().
//   - Nothing is retried: a write whose reply was lost may or may not have
//     been applied.
//   - After Close every call returns ErrClosed; Close also interrupts calls
//     in flight.
//
// SetMany and GetMany pipeline: all their commands are written on one
// connection (by a second goroutine, so neither side can stall on a full
// socket buffer) while the replies are read. The server commits a
// pipelined batch together, so SetMany gets group commit under --sync.
// Do sends any other command (NSINFO, SCAN, DBSIZE, ...).
//
// Usage:
//
//	c, err := client.New(client.Config{
//		Addr:      "10.0.0.5:9900", // or "unix:/run/zdb.sock"
//		Namespace: "blocks",
//		Password:  "secret",
//	})
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	if _, _, err := c.Set(ctx, []byte("k"), []byte("v")); err != nil {
//		return err
//	}
//	v, err := c.Get(ctx, []byte("k")) // store.ErrNotFound when missing
//	info, err := c.Do(ctx, []byte("NSINFO"), []byte("blocks"))
package client
