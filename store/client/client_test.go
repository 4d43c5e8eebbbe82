package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fungistor/fungistor/store"
	"github.com/fungistor/fungistor/store/client"
	"github.com/fungistor/fungistor/store/resp"
	"github.com/fungistor/fungistor/store/server"
	"github.com/fungistor/fungistor/store/storetest"
	"github.com/fungistor/fungistor/store/zdb"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// trackingListener counts accepted connections and keeps them, so a test
// can break them from the server side.
type trackingListener struct {
	net.Listener
	accepts atomic.Int64
	mu      sync.Mutex
	conns   []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err == nil {
		l.accepts.Add(1)
		l.mu.Lock()
		l.conns = append(l.conns, nc)
		l.mu.Unlock()
	}
	return nc, err
}

// dropAll closes every accepted connection from the server's side.
func (l *trackingListener) dropAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, nc := range l.conns {
		nc.Close()
	}
	l.conns = nil
}

// env is a DB served in-process.
type env struct {
	t       testing.TB
	db      *zdb.DB
	scfg    server.Config
	srv     *server.Server
	ln      *trackingListener
	network string
	laddr   string // listen address
	addr    string // client address
	nsSeq   atomic.Int64
}

func newEnv(t testing.TB, scfg server.Config) *env {
	return newEnvOn(t, scfg, "tcp", "127.0.0.1:0")
}

