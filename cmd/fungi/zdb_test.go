package main

// End-to-end tests of `fungi zdb` as a user runs it: a real process, real
// redis-cli and a stock Go Redis client, SIGKILL in the middle of writes.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

var fungiBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fungi-bin")
	if err != nil {
		panic(err)
	}
	fungiBin = filepath.Join(dir, "fungi")
	out, err := exec.Command("go", "build", "-o", fungiBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building fungi: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// zdbProc is a running `fungi zdb`.
type zdbProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	port int
	dir  string
	args []string
	log  *bytes.Buffer
}

func startZDB(t testing.TB, dir string, port int, extra ...string) *zdbProc {
	t.Helper()
	p := &zdbProc{t: t, port: port, dir: dir, args: extra}
	p.start()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *zdbProc) start() {
	p.t.Helper()
	args := append([]string{"zdb", "--listen", "127.0.0.1", "--port", strconv.Itoa(p.port),
		"--data", filepath.Join(p.dir, "data"), "--index", filepath.Join(p.dir, "index")}, p.args...)
	p.cmd = exec.Command(fungiBin, args...)
	p.log = &bytes.Buffer{}
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("fungi zdb did not start: %s", p.log)
}

func (p *zdbProc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.cmd = nil
	}
}

func (p *zdbProc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		p.t.Fatalf("fungi zdb exit: %v\n%s", err, p.log)
	}
	p.cmd = nil
}

func (p *zdbProc) cli(args ...string) string {
	p.t.Helper()
	cmd := exec.Command("redis-cli", append([]string{"-p", strconv.Itoa(p.port)}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return strings.TrimRight(string(out), "\n")
}

func needRedisCLI(t *testing.T) {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatal("redis-cli not found: run `make deps` (installs Debian's redis-tools)")
	}
}

func TestZDBWithRedisCLI(t *testing.T) {
	needRedisCLI(t)
	p := startZDB(t, t.TempDir(), freePort(t))
	steps := []struct{ args, want string }{
		{"PING", "PONG"},
		{"SET hello world", "hello"},
		{"SET hello world", ""}, // unchanged: nil
		{"GET hello", "world"},
		{"EXISTS hello", "1"},
		{"DBSIZE", "1"},
		{"NSNEW files", "OK"},
		{"NSLIST", "default\nfiles"},
		{"NSSET files password pw", "OK"},
		{"DEL hello", "OK"},
		{"GET hello", ""},
		{"DEL hello", "Key not found"},
		{"BOGUS", "Command not supported"},
	}
	for _, s := range steps {
		if got := p.cli(strings.Fields(s.args)...); got != s.want {
			t.Fatalf("redis-cli %s = %q, want %q", s.args, got, s.want)
		}
	}
	if got := p.cli("NSINFO", "files"); !strings.Contains(got, "password: yes") {
		t.Fatalf("NSINFO: %s", got)
	}
	// redis-cli over the unix socket, with --dualnet
	p.stop()
	sock := filepath.Join(p.dir, "zdb.sock")
	p.args = []string{"--socket", sock, "--dualnet"}
	p.start()
	out, err := exec.Command("redis-cli", "-s", sock, "SET", "via", "socket").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "via" {
		t.Fatalf("unix socket: %q %v", out, err)
	}
	if got := p.cli("GET", "via"); got != "socket" {
		t.Fatalf("GET over TCP after unix SET = %q", got)
	}
}

func TestZDBWithGoRedis(t *testing.T) {
	p := startZDB(t, t.TempDir(), freePort(t))
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", p.port), Protocol: 2, PoolSize: 8})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Set(ctx, "k", "v", 0).Result(); err != nil || got != "k" {
		t.Fatalf("SET = %q, %v", got, err)
	}
	if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v", got, err)
	}
	if err := rdb.Get(ctx, "missing").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET missing: %v", err)
	}
	pipe := rdb.Pipeline()
	for i := 0; i < 1000; i++ {
		pipe.Set(ctx, fmt.Sprint("p", i), fmt.Sprint("v", i), 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	vals, err := rdb.MGet(ctx, "p0", "p999", "nope").Result()
	if err != nil || vals[0] != "v0" || vals[1] != "v999" || vals[2] != nil {
		t.Fatalf("MGET = %v, %v", vals, err)
	}
	if err := rdb.Do(ctx, "NSINFO", "nope").Err(); err == nil || err.Error() != "Namespace not found" {
		t.Fatalf("NSINFO nope: %v", err)
	}
}

// value derives a key's value so a reader can check it after a crash.
func crashValue(key string, size int) []byte {
	seed := sha256.Sum256([]byte(key))
	return bytes.Repeat([]byte(hex.EncodeToString(seed[:])), size/64+1)[:size]
}

// SIGKILL a `fungi zdb` in the middle of a write stream, again and again:
// every acknowledged write must come back intact.
func TestZDBCrash(t *testing.T) {
	for _, syncMode := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync=%v", syncMode), func(t *testing.T) {
			dir, port := t.TempDir(), freePort(t)
			var extra []string
			if syncMode {
				extra = append(extra, "--sync")
			}
			extra = append(extra, "--datasize", "1M") // crash across rotations too
			p := startZDB(t, dir, port, extra...)
			acked := map[string]int{}
			var mu sync.Mutex
			for round := 0; round < 4; round++ {
				ctx, cancel := context.WithCancel(context.Background())
				rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Protocol: 2,
					PoolSize: 16, MaxRetries: -1})
				var wg sync.WaitGroup
				for w := 0; w < 8; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; ctx.Err() == nil; i++ {
							key := fmt.Sprintf("r%d-w%d-%d", round, w, i)
							size := 1 + (i*7919)%20000
							if err := rdb.Set(ctx, key, crashValue(key, size), 0).Err(); err != nil {
								return
							}
							mu.Lock()
							acked[key] = size
							mu.Unlock()
						}
					}()
				}
				time.Sleep(time.Duration(150+rand.IntN(300)) * time.Millisecond)
				p.cmd.Process.Kill() // SIGKILL mid-stream
				p.cmd.Wait()
				cancel()
				wg.Wait()
				rdb.Close()
				p.start()
				rdb = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Protocol: 2})
				mu.Lock()
				n := 0
				for key, size := range acked {
					got, err := rdb.Get(context.Background(), key).Bytes()
					if err != nil || !bytes.Equal(got, crashValue(key, size)) {
						t.Fatalf("round %d: acknowledged %s lost or damaged (len %d, %v)", round, key, len(got), err)
					}
					n++
				}
				mu.Unlock()
				rdb.Close()
				t.Logf("round %d: %d acknowledged writes intact", round, n)
				if n == 0 {
					t.Fatal("no write was acknowledged before the kill")
				}
			}
			p.stop()
			out, err := exec.Command(fungiBin, "zdb", "check", "--data", filepath.Join(dir, "data"),
				"--index", filepath.Join(dir, "index")).CombinedOutput()
			if err != nil {
				t.Fatalf("check after crashes: %v\n%s", err, out)
			}
		})
	}
}

