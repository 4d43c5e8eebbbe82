package server

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fungistor/fungistor/store/resp"
	"github.com/fungistor/fungistor/store/zdb"
)

type testServer struct {
	db   *zdb.DB
	srv  *Server
	addr string
}

func start(t *testing.T, dbcfg zdb.Config, cfg Config) *testServer {
	t.Helper()
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if dbcfg.DataDir == "" {
		dbcfg.DataDir, dbcfg.IndexDir = filepath.Join(dir, "data"), filepath.Join(dir, "index")
	}
	dbcfg.Logger = quiet
	cfg.Logger = quiet
	db, err := zdb.Open(dbcfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		db.Close()
	})
	return &testServer{db: db, srv: srv, addr: l.Addr().String()}
}

// client is a raw RESP connection that checks exact replies.
type client struct {
	t  testing.TB
	c  net.Conn
	w  *resp.Writer
	rr *resp.ReplyReader
}

func (ts *testServer) dial(t testing.TB) *client {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, c: c, w: resp.NewWriter(bufio.NewWriter(c)), rr: resp.NewReplyReader(bufio.NewReader(c), resp.Limits{})}
}

func (c *client) do(args ...string) resp.Reply {
	c.t.Helper()
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	c.w.Command(bs...)
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
	r, err := c.rr.ReadReply()
	if err != nil {
		c.t.Fatalf("%v: %v", args, err)
	}
	return r
}

// expect runs a command and compares the reply's String form.
func (c *client) expect(want string, args ...string) resp.Reply {
	c.t.Helper()
	r := c.do(args...)
	if got := r.String(); got != want {
		c.t.Fatalf("%q = %q, want %q", args, got, want)
	}
	return r
}

func TestCommands(t *testing.T) {
	ts := start(t, zdb.Config{}, Config{})
	c := ts.dial(t)
	c.expect("PONG", "PING")
	c.expect("PONG", "ping", "extra")
	c.expect("k", "SET", "k", "v1")
	c.expect("(nil)", "SET", "k", "v1")
	c.expect("v1", "GET", "k")
	c.expect("(nil)", "GET", "missing")
	c.expect("(integer) 1", "EXISTS", "k")
	c.expect("(integer) 0", "EXISTS", "missing")
	c.expect("(integer) 2", "LENGTH", "k")
	c.expect("(nil)", "LENGTH", "missing")
	c.expect("(integer) 1", "CHECK", "k")
	c.expect("(integer) 1", "DBSIZE")
	c.expect("[v1 (nil)]", "MGET", "k", "missing")
	c.expect("k", "SET", "k", "v2")
	if r := c.do("KEYTIME", "k"); r.Kind != resp.KindInt || r.Int < time.Now().Add(-time.Minute).Unix() {
		t.Fatalf("KEYTIME = %v", r)
	}
	// HISTORY walks back: [cursor, timestamp as bulk, value]
	h := c.do("HISTORY", "k")
	if len(h.Elems) != 3 || string(h.Elems[2].Str) != "v2" || h.Elems[1].Kind != resp.KindBulk {
		t.Fatalf("HISTORY = %v", h)
	}
	h = c.do("HISTORY", "k", string(h.Elems[0].Str))
	if string(h.Elems[2].Str) != "v1" || h.Elems[0].Kind != resp.KindNil {
		t.Fatalf("HISTORY older = %v", h)
	}
	c.expect("(error) No more history", "HISTORY", "k", "\x00\x00\x00\x00\x00\x00\x00\x00")
	c.expect("(error) Key not found", "HISTORY", "missing")
	c.expect("OK", "DEL", "k")
	c.expect("(error) Key not found", "DEL", "k")
	c.expect("(nil)", "GET", "k")
	c.expect("(error) Command not supported", "FOO")
	c.expect("(error) Unexpected arguments", "GET")
	c.expect("(error) Missing arguments", "MGET")
	c.expect("(error) Unexpected arguments", "GET", "a", "b")
	c.expect("(error) Key too large", "SET", strings.Repeat("x", 256), "v")
	c.expect("(error) Invalid key", "GET", strings.Repeat("x", 256))
	c.expect("(error) Invalid argument, key needed", "SET", "", "v")
	c.expect("(error) Authentication disabled", "AUTH", "x")
	if r := c.do("TIME"); len(r.Elems) != 2 || r.Elems[0].Kind != resp.KindBulk {
		t.Fatalf("TIME = %v", r)
	}
	if r := c.do("INFO"); !strings.Contains(string(r.Str), "sequential_key_size: 8") {
		t.Fatalf("INFO = %v", r)
	}
}