func newEnvOn(t testing.TB, scfg server.Config, network, laddr string) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := zdb.Open(zdb.Config{
		DataDir:  filepath.Join(dir, "data"),
		IndexDir: filepath.Join(dir, "index"),
		Logger:   discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	scfg.Logger = discard
	e := &env{t: t, db: db, scfg: scfg, network: network, laddr: laddr}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *env) start() {
	e.t.Helper()
	srv, err := server.New(e.db, e.scfg)
	if err != nil {
		e.t.Fatal(err)
	}
	l, err := net.Listen(e.network, e.laddr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv, e.ln = srv, &trackingListener{Listener: l}
	if e.network == "tcp" {
		e.laddr = l.Addr().String() // a restart reuses the port
		e.addr = e.laddr
	} else {
		e.addr = "unix:" + e.laddr
	}
	go srv.Serve(e.ln)
}

func (e *env) stop() {
	if e.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.srv.Shutdown(ctx)
	e.srv = nil
}

// namespace creates a fresh namespace.
func (e *env) namespace() (string, *zdb.Namespace) {
	e.t.Helper()
	name := fmt.Sprintf("ns%d", e.nsSeq.Add(1))
	ns, err := e.db.CreateNamespace(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return name, ns
}

// client connects to the env; cfg.Addr is filled in.
func (e *env) client(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	cfg.Addr = e.addr
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nsClient is a client on a fresh namespace.
func (e *env) nsClient(t testing.TB, cfg client.Config) (*client.Client, *zdb.Namespace) {
	t.Helper()
	name, ns := e.namespace()
	cfg.Namespace = name
	return e.client(t, cfg), ns
}

var ctx = context.Background()

func b(s string) []byte { return []byte(s) }

func TestSuite(t *testing.T) {
	e := newEnv(t, server.Config{})
	storetest.Run(t, func(t *testing.T) store.KV {
		c, _ := e.nsClient(t, client.Config{})
		return c
	})
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "zdb.sock")
	e := newEnvOn(t, server.Config{}, "unix", sock)
	if !strings.HasPrefix(e.addr, "unix:/") {
		t.Fatalf("addr %q", e.addr)
	}
	storetest.Run(t, func(t *testing.T) store.KV {
		c, _ := e.nsClient(t, client.Config{})
		return c
	})
	// a broken unix connection is detected too
	c, _ := e.nsClient(t, client.Config{PoolSize: 1})
	mustSet(t, c, "k", "v")
	e.ln.dropAll()
	mustGet(t, c, "k", "v")
}

func TestConfig(t *testing.T) {
	bad := []client.Config{
		{},
		{Addr: "localhost"},
		{Addr: "unix:"},
		{Addr: "127.0.0.1:1", PoolSize: -1},
		{Addr: "127.0.0.1:1", Namespace: strings.Repeat("n", 129)},
		{Addr: "127.0.0.1:1", Password: strings.Repeat("p", 256)},
		{Addr: "127.0.0.1:1", Admin: strings.Repeat("p", 129)},
	}
	for _, cfg := range bad {
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", cfg)
		}
		if _, err := client.New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
	for _, addr := range []string{"127.0.0.1:9900", "[::1]:9900", "zdb.example:9900", "unix:/run/zdb.sock"} {
		if err := (client.Config{Addr: addr}).Validate(); err != nil {
			t.Errorf("Validate(%q): %v", addr, err)
		}
	}
	// nothing listens: New dials eagerly and says so
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if _, err := client.New(client.Config{Addr: addr}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("New on a closed port: %v", err)
	}
}

func TestPipelining(t *testing.T) {
	e := newEnv(t, server.Config{})
	c, _ := e.nsClient(t, client.Config{PoolSize: 2})
	const n = 5000
	keys := make([][]byte, n)
	vals := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%05d", i)
		vals[i] = bytes.Repeat(fmt.Appendf(nil, "%d,", i), i%100)
	}
	stored, err := c.SetMany(ctx, keys, vals)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if !bytes.Equal(stored[i], keys[i]) {
			t.Fatalf("stored[%d] = %q", i, stored[i])
		}
	}
	// again: nothing changes, the keys still come back
	stored, err = c.SetMany(ctx, keys, vals)
	if err != nil || len(stored) != n || !bytes.Equal(stored[n-1], keys[n-1]) {
		t.Fatalf("SetMany unchanged: %v, %q", err, stored[n-1])
	}

	// every other key missing, across 10 MGET batches
	ask := make([][]byte, 0, 2*n)
	for _, k := range keys {
		ask = append(ask, k, append([]byte("missing-"), k...))
	}
	before := commandsExecuted(t, c)
	got, err := c.GetMany(ctx, ask)
	if err != nil {
		t.Fatal(err)
	}
	after := commandsExecuted(t, c)
	if cmds := after - before - 1; cmds != (2*n+999)/1000 { // -1: the INFO itself
		t.Errorf("GetMany of %d keys ran %d commands, want %d MGETs", 2*n, cmds, (2*n+999)/1000)
	}
	if len(got) != 2*n {
		t.Fatalf("GetMany returned %d values", len(got))
	}
	for i := 0; i < n; i++ {
		if !bytes.Equal(got[2*i], vals[i]) || got[2*i] == nil {
			t.Fatalf("value %d = %q, want %q", i, got[2*i], vals[i])
		}
		if got[2*i+1] != nil {
			t.Fatalf("missing key %d = %q, want nil", i, got[2*i+1])
		}
	}

	// large values: the pipeline must not stall on full socket buffers
	big := make([][]byte, 64)
	bigKeys := make([][]byte, 64)
	for i := range big {
		bigKeys[i] = fmt.Appendf(nil, "big-%d", i)
		big[i] = bytes.Repeat([]byte{byte(i)}, 1<<20)
	}
	if _, err := c.SetMany(ctx, bigKeys, big); err != nil {
		t.Fatal(err)
	}
	got, err = c.GetMany(ctx, bigKeys)
	if err != nil {
		t.Fatal(err)
	}
	for i := range big {
		if !bytes.Equal(got[i], big[i]) {
			t.Fatalf("big value %d differs", i)
		}
	}

	// empty inputs, mismatched lengths, limits checked before sending
	if vs, err := c.GetMany(ctx, nil); err != nil || len(vs) != 0 {
		t.Fatalf("GetMany(nil) = %q, %v", vs, err)
	}
	if _, err := c.SetMany(ctx, keys[:2], vals[:1]); err == nil {
		t.Fatal("SetMany with 2 keys and 1 value succeeded")
	}
	tooLong := bytes.Repeat([]byte("k"), store.MaxKeySize+1)
	if _, err := c.SetMany(ctx, [][]byte{b("ok"), tooLong}, [][]byte{b("v"), b("v")}); !errors.Is(err, store.ErrKeyTooLong) {
		t.Fatalf("SetMany with a long key: %v", err)
	}
	if _, err := c.Get(ctx, b("ok")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetMany refused by the client wrote anyway: %v", err)
	}
	if _, err := c.GetMany(ctx, [][]byte{b("ok"), tooLong}); !errors.Is(err, store.ErrKeyTooLong) {
		t.Fatalf("GetMany with a long key: %v", err)
	}
}

// The server refuses a command of more than server.MaxArgs arguments at
// once; GetMany's MGETs (the name and MGETBatch keys) must stay within it.
func TestMGETBatchWithinServerLimit(t *testing.T) {
	if client.MGETBatch+1 > server.MaxArgs {
		t.Fatalf("MGET of MGETBatch (%d) keys is over the server's %d arguments", client.MGETBatch, server.MaxArgs)
	}
}

func TestSetManyPartialFailure(t *testing.T) {
	e := newEnv(t, server.Config{})
	c, ns := e.nsClient(t, client.Config{})
	mustSet(t, c, "k1", "old")
	if err := ns.Update(func(s *zdb.Settings) error { s.Worm = true; return nil }); err != nil {
		t.Fatal(err)
	}
	stored, err := c.SetMany(ctx, [][]byte{b("k0"), b("k1"), b("k2")}, [][]byte{b("a"), b("new"), b("c")})
	if !errors.Is(err, store.ErrReadOnly) || !strings.Contains(err.Error(), "[1]") {
		t.Fatalf("SetMany over a worm key: %v", err)
	}
	if len(stored) != 3 || string(stored[0]) != "k0" || stored[1] != nil || string(stored[2]) != "k2" {
		t.Fatalf("stored = %q", stored)
	}
	mustGet(t, c, "k1", "old")
	mustGet(t, c, "k2", "c")
}

// commandsExecuted reads the server's command counter through INFO.
func commandsExecuted(t *testing.T, c *client.Client) int {
	t.Helper()
	r, err := c.Do(ctx, b("INFO"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(r.Str), "\n") {
		if v, ok := strings.CutPrefix(line, "commands_executed: "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no commands_executed in INFO: %s", r.Str)
	return 0
}

func TestPassword(t *testing.T) {
	e := newEnv(t, server.Config{})
	name, ns := e.namespace()
	mustSet(t, kvOf(t, ns), "secret", "data")
	if err := ns.Update(func(s *zdb.Settings) error { s.Password = "pw"; s.Public = false; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"wrong", ""} {
		c, err := client.New(client.Config{Addr: e.addr, Namespace: name, Password: pw})
		if err == nil {
			c.Close()
			t.Fatalf("password %q: New succeeded", pw)
		}
		if !errors.Is(err, client.ErrAccessDenied) || !strings.Contains(err.Error(), "SELECT") || !strings.Contains(err.Error(), name) {
			t.Fatalf("password %q: %v, want ErrAccessDenied naming SELECT and the namespace", pw, err)
		}
		var se resp.ServerError
		if !errors.As(err, &se) {
			t.Fatalf("password %q: %v does not wrap the server's reply", pw, err)
		}
		t.Logf("password %q: %v", pw, err)
	}
	c := e.client(t, client.Config{Namespace: name, Password: "pw"})
	mustGet(t, c, "secret", "data")
	mustSet(t, c, "k", "v")
	mustGet(t, c, "k", "v")

	// public with a password: readable without it, not writable
	if err := ns.Update(func(s *zdb.Settings) error { s.Public = true; return nil }); err != nil {
		t.Fatal(err)
	}
	ro := e.client(t, client.Config{Namespace: name})
	mustGet(t, ro, "k", "v")
	if _, _, err := ro.Set(ctx, b("k"), b("w")); !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("Set without the password: %v, want ErrReadOnly", err)
	}
	if err := ro.Del(ctx, b("k")); !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("Del without the password: %v, want ErrReadOnly", err)
	}

	// a namespace that does not exist
	if _, err := client.New(client.Config{Addr: e.addr, Namespace: "nope"}); err == nil || !strings.Contains(err.Error(), "Namespace not found") {
		t.Fatalf("New on a missing namespace: %v", err)
	}
}

func kvOf(t *testing.T, ns *zdb.Namespace) store.KV { return ns }

func TestAdmin(t *testing.T) {
	e := newEnv(t, server.Config{Admin: "root"})
	if _, err := client.New(client.Config{Addr: e.addr, Admin: "bad"}); !errors.Is(err, client.ErrAccessDenied) || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("wrong admin password: %v", err)
	}
	user := e.client(t, client.Config{})
	if _, err := user.Do(ctx, b("NSNEW"), b("fresh")); !errors.Is(err, client.ErrAccessDenied) {
		t.Fatalf("NSNEW without admin: %v", err)
	}
	admin := e.client(t, client.Config{Admin: "root"})
	if _, err := admin.Do(ctx, b("NSNEW"), b("fresh")); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Do(ctx, b("NSSET"), b("fresh"), b("password"), b("pw")); err != nil {
		t.Fatal(err)
	}
	c := e.client(t, client.Config{Namespace: "fresh", Password: "pw"})
	mustSet(t, c, "k", "v")
	r, err := c.Do(ctx, b("NSINFO"), b("fresh"))
	if err != nil || !strings.Contains(string(r.Str), "entries: 1") {
		t.Fatalf("NSINFO = %s, %v", r, err)
	}
	// a client with Admin on a server without one still works
	e2 := newEnv(t, server.Config{})
	e2.client(t, client.Config{Admin: "whatever"})
}

func TestErrors(t *testing.T) {
	e := newEnv(t, server.Config{})

	t.Run("Locked", func(t *testing.T) {
		c, ns := e.nsClient(t, client.Config{})
		mustSet(t, c, "k", "v")
		ns.SetLocked(true)
		if _, _, err := c.Set(ctx, b("k"), b("w")); !errors.Is(err, store.ErrReadOnly) {
			t.Fatalf("Set locked: %v", err)
		}
		if err := c.Del(ctx, b("k")); !errors.Is(err, store.ErrReadOnly) {
			t.Fatalf("Del locked: %v", err)
		}
		mustGet(t, c, "k", "v")
	})
	t.Run("Frozen", func(t *testing.T) {
		c, ns := e.nsClient(t, client.Config{})
		mustSet(t, c, "k", "v")
		ns.SetFrozen(true)
		if _, err := c.Get(ctx, b("k")); !errors.Is(err, store.ErrFrozen) {
			t.Fatalf("Get frozen: %v", err)
		}
		if _, err := c.GetMany(ctx, [][]byte{b("k")}); !errors.Is(err, store.ErrFrozen) {
			t.Fatalf("GetMany frozen: %v", err)
		}
		if _, _, err := c.Set(ctx, b("k"), b("w")); !errors.Is(err, store.ErrFrozen) {
			t.Fatalf("Set frozen: %v", err)
		}
		if _, err := c.Exists(ctx, b("k")); !errors.Is(err, store.ErrFrozen) {
			t.Fatalf("Exists frozen: %v", err)
		}
		ns.SetFrozen(false)
		mustGet(t, c, "k", "v")
	})
	t.Run("Worm", func(t *testing.T) {
		c, ns := e.nsClient(t, client.Config{})
		mustSet(t, c, "k", "v")
		ns.Update(func(s *zdb.Settings) error { s.Worm = true; return nil })
		_, _, err := c.Set(ctx, b("k"), b("w"))
		if !errors.Is(err, store.ErrReadOnly) {
			t.Fatalf("overwrite in worm mode: %v", err)
		}
		var se resp.ServerError
		if !errors.As(err, &se) || !strings.Contains(string(se), "worm") {
			t.Fatalf("%v does not carry the server's message", err)
		}
		if !strings.Contains(err.Error(), `zdb set "k"`) {
			t.Fatalf("%v lacks the operation and key", err)
		}
		if err := c.Del(ctx, b("k")); !errors.Is(err, store.ErrReadOnly) {
			t.Fatalf("Del in worm mode: %v", err)
		}
		mustSet(t, c, "new", "ok")
	})
	t.Run("Full", func(t *testing.T) {
		c, ns := e.nsClient(t, client.Config{})
		ns.Update(func(s *zdb.Settings) error { s.MaxSize = 10; return nil })
		mustSet(t, c, "a", "12345")
		if _, _, err := c.Set(ctx, b("b"), b("123456")); !errors.Is(err, store.ErrNamespaceFull) {
			t.Fatalf("Set over maxsize: %v", err)
		}
	})
	t.Run("Sequential", func(t *testing.T) {
		c, ns := e.nsClient(t, client.Config{})
		if err := ns.Update(func(s *zdb.Settings) error { s.Mode = zdb.ModeSeq; return nil }); err != nil {
			t.Fatal(err)
		}
		id, changed, err := c.Set(ctx, nil, b("first"))
		if err != nil || !changed || len(id) != 8 {
			t.Fatalf("append = %x, %v, %v", id, changed, err)
		}
		id2, _, err := c.Set(ctx, nil, b("second"))
		if err != nil || binary.LittleEndian.Uint64(id2) != binary.LittleEndian.Uint64(id)+1 {
			t.Fatalf("second append = %x, %v", id2, err)
		}
		if got, err := c.Get(ctx, id); err != nil || string(got) != "first" {
			t.Fatalf("Get(%x) = %q, %v", id, got, err)
		}
		if _, changed, err := c.Set(ctx, id, b("updated")); err != nil || !changed {
			t.Fatalf("update: %v, %v", changed, err)
		}
		unknown := binary.LittleEndian.AppendUint64(nil, 1000)
		if _, _, err := c.Set(ctx, unknown, b("x")); !errors.Is(err, store.ErrInvalidKey) {
			t.Fatalf("Set of an unknown id: %v, want ErrInvalidKey", err)
		}
		if err := c.Del(ctx, unknown); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Del of an unknown id: %v", err)
		}
	})
	t.Run("EmptyKey", func(t *testing.T) {
		c, _ := e.nsClient(t, client.Config{})
		if _, _, err := c.Set(ctx, nil, b("v")); !errors.Is(err, store.ErrInvalidKey) {
			t.Fatalf("Set of an empty key in user mode: %v", err)
		}
		// the server refuses empty keys ("Invalid argument"), as 0-db does
		if _, err := c.Get(ctx, nil); !errors.Is(err, store.ErrInvalidKey) {
			t.Fatalf("Get of an empty key: %v", err)
		}
		if _, err := c.Exists(ctx, nil); !errors.Is(err, store.ErrInvalidKey) {
			t.Fatalf("Exists of an empty key: %v", err)
		}
		if err := c.Del(ctx, nil); !errors.Is(err, store.ErrInvalidKey) {
			t.Fatalf("Del of an empty key: %v", err)
		}
		// but MGET answers nil for it
		if vs, err := c.GetMany(ctx, [][]byte{nil}); err != nil || vs[0] != nil {
			t.Fatalf("GetMany of an empty key = %q, %v", vs, err)
		}
	})
	t.Run("ServerError", func(t *testing.T) {
		c, _ := e.nsClient(t, client.Config{})
		r, err := c.Do(ctx, b("NOSUCHCMD"))
		var se resp.ServerError
		if !errors.As(err, &se) || se != "Command not supported" || r.Kind != resp.KindError {
			t.Fatalf("unknown command: %v (%v)", err, r)
		}
		if _, err := c.Do(ctx, b("SCAN")); !errors.As(err, &se) || se != "No more data" {
			t.Fatalf("SCAN of an empty namespace: %v", err)
		}
		mustSet(t, c, "k", "v")
		r, err = c.Do(ctx, b("SCAN"))
		if err != nil || r.Kind != resp.KindArray || len(r.Elems) != 2 || string(r.Elems[1].Elems[0].Elems[0].Str) != "k" {
			t.Fatalf("SCAN = %v, %v", r, err)
		}
		if _, err := c.Do(ctx, b("select"), b("default")); err == nil {
			t.Fatal("Do(SELECT) accepted")
		}
		if _, err := c.Do(ctx); err == nil {
			t.Fatal("Do() accepted")
		}
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("LimitsClientSide", func(t *testing.T) {
		e2 := newEnv(t, server.Config{})
		c := e2.client(t, client.Config{})
		e2.stop() // nothing can reach the server now
		long := bytes.Repeat([]byte("k"), store.MaxKeySize+1)
		if _, _, err := c.Set(ctx, long, b("v")); !errors.Is(err, store.ErrKeyTooLong) {
			t.Fatalf("Set long key: %v", err)
		}
		if _, _, err := c.Set(ctx, b("k"), make([]byte, store.MaxValueSize+1)); !errors.Is(err, store.ErrValueTooLarge) {
			t.Fatalf("Set large value: %v", err)
		}
		if _, err := c.Get(ctx, long); !errors.Is(err, store.ErrKeyTooLong) {
			t.Fatalf("Get long key: %v", err)
		}
		if _, err := c.Exists(ctx, long); !errors.Is(err, store.ErrKeyTooLong) {
			t.Fatalf("Exists long key: %v", err)
		}
		if err := c.Del(ctx, long); !errors.Is(err, store.ErrKeyTooLong) {
			t.Fatalf("Del long key: %v", err)
		}
		// and a real call does fail
		if _, err := c.Get(ctx, b("k")); err == nil {
			t.Fatal("Get with the server down succeeded")
		}
	})
}

// waitArgs blocks a connection server-side: nobody runs NSJUMP.
var waitArgs = [][]byte{b("WAIT"), b("NSJUMP"), b("20000")}

func TestBrokenConn(t *testing.T) {
	e := newEnv(t, server.Config{})
	c, _ := e.nsClient(t, client.Config{PoolSize: 1})
	mustSet(t, c, "k", "v")

	t.Run("MidRequest", func(t *testing.T) {
		accepts := e.ln.accepts.Load()
		errc := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := c.Do(ctx, waitArgs...)
			errc <- err
		}()
		time.Sleep(200 * time.Millisecond) // the WAIT is on the server
		e.ln.dropAll()
		err := <-errc
		if err == nil || errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
			t.Fatalf("WAIT on a dropped connection: %v after %v", err, time.Since(start))
		}
		t.Logf("dropped mid-request: %v", err)
		mustGet(t, c, "k", "v")
		if got := e.ln.accepts.Load() - accepts; got != 1 {
			t.Fatalf("%d connections accepted, want 1 (the broken one was reused?)", got)
		}
	})
	t.Run("Idle", func(t *testing.T) {
		accepts := e.ln.accepts.Load()
		e.ln.dropAll() // the pooled connection dies while idle
		time.Sleep(20 * time.Millisecond)
		mustGet(t, c, "k", "v") // probed, discarded, redialled: no failed call
		if got := e.ln.accepts.Load() - accepts; got != 1 {
			t.Fatalf("%d connections accepted, want 1", got)
		}
	})
	t.Run("Quit", func(t *testing.T) {
		accepts := e.ln.accepts.Load()
		if r, err := c.Do(ctx, b("QUIT")); err != nil || string(r.Str) != "OK" {
			t.Fatalf("QUIT = %v, %v", r, err)
		}
		mustGet(t, c, "k", "v")
		if got := e.ln.accepts.Load() - accepts; got != 1 {
			t.Fatalf("%d connections accepted, want 1", got)
		}
	})
	t.Run("Restart", func(t *testing.T) {
		c2, _ := e.nsClient(t, client.Config{PoolSize: 4})
		mustSet(t, c2, "k", "v")
		var wg sync.WaitGroup
		for range 4 { // fill the pool
			wg.Add(1)
			go func() { defer wg.Done(); c2.Get(ctx, b("k")) }()
		}
		wg.Wait()
		e.stop()
		if _, err := c2.Get(ctx, b("k")); err == nil {
			t.Fatal("Get with the server down succeeded")
		} else {
			t.Logf("server down: %v", err)
		}
		e.start() // same address
		for range 8 {
			mustGet(t, c2, "k", "v")
		}
		mustSet(t, c2, "k2", "v2")
		mustGet(t, c, "k", "v")
	})
}

func TestContext(t *testing.T) {
	e := newEnv(t, server.Config{})
	c, _ := e.nsClient(t, client.Config{PoolSize: 1})
	mustSet(t, c, "k", "v")

	t.Run("AlreadyDone", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := c.Get(cctx, b("k")); err != context.Canceled {
			t.Fatalf("Get: %v", err)
		}
		if _, _, err := c.Set(cctx, b("k"), b("x")); err != context.Canceled {
			t.Fatalf("Set: %v", err)
		}
		if _, err := c.SetMany(cctx, [][]byte{b("k")}, [][]byte{b("x")}); err != context.Canceled {
			t.Fatalf("SetMany: %v", err)
		}
		if _, err := c.GetMany(cctx, [][]byte{b("k")}); err != context.Canceled {
			t.Fatalf("GetMany: %v", err)
		}
		mustGet(t, c, "k", "v")
	})
	t.Run("CancelInFlight", func(t *testing.T) {
		accepts := e.ln.accepts.Load()
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.Do(cctx, waitArgs...)
		if err != context.Canceled || time.Since(start) > 5*time.Second {
			t.Fatalf("Do cancelled: %v after %v", err, time.Since(start))
		}
		// the connection with a reply pending was not reused
		mustGet(t, c, "k", "v")
		if got := e.ln.accepts.Load() - accepts; got != 1 {
			t.Fatalf("%d connections accepted, want 1", got)
		}
	})
	t.Run("DeadlineInFlight", func(t *testing.T) {
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Do(dctx, waitArgs...)
		if err != context.DeadlineExceeded || time.Since(start) > 5*time.Second {
			t.Fatalf("Do past its deadline: %v after %v", err, time.Since(start))
		}
		mustGet(t, c, "k", "v")
	})
	t.Run("PoolWait", func(t *testing.T) {
		busy := make(chan error, 1)
		bctx, cancel := context.WithCancel(ctx)
		go func() { _, err := c.Do(bctx, waitArgs...); busy <- err }()
		time.Sleep(100 * time.Millisecond) // the only connection is taken
		wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer wcancel()
		if _, err := c.Get(wctx, b("k")); err != context.DeadlineExceeded {
			t.Fatalf("Get waiting for the pool: %v", err)
		}
		cancel()
		if err := <-busy; err != context.Canceled {
			t.Fatalf("busy call: %v", err)
		}
		mustGet(t, c, "k", "v")
	})
	t.Run("ReadTimeout", func(t *testing.T) {
		name, _ := e.namespace()
		tc := e.client(t, client.Config{Namespace: name, ReadTimeout: 500 * time.Millisecond})
		_, err := tc.Do(ctx, waitArgs...)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Do past ReadTimeout: %v, want a timeout", err)
		}
		if err := tc.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCancelPipeline(t *testing.T) {
	e := newEnv(t, server.Config{})
	c, _ := e.nsClient(t, client.Config{PoolSize: 1})
	keys := make([][]byte, 32)
	vals := make([][]byte, 32)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "k%d", i)
		vals[i] = bytes.Repeat([]byte{byte(i)}, 1<<20)
	}
	cancelled := 0
	for _, d := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond} {
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(d, cancel)
		_, err := c.SetMany(cctx, keys, vals)
		if err == context.Canceled {
			cancelled++
		} else if err != nil {
			t.Fatalf("SetMany cancelled after %v: %v", d, err)
		}
		cancel()
		if _, err = c.GetMany(cctx, keys); err != context.Canceled {
			t.Fatalf("GetMany with a cancelled context: %v", err)
		}
		// the connection is usable (or replaced) afterwards
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if cancelled == 0 {
		t.Log("no SetMany was slow enough to be cancelled")
	}
	if _, err := c.SetMany(ctx, keys, vals); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetMany(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if !bytes.Equal(got[i], vals[i]) {
			t.Fatalf("value %d differs", i)
		}
	}
}