func TestZDBCheckAndCompact(t *testing.T) {
	dir, port := t.TempDir(), freePort(t)
	p := startZDB(t, dir, port)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Protocol: 2})
	for round := 0; round < 3; round++ {
		for i := 0; i < 300; i++ {
			rdb.Set(ctx, fmt.Sprint("k", i), fmt.Sprint("round", round, strings.Repeat("x", 1000)), 0)
		}
	}
	for i := 0; i < 100; i++ {
		rdb.Del(ctx, fmt.Sprint("k", i))
	}
	rdb.Close()
	p.stop()
	data, index := filepath.Join(dir, "data"), filepath.Join(dir, "index")

	// damage the tail, as a crash mid-write would
	last := filepath.Join(data, "default", "zdb-data-00000000")
	f, _ := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("half a record"))
	f.Close()
	out, err := exec.Command(fungiBin, "zdb", "check", "--data", data, "--index", index).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "torn tail") {
		t.Fatalf("check of a torn tail: %v\n%s", err, out)
	}
	out, err = exec.Command(fungiBin, "zdb", "check", "--repair", "--json", "--data", data, "--index", index).CombinedOutput()
	if err != nil {
		t.Fatalf("check --repair: %v\n%s", err, out)
	}
	var rep struct {
		Namespaces []struct {
			Records  int
			Problems []struct{ Repaired bool }
		}
	}
	if err := json.Unmarshal(out, &rep); err != nil || rep.Namespaces[0].Records != 1000 || !rep.Namespaces[0].Problems[0].Repaired {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	out, err = exec.Command(fungiBin, "zdb", "compact", "--data", data, "--index", index).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "200 records") {
		t.Fatalf("compact: %v\n%s", err, out)
	}
	p.start()
	rdb = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Protocol: 2})
	defer rdb.Close()
	if n, _ := rdb.DBSize(ctx).Result(); n != 200 {
		t.Fatalf("DBSIZE after compact = %d", n)
	}
	if v, _ := rdb.Get(ctx, "k150").Result(); v != "round2"+strings.Repeat("x", 1000) {
		t.Fatalf("k150 after compact = %.20q", v)
	}
	// the server holds the directory: offline tools refuse to run
	out, err = exec.Command(fungiBin, "zdb", "compact", "--data", data, "--index", index).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by another process") {
		t.Fatalf("compact while running: %v\n%s", err, out)
	}
}

func TestCLIErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"zdb", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"zdb", "--datasize", "12q"}, 2, `invalid size "12q"`},
		{[]string{"zdb", "--mode", "weird"}, 2, `unknown mode "weird"`},
		{[]string{"zdb", "--protect"}, 2, "protected mode only works with admin password"},
		{[]string{"zdb", "--port", "99999"}, 2, "out of range"},
		{[]string{"zdb", "--datasize", "1K"}, 2, "datasize"},
		{[]string{"zdb", "--threads", "0"}, 2, "--threads must be at least 1"},
		{[]string{"zdb", "check", "--data", "/nonexistent/x"}, 1, "data directory"},
		{[]string{"add", "-n", "/nonexistent/x"}, 1, "/nonexistent/x: no such file or directory"},
		{[]string{"add", "-n", "--profile", "nope", "."}, 2, `unknown profile "nope"`},
		{[]string{"add", "-n"}, 2, "exactly one PATH is required"},
	}
	for _, tc := range cases {
		cmd := exec.Command(fungiBin, tc.args...)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
			t.Errorf("%v: exit %v, want %d\n%s", tc.args, err, tc.code, out)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%v: output %q, want one line with %q", tc.args, out, tc.want)
		}
	}
}