func TestScanCommands(t *testing.T) {
	ts := start(t, zdb.Config{}, Config{})
	c := ts.dial(t)
	c.expect("(error) No more data", "SCAN")
	for i := 0; i < 300; i++ {
		c.do("SET", fmt.Sprintf("key%03d", i), "v")
	}
	seen := map[string]bool{}
	r := c.do("SCAN")
	for r.Kind == resp.KindArray {
		for _, e := range r.Elems[1].Elems {
			if len(e.Elems) != 3 || e.Elems[1].Int != 1 {
				t.Fatalf("scan item %v", e)
			}
			seen[string(e.Elems[0].Str)] = true
		}
		r = c.do("SCAN", string(r.Elems[0].Str))
	}
	if r.String() != "(error) No more data" || len(seen) != 300 {
		t.Fatalf("scan saw %d keys, ended with %v", len(seen), r)
	}
	cur := c.do("KEYCUR", "key299")
	c.expect("(error) No more data", "SCAN", string(cur.Str))
	r = c.do("RSCAN", string(cur.Str))
	if string(r.Elems[1].Elems[0].Elems[0].Str) != "key298" {
		t.Fatalf("RSCAN = %v", r)
	}
	c.expect("(error) Invalid key format", "SCAN", "bad")
	c.expect("(error) Key not found", "KEYCUR", "nope")
}

func TestNamespaces(t *testing.T) {
	ts := start(t, zdb.Config{}, Config{Admin: "secret"})
	admin, user := ts.dial(t), ts.dial(t)
	user.expect("(error) Permission denied", "NSNEW", "x")
	user.expect("(error) Access denied", "AUTH", "wrong")
	admin.expect("OK", "AUTH", "secret")
	admin.expect("OK", "NSNEW", "pub")
	admin.expect("(error) This namespace is not available", "NSNEW", "pub")
	admin.expect("(error) This name is not allowed", "NSNEW", "a/b")
	admin.expect("[default pub]", "NSLIST")
	admin.expect("OK", "NSSET", "pub", "password", "pw")
	// public + password: read-only without it
	user.expect("OK", "SELECT", "pub")
	user.expect("(error) Namespace is in read-only mode", "SET", "a", "b")
	user.expect("(nil)", "GET", "a")
	user.expect("(error) Access denied", "SELECT", "pub", "bad")
	user.expect("OK", "SELECT", "pub", "pw")
	user.expect("a", "SET", "a", "b")
	// private: nothing without the password
	admin.expect("OK", "NSSET", "pub", "public", "0")
	other := ts.dial(t)
	other.expect("(error) Namespace protected and private", "SELECT", "pub")
	// SELECT ... SECURE sha1(challenge:password)
	nonce := other.do("AUTH", "SECURE", "CHALLENGE")
	sum := sha1.Sum([]byte(string(nonce.Str) + ":pw"))
	other.expect("OK", "SELECT", "pub", "SECURE", hex.EncodeToString(sum[:]))
	other.expect("b", "GET", "a")
	// AUTH SECURE for admin; the challenge is single use
	nonce = other.do("AUTH", "SECURE", "CHALLENGE")
	sum = sha1.Sum([]byte(string(nonce.Str) + ":secret"))
	other.expect("OK", "AUTH", "SECURE", hex.EncodeToString(sum[:]))
	other.expect("(error) No CHALLENGE requested, secure authentication not available", "AUTH", "SECURE", hex.EncodeToString(sum[:]))

	if r := admin.do("NSINFO", "pub"); !strings.Contains(string(r.Str), "entries: 1\npublic: no\nworm: no\nlocked: no\npassword: yes\n") {
		t.Fatalf("NSINFO = %s", r.Str)
	}
	admin.expect("OK", "NSSET", "pub", "lock", "1")
	user.expect("(error) Namespace is temporarily locked (read-only)", "SET", "c", "d")
	user.expect("b", "GET", "a")
	admin.expect("OK", "NSSET", "pub", "freeze", "1")
	user.expect("(error) Namespace is temporarily frozen (read-write disabled)", "GET", "a")
	admin.expect("OK", "NSSET", "pub", "freeze", "0")
	admin.expect("OK", "NSSET", "pub", "worm", "1")
	user.expect("(error) Namespace is protected by worm mode", "SET", "a", "new")
	user.expect("(error) Cannot delete a key when namespace is in worm mode", "DEL", "a")
	admin.expect("OK", "NSSET", "pub", "worm", "0")
	admin.expect("OK", "NSSET", "pub", "maxsize", "3")
	user.expect("(error) No space left on this namespace", "SET", "big", "1234")
	admin.expect("(error) Invalid property", "NSSET", "pub", "color", "blue")
	admin.expect("(error) Cannot update default namespace", "NSSET", "default", "worm", "1")
	admin.expect("(error) Cannot change mode of used namespace", "NSSET", "pub", "mode", "seq")
	// FLUSH needs a private namespace with a password
	user.expect("OK", "FLUSH")
	user.expect("(nil)", "GET", "a")
	admin.expect("OK", "NSNEW", "gone")
	admin.expect("OK", "SELECT", "gone")
	admin.expect("(error) Flushing public namespace denied", "FLUSH")
	admin.expect("(error) Cannot remove namespace you're currently using.", "NSDEL", "gone")
	user.expect("(error) Permission denied", "NSDEL", "gone")
	other.expect("OK", "SELECT", "gone")
	admin.expect("OK", "SELECT", "default")
	admin.expect("OK", "NSDEL", "gone")
	admin.expect("(error) This namespace doesn't exists", "NSDEL", "gone")
	other.expect("(error) Your active namespace is not available anymore (probably removed).", "GET", "x")
	admin.expect("(error) Cannot remove default namespace", "NSDEL", "default")
	admin.expect("OK", "RELOAD", "pub")
	admin.expect("OK", "NSJUMP")
}