func TestTooManyClients(t *testing.T) {
	e := newEnv(t, server.Config{MaxClients: 1})
	e.client(t, client.Config{})
	_, err := client.New(client.Config{Addr: e.addr})
	if err == nil || !strings.Contains(err.Error(), "refused the connection: Too many clients connected") {
		t.Fatalf("New past MaxClients: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	e := newEnv(t, server.Config{})
	const pool = 4
	c, _ := e.nsClient(t, client.Config{PoolSize: pool})
	accepts := e.ln.accepts.Load()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				k := fmt.Appendf(nil, "g%d-%d", g, i)
				v := fmt.Appendf(nil, "value-%d-%d", g, i)
				var err error
				switch i % 4 {
				case 0:
					_, _, err = c.Set(ctx, k, v)
				case 1:
					_, err = c.SetMany(ctx, [][]byte{k, append(k, 'x')}, [][]byte{v, v})
				case 2:
					_, _, err = c.Set(ctx, k, v)
					if err == nil {
						err = c.Del(ctx, k)
					}
					if err == nil {
						var ok bool
						if ok, err = c.Exists(ctx, k); ok {
							err = fmt.Errorf("%s exists after Del", k)
						}
					}
					_, _, err2 := c.Set(ctx, k, v)
					err = errors.Join(err, err2)
				case 3:
					_, _, err = c.Set(ctx, k, v)
				}
				if err != nil {
					errs <- err
					return
				}
				vs, err := c.GetMany(ctx, [][]byte{k, b("nope")})
				if err != nil || !bytes.Equal(vs[0], v) || vs[1] != nil {
					errs <- fmt.Errorf("GetMany %s = %q, %v", k, vs, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := e.ln.accepts.Load() - accepts; got > pool {
		t.Fatalf("%d connections opened, pool size is %d", got, pool)
	}
}

func TestClose(t *testing.T) {
	e := newEnv(t, server.Config{})
	c, _ := e.nsClient(t, client.Config{PoolSize: 2})
	mustSet(t, c, "k", "v")
	inflight := make(chan error, 1)
	go func() { _, err := c.Do(ctx, waitArgs...); inflight <- err }()
	time.Sleep(100 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-inflight:
		if err != client.ErrClosed {
			t.Fatalf("call in flight at Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not interrupt a call in flight")
	}
	if _, err := c.Get(ctx, b("k")); err != client.ErrClosed {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, _, err := c.Set(ctx, b("k"), b("v")); err != client.ErrClosed {
		t.Fatalf("Set after Close: %v", err)
	}
	if _, err := c.Do(ctx, b("PING")); err != client.ErrClosed {
		t.Fatalf("Do after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func mustSet(t testing.TB, kv store.KV, k, v string) {
	t.Helper()
	if _, _, err := kv.Set(ctx, b(k), b(v)); err != nil {
		t.Fatalf("Set %q: %v", k, err)
	}
}

func mustGet(t testing.TB, kv store.KV, k, want string) {
	t.Helper()
	got, err := kv.Get(ctx, b(k))
	if err != nil || string(got) != want {
		t.Fatalf("Get %q = %q, %v; want %q", k, got, err, want)
	}
}

// --- benchmarks ---

const benchKeys = 10000

func benchValue(i int) []byte {
	v := make([]byte, 4096)
	binary.LittleEndian.PutUint64(v, uint64(i))
	return v
}

func BenchmarkClientSet(bm *testing.B) {
	e := newEnv(bm, server.Config{})
	bm.Run("serial", func(bm *testing.B) {
		c, _ := e.nsClient(bm, client.Config{})
		bm.SetBytes(4096)
		for i := 0; bm.Loop(); i++ {
			if _, _, err := c.Set(ctx, fmt.Appendf(nil, "k%d", i%benchKeys), benchValue(i)); err != nil {
				bm.Fatal(err)
			}
		}
	})
	bm.Run("parallel", func(bm *testing.B) {
		c, _ := e.nsClient(bm, client.Config{})
		bm.SetBytes(4096)
		var seq atomic.Int64
		bm.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(seq.Add(1))
				if _, _, err := c.Set(ctx, fmt.Appendf(nil, "k%d", i%benchKeys), benchValue(i)); err != nil {
					bm.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkClientGet(bm *testing.B) {
	e := newEnv(bm, server.Config{})
	c, _ := e.nsClient(bm, client.Config{})
	const n = 1000
	keys := make([][]byte, n)
	vals := make([][]byte, n)
	for i := range keys {
		keys[i], vals[i] = fmt.Appendf(nil, "k%d", i), benchValue(i)
	}
	if _, err := c.SetMany(ctx, keys, vals); err != nil {
		bm.Fatal(err)
	}
	bm.Run("serial", func(bm *testing.B) {
		bm.SetBytes(4096)
		for i := 0; bm.Loop(); i++ {
			if _, err := c.Get(ctx, keys[i%n]); err != nil {
				bm.Fatal(err)
			}
		}
	})
	bm.Run("parallel", func(bm *testing.B) {
		bm.SetBytes(4096)
		var seq atomic.Int64
		bm.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Get(ctx, keys[int(seq.Add(1))%n]); err != nil {
					bm.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkClientSetMany measures pipelined writes: one op is one key of a
// 1000-key SetMany.
func BenchmarkClientSetMany(bm *testing.B) {
	e := newEnv(bm, server.Config{})
	c, _ := e.nsClient(bm, client.Config{})
	const batch = 1000
	keys := make([][]byte, batch)
	vals := make([][]byte, batch)
	bm.SetBytes(4096)
	bm.ResetTimer()
	for done := 0; done < bm.N; done += batch {
		n := min(batch, bm.N-done)
		for i := range n {
			keys[i] = fmt.Appendf(keys[i][:0], "k%d", (done+i)%benchKeys)
			vals[i] = benchValue(done + i)
		}
		if _, err := c.SetMany(ctx, keys[:n], vals[:n]); err != nil {
			bm.Fatal(err)
		}
	}
}