func TestSequentialMode(t *testing.T) {
	ts := start(t, zdb.Config{Mode: zdb.ModeSeq}, Config{FixedMode: true})
	c := ts.dial(t)
	id := func(n uint64) string {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], n)
		return string(b[:])
	}
	for i := uint64(0); i < 5; i++ {
		if r := c.do("SET", "", fmt.Sprint("v", i)); string(r.Str) != id(i) {
			t.Fatalf("SET assigned %x, want %d", r.Str, i)
		}
	}
	c.expect("v3", "GET", id(3))
	c.expect(id(3), "SET", id(3), "updated")
	c.expect("updated", "GET", id(3))
	c.expect("OK", "DEL", id(4))
	c.expect("(error) Invalid key, only update authorized", "SET", id(4), "x")
	c.expect("(error) Invalid key, only update authorized", "SET", id(99), "x")
	c.expect("(nil)", "GET", "short")
	c.expect("(error) This server instance is configured to use a single runtime mode", "NSSET", "default", "mode", "user")
	if r := c.do("NSINFO", "default"); !strings.Contains(string(r.Str), "next_internal_id: 0x05000000\nmode: sequential") {
		t.Fatalf("NSINFO = %s", r.Str)
	}
}

func TestWait(t *testing.T) {
	ts := start(t, zdb.Config{}, Config{})
	waiter, writer := ts.dial(t), ts.dial(t)
	got := make(chan string, 1)
	go func() { got <- waiter.do("WAIT", "SET", "5000").String() }()
	time.Sleep(100 * time.Millisecond)
	writer.do("GET", "x") // not what it waits for
	writer.do("SET", "x", "y")
	select {
	case g := <-got:
		if g != "SET" {
			t.Fatalf("WAIT = %q", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WAIT did not wake")
	}
	waiter.expect("(error) Timeout", "WAIT", "*", "100")
	waiter.expect("(error) Unknown command to watch", "WAIT", "NOPE")
	waiter.expect("(error) Invalid timeout", "WAIT", "SET", "5")
}

func TestProtect(t *testing.T) {
	ts := start(t, zdb.Config{}, Config{Admin: "adm", Protect: true})
	c := ts.dial(t)
	c.expect("(error) Namespace is in read-only mode", "SET", "a", "b")
	c.expect("OK", "SELECT", "default", "adm")
	c.expect("a", "SET", "a", "b")
	if _, err := New(ts.db, Config{Protect: true}); err == nil {
		t.Fatal("protect without admin accepted")
	}
}

// rawExchange sends raw bytes and returns everything the server answers
// until it closes the connection or goes quiet.
func rawExchange(t *testing.T, addr string, in string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(in))
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	out, _ := io.ReadAll(c)
	return string(out)
}

func TestBadInput(t *testing.T) {
	ts := start(t, zdb.Config{}, Config{PartialTimeout: 200 * time.Millisecond})
	cases := []struct{ name, in, want string }{
		{"inline", "PING\r\nSET a b\r\nGET a\r\n", "+PONG\r\n$1\r\na\r\n$1\r\nb\r\n"},
		{"bad bulk length", "*1\r\n$x\r\n", "-Protocol error: invalid length \"x\"\r\n"},
		{"negative bulk", "*1\r\n$-5\r\n", "-Protocol error: invalid bulk length\r\n"},
		{"huge bulk", "*1\r\n$99999999999\r\n", "-Protocol error: invalid bulk length\r\n"},
		{"bad multibulk", "*-7\r\n", "-Protocol error: invalid multibulk length\r\n"},
		{"empty array", "*0\r\n", "-Protocol error: invalid multibulk length\r\n"}, // at once, as 0-db
		{"null array", "*-1\r\n", "-Protocol error: invalid multibulk length\r\n"},
		{"too many args", "*1025\r\n", "-Protocol error: too many arguments (1025, at most 1024)\r\n"},
		{"too many inline args", strings.Repeat("a ", 1025) + "\r\n", "-Protocol error: too many arguments (at most 1024)\r\n"},
		{"not a bulk", "*1\r\n:5\r\n", "-Protocol error: expected '$', got ':'\r\n"},
		{"missing crlf", "*1\r\n$4\r\nPINGxx", "-Protocol error: expected CRLF after bulk string\r\n"},
		{"garbage", "\x00\xff\xfe garbage\r\nPING\r\n", "-Command not supported\r\n+PONG\r\n"},
		{"half a command", "*2\r\n$3\r\nGET\r\n$5\r\nab", "-Timeout: incomplete command\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawExchange(t, ts.addr, tc.in); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	// an oversized value is skipped and the connection goes on
	big := strings.Repeat("x", 8<<20+2048)
	got := rawExchange(t, ts.addr, fmt.Sprintf("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n", len(big), big))
	if got != "-Payload too big\r\n+PONG\r\n" {
		t.Fatalf("oversized value: %q", got)
	}
	// the server is unharmed
	c := ts.dial(t)
	c.expect("PONG", "PING")
	c.expect("b", "GET", "a")
}

// Malformed input that can be refused from its header alone is answered at
// once, never after the partial-command timeout, and other clients are
// served meanwhile (0-db refuses these at once too: zdbd/redis.c,
// redis_handle_resp_empty and redis_handle_resp_header).
func TestBadInputAtOnce(t *testing.T) {
	ts := start(t, zdb.Config{}, Config{PartialTimeout: time.Hour})
	// a client stalled in the middle of a command holds nothing up
	stalled := ts.dial(t)
	stalled.c.Write([]byte("*2\r\n$3\r\nGET\r\n$5\r\nab"))
	other := ts.dial(t)
	other.expect("OK", "NSNEW", "other")

	closes := []struct{ name, in, want string }{
		{"empty array", "*0\r\n", "-Protocol error: invalid multibulk length\r\n"},
		{"null array", "*-1\r\n", "-Protocol error: invalid multibulk length\r\n"},
		{"negative array", "*-5\r\n", "-Protocol error: invalid multibulk length\r\n"},
		{"too many args", "*1025\r\n", "-Protocol error: too many arguments (1025, at most 1024)\r\n"},
		{"too many args after a command", "*1\r\n$4\r\nPING\r\n*1025\r\n$3\r\nGET\r\n",
			"+PONG\r\n-Protocol error: too many arguments (1025, at most 1024)\r\n"},
		{"null bulk", "*2\r\n$3\r\nGET\r\n$-1\r\n", "-Protocol error: invalid bulk length\r\n"},
		{"negative bulk", "*2\r\n$-5\r\n", "-Protocol error: invalid bulk length\r\n"},
		{"bulk over 1 GiB", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1073741825\r\n", "-Protocol error: invalid bulk length\r\n"},
	}
	for _, tc := range closes {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dial(t)
			c.c.SetDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			c.c.Write([]byte(tc.in)) // and keep the connection open
			out, err := io.ReadAll(c.c)
			if err != nil {
				t.Fatalf("no reply and close within %v: %v (got %q)", time.Since(start), err, out)
			}
			if string(out) != tc.want {
				t.Fatalf("got %q, want %q", out, tc.want)
			}
			other.expect("PONG", "PING")
		})
	}

	// a value over 8 MiB is refused from its length, before it is sent; its
	// bytes are then skipped and the connection goes on (0-db closes it)
	for _, size := range []int{8<<20 + 1, 64 << 20} {
		t.Run(fmt.Sprintf("value of %d bytes", size), func(t *testing.T) {
			c := ts.dial(t)
			c.c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c.c, "*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n", size)
			if r, err := c.rr.ReadReply(); err != nil || r.String() != "PONG" {
				t.Fatalf("first reply %v, %v", r, err)
			}
			if r, err := c.rr.ReadReply(); err != nil || r.Kind != resp.KindError || string(r.Str) != "Payload too big" {
				t.Fatalf("before the value: %v, %v; want -Payload too big", r, err)
			}
			other.expect("PONG", "PING")
			c.c.SetDeadline(time.Now().Add(time.Minute))
			chunk := []byte(strings.Repeat("x", 1<<20))
			for left := size; left > 0; left -= len(chunk) {
				if _, err := c.c.Write(chunk[:min(left, len(chunk))]); err != nil {
					t.Fatal(err)
				}
			}
			c.c.Write([]byte("\r\n"))
			key := fmt.Sprint("after", size)
			c.expect(key, "SET", key, "v")
			c.expect("v", "GET", key)
		})
	}
	// the largest legitimate command: MGET of 1023 keys
	args := make([]string, MaxArgs)
	args[0] = "MGET"
	for i := range args[1:] {
		args[i+1] = fmt.Sprint("key", i)
	}
	if r := other.do(args...); r.Kind != resp.KindArray || len(r.Elems) != MaxArgs-1 {
		t.Fatalf("MGET of %d keys: %v", MaxArgs-1, r.String())
	}
	stalled.c.Write([]byte("cde\r\n"))
	if r, err := stalled.rr.ReadReply(); err != nil || r.Kind != resp.KindNil {
		t.Fatalf("stalled client: %v, %v", r, err)
	}
}

// Hundreds of clients pipelining at once: every acknowledged write is
// readable.
func TestConcurrentPipelines(t *testing.T) {
	ts := start(t, zdb.Config{}, Config{})
	const clients, n = 300, 40
	var wg sync.WaitGroup
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			w := resp.NewWriter(bufio.NewWriter(c))
			rr := resp.NewReplyReader(bufio.NewReader(c), resp.Limits{})
			for i := 0; i < n; i++ {
				k := fmt.Sprintf("c%d-%d", g, i)
				w.Command([]byte("SET"), []byte(k), []byte(k+strings.Repeat("v", 100)))
			}
			for i := 0; i < n; i++ {
				w.Command([]byte("GET"), []byte(fmt.Sprintf("c%d-%d", g, i)))
			}
			w.Flush()
			for i := 0; i < 2*n; i++ {
				r, err := rr.ReadReply()
				if err != nil || r.Kind == resp.KindError || r.Kind == resp.KindNil {
					t.Errorf("reply %d: %v %v", i, r, err)
					return
				}
				if i >= n && string(r.Str) != fmt.Sprintf("c%d-%d", g, i-n)+strings.Repeat("v", 100) {
					t.Errorf("GET %d = %q", i-n, r.Str)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestShutdownFlushes(t *testing.T) {
	dir := t.TempDir()
	dbcfg := zdb.Config{DataDir: filepath.Join(dir, "d"), IndexDir: filepath.Join(dir, "i"), Sync: true}
	ts := start(t, dbcfg, Config{})
	c := ts.dial(t)
	c.expect("k", "SET", "k", "v")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	ts.db.Close()
	dbcfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := zdb.Open(dbcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ns, _ := db.Namespace("default")
	if v, err := ns.Get(context.Background(), []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("after shutdown: %q %v", v, err)
	}
}

// A client that hangs up during WAIT frees its session at once.
func TestWaitHangup(t *testing.T) {
	ts := start(t, zdb.Config{}, Config{MaxClients: 2})
	a := ts.dial(t)
	a.w.Command([]byte("WAIT"), []byte("NSJUMP"), []byte("60000"))
	a.w.Flush()
	time.Sleep(200 * time.Millisecond)
	a.c.Close()
	time.Sleep(200 * time.Millisecond)
	b, c := ts.dial(t), ts.dial(t)
	b.expect("PONG", "PING")
	c.expect("PONG", "PING")
}

// A command pipelined behind a WAIT is answered after it.
func TestWaitPipelined(t *testing.T) {
	ts := start(t, zdb.Config{}, Config{})
	a := ts.dial(t)
	a.w.Command([]byte("WAIT"), []byte("SET"), []byte("300"))
	a.w.Command([]byte("PING"))
	a.w.Flush()
	for _, want := range []string{"(error) Timeout", "PONG"} {
		r, err := a.rr.ReadReply()
		if err != nil || r.String() != want {
			t.Fatalf("got %v %v, want %s", r, err, want)
		}
	}
}
