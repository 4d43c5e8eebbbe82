package p2p

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

const httpProto = protocol.ID("/fungi-test/http/1.0.0")

// netConnTransports are the set-ups the stream conn tests run over: each
// libp2p transport alone, and TCP with the latency shim on both ends.
var netConnTransports = []struct {
	name    string
	listen  []string
	latency time.Duration
}{
	{"tcp", []string{loopTCP}, 0},
	{"quic", []string{loopQUIC}, 0},
	{"tcp+latency", []string{loopTCP}, 10 * time.Millisecond},
}

// memberPair starts a server and a client host listening on listen, with
// latency as ExtraLatency, the server's gate letting in the client only,
// and connects them.
func memberPair(t testing.TB, listen []string, latency time.Duration) (server, client *Host) {
	t.Helper()
	cfg := testConfig()
	cfg.ListenAddrs = listen
	if latency > 0 {
		cfg.ExtraLatency = func(peer.ID) time.Duration { return latency }
	}
	server, client = newHost(t, cfg), newHost(t, cfg)
	server.SetAllowed(func(id peer.ID) bool { return id == client.ID() })
	if err := client.Connect(t.Context(), server.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	return server, client
}

// peerClient returns an HTTP client whose requests to http://<peer ID>/...
// go over h.DialMember.
func peerClient(t testing.TB, h *Host) *http.Client {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			p, err := PeerFromRemoteAddr(addr)
			if err != nil {
				return nil, err
			}
			return h.DialMember(ctx, p, httpProto)
		},
		MaxIdleConnsPerHost: 16,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

func peerURL(h *Host, path string) string { return "http://" + h.ID().String() + path }

// testServer is an http.Server on a ListenMember listener.
type testServer struct {
	l     net.Listener
	srv   *http.Server
	conns atomic.Int32  // connections accepted
	done  chan struct{} // closed when Serve returned
	err   error         // Serve's result, once done is closed
}

// serveHTTP serves handler on h.ListenMember(httpProto) until the test
// ends.
func serveHTTP(t testing.TB, h *Host, handler http.Handler) *testServer {
	t.Helper()
	ts := &testServer{l: h.ListenMember(httpProto), done: make(chan struct{})}
	ts.srv = &http.Server{
		Handler: handler,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				ts.conns.Add(1)
			}
		},
	}
	go func() {
		defer close(ts.done)
		ts.err = ts.srv.Serve(ts.l)
	}()
	t.Cleanup(func() {
		ts.srv.Close()
		<-ts.done
	})
	return ts
}

// testHandler serves:
//
//	/sum     the request body's length and SHA-256, its transfer encoding
//	         and the caller's peer ID
//	/stream  ?n= bytes of seeded pseudo-random data (?seed=), flushed in
//	         64 KiB chunks
//	/who     the caller's peer ID and whether the request's context is done
func testHandler(t testing.TB) http.Handler {
	mux := http.NewServeMux()
	caller := func(r *http.Request) string {
		id, err := PeerFromRemoteAddr(r.RemoteAddr)
		if err != nil {
			t.Errorf("RemoteAddr %q: %v", r.RemoteAddr, err)
			return "?"
		}
		return id.String()
	}
	mux.HandleFunc("/sum", func(w http.ResponseWriter, r *http.Request) {
		hash := sha256.New()
		n, err := io.Copy(hash, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x %s %s", n, hash.Sum(nil), strings.Join(r.TransferEncoding, ","), caller(r))
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.FormValue("n"), 10, 64)
		seed, _ := strconv.Atoi(r.FormValue("seed"))
		src := io.LimitReader(seeded(seed), n)
		buf := make([]byte, 64<<10)
		for {
			k, err := src.Read(buf)
			if k > 0 {
				if _, err := w.Write(buf[:k]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/who", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %v", caller(r), r.Context().Err())
	})
	return mux
}

func seeded(seed int) io.Reader {
	return rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
}

// seededSum is the SHA-256 of n bytes of seeded(seed).
func seededSum(seed int, n int64) string {
	hash := sha256.New()
	io.Copy(hash, io.LimitReader(seeded(seed), n))
	return fmt.Sprintf("%x", hash.Sum(nil))
}

// upload posts n bytes of seeded(seed) to /sum, of unknown length (so
// chunked), and checks the server's answer.
func upload(ctx context.Context, c *http.Client, server, client *Host, seed int, n int64) error {
	body := io.LimitReader(seeded(seed), n) // not a type NewRequest knows the length of
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, peerURL(server, "/sum"), body)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	want := fmt.Sprintf("%d %s chunked %s", n, seededSum(seed, n), client.ID())
	if resp.StatusCode != http.StatusOK || string(got) != want {
		return fmt.Errorf("upload: %s %q, want %q", resp.Status, got, want)
	}
	return nil
}

// download reads n bytes of seeded(seed) from /stream and checks them.
func download(ctx context.Context, c *http.Client, server *Host, seed int, n int64) error {
	url := peerURL(server, fmt.Sprintf("/stream?n=%d&seed=%d", n, seed))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download: %s", resp.Status)
	}
	if resp.ContentLength != -1 {
		return fmt.Errorf("download: content length %d, want a streamed response", resp.ContentLength)
	}
	hash := sha256.New()
	got, err := io.Copy(hash, resp.Body)
	if err != nil {
		return fmt.Errorf("download after %d bytes: %w", got, err)
	}
	if sum := fmt.Sprintf("%x", hash.Sum(nil)); got != n || sum != seededSum(seed, n) {
		return fmt.Errorf("download: %d bytes, sum %s; want %d, %s", got, sum, n, seededSum(seed, n))
	}
	return nil
}

// get fetches path and returns the body and whether the connection was
// reused.
func get(ctx context.Context, c *http.Client, server *Host, path string) (body string, reused bool, err error) {
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, peerURL(server, path), nil)
	if err != nil {
		return "", false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", path, resp.Status)
	}
	return string(b), reused, err
}

// recvErr waits for the result of a call that must return.
func recvErr(t testing.TB, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("call did not return within 10s")
		return nil
	}
}

func TestNetConnHTTP(t *testing.T) {
	for _, tr := range netConnTransports {
		t.Run(tr.name, func(t *testing.T) {
			server, client := memberPair(t, tr.listen, tr.latency)
			ts := serveHTTP(t, server, testHandler(t))
			c := peerClient(t, client)
			ctx := t.Context()

			t.Run("chunked upload", func(t *testing.T) {
				if err := upload(ctx, c, server, client, 1, 32<<20); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("streamed response", func(t *testing.T) {
				if err := download(ctx, c, server, 2, 32<<20); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("concurrent", func(t *testing.T) {
				const workers = 8
				errs := make([]error, workers)
				var wg sync.WaitGroup
				for i := range workers {
					wg.Go(func() {
						seed := 100 + i
						if err := upload(ctx, c, server, client, seed, 1<<20+int64(i)); err != nil {
							errs[i] = err
							return
						}
						errs[i] = download(ctx, c, server, seed, 1<<20+int64(i))
					})
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Errorf("worker %d: %v", i, err)
					}
				}
			})
			t.Run("keep-alive", func(t *testing.T) {
				c := peerClient(t, client) // a fresh pool
				before := ts.conns.Load()
				for i := range 5 {
					start := time.Now()
					body, reused, err := get(ctx, c, server, "/who")
					took := time.Since(start)
					if err != nil {
						t.Fatalf("request %d: %v", i, err)
					}
					// The server aborts its background read with a past
					// deadline after each request: done right, the next
					// request's context is not cancelled.
					if want := client.ID().String() + " <nil>"; body != want {
						t.Errorf("request %d: %q, want %q", i, body, want)
					}
					if i > 0 && !reused {
						t.Errorf("request %d: connection not reused", i)
					}
					if i > 0 && took < 2*tr.latency {
						t.Errorf("request %d took %v, want >= %v (ExtraLatency both ways)", i, took, 2*tr.latency)
					}
				}
				if n := ts.conns.Load() - before; n != 1 {
					t.Errorf("server accepted %d connections for 5 sequential requests, want 1", n)
				}
			})
		})
	}
}

func TestNetConnNonMember(t *testing.T) {
	server, client := memberPair(t, []string{loopTCP, loopQUIC}, 0)
	stranger := newHost(t, testConfig())
	if err := stranger.Connect(t.Context(), server.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	var fromStranger atomic.Int32
	h := testHandler(t)
	serveHTTP(t, server, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, _ := PeerFromRemoteAddr(r.RemoteAddr); id == stranger.ID() {
			fromStranger.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	ctx := t.Context()

	if body, _, err := get(ctx, peerClient(t, stranger), server, "/who"); err == nil {
		t.Fatalf("stranger got %q through the gate", body)
	} else {
		t.Logf("stranger refused: %v", err)
	}
	if _, err := stranger.DialMember(ctx, server.ID(), httpProto); err != nil {
		t.Logf("stranger's dial failed: %v", err)
	}
	if n := fromStranger.Load(); n != 0 {
		t.Errorf("handler ran %d times for the stranger", n)
	}
	if body, _, err := get(ctx, peerClient(t, client), server, "/who"); err != nil || body != client.ID().String()+" <nil>" {
		t.Errorf("member: %q, %v", body, err)
	}
}

func TestListenMemberConn(t *testing.T) {
	for _, tr := range netConnTransports {
		t.Run(tr.name, func(t *testing.T) {
			server, client := memberPair(t, tr.listen, tr.latency)
			l := server.ListenMember(httpProto)
			t.Cleanup(func() { l.Close() })
			ctx := t.Context()

			cc, err := client.DialMember(ctx, server.ID(), httpProto)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			if _, err := cc.Write([]byte("x")); err != nil { // sends the lazy protocol handshake
				t.Fatal(err)
			}
			sc, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()

			for _, a := range []struct {
				name string
				addr net.Addr
				want peer.ID
			}{
				{"listener", l.Addr(), server.ID()},
				{"server local", sc.LocalAddr(), server.ID()},
				{"server remote", sc.RemoteAddr(), client.ID()},
				{"client local", cc.LocalAddr(), client.ID()},
				{"client remote", cc.RemoteAddr(), server.ID()},
			} {
				if a.addr.Network() != "libp2p" || a.addr.String() != a.want.String() {
					t.Errorf("%s address %s %q, want libp2p %q", a.name, a.addr.Network(), a.addr, a.want)
				}
			}
			if id, err := PeerFromRemoteAddr(sc.RemoteAddr().String()); err != nil || id != client.ID() {
				t.Errorf("PeerFromRemoteAddr: %v, %v", id, err)
			}

			// A read deadline ends a pending Read with an error that is a
			// net.Error itself (http.Server type-asserts, it does not
			// unwrap), and the conn works after it is lifted.
			buf := make([]byte, 1)
			if _, err := io.ReadFull(sc, buf); err != nil || buf[0] != 'x' {
				t.Fatalf("server read %q, %v", buf, err)
			}
			for _, conn := range []net.Conn{cc, sc} {
				if err := conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
					t.Fatal(err)
				}
				_, err := conn.Read(buf)
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					t.Errorf("read past the deadline: %T %v, want a timeout net.Error", err, err)
				}
				// As http.Server's abortPendingRead: a past deadline set
				// while the Read is pending.
				errc := make(chan error, 1)
				go func() {
					_, err := conn.Read(buf)
					errc <- err
				}()
				if err := conn.SetReadDeadline(time.Unix(1, 0)); err != nil {
					t.Fatal(err)
				}
				err = recvErr(t, errc)
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					t.Errorf("read aborted by a past deadline: %T %v, want a timeout net.Error", err, err)
				}
				if err := conn.SetDeadline(time.Time{}); err != nil {
					t.Fatal(err)
				}
				if err := conn.SetWriteDeadline(time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := sc.Write([]byte("y")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(cc, buf); err != nil || buf[0] != 'y' {
				t.Fatalf("client read after the deadlines %q, %v", buf, err)
			}

			// Close is a full close: a Read pending on the closing side
			// returns (http.Transport's read loop), the peer reads EOF.
			errc := make(chan error, 1)
			go func() {
				_, err := cc.Read(buf)
				errc <- err
			}()
			if err := cc.Close(); err != nil {
				t.Fatal(err)
			}
			if err := recvErr(t, errc); !errors.Is(err, net.ErrClosed) {
				t.Errorf("read pending across Close: %v, want net.ErrClosed", err)
			}
			if err := cc.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := cc.Write([]byte("z")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("write after Close: %v, want net.ErrClosed", err)
			}
			sc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := sc.Read(buf); err != io.EOF {
				t.Errorf("peer read after Close: %d, %v; want io.EOF", n, err)
			}
		})
	}
}

func TestListenMemberClose(t *testing.T) {
	server, client := memberPair(t, []string{loopTCP, loopQUIC}, 0)
	ts := serveHTTP(t, server, testHandler(t))
	ctx := t.Context()
	c := peerClient(t, client)
	if _, _, err := get(ctx, c, server, "/who"); err != nil {
		t.Fatal(err)
	}

	if err := ts.l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ts.done:
		if !errors.Is(ts.err, net.ErrClosed) {
			t.Errorf("Serve returned %v, want net.ErrClosed", ts.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the listener closed")
	}
	if err := ts.l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := ts.l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if body, _, err := get(ctx, peerClient(t, client), server, "/who"); err == nil {
		t.Errorf("request after Close answered %q", body)
	}

	// A stream waiting for Accept when the listener closes is reset.
	l := server.ListenMember(httpProto)
	cc, err := client.DialMember(ctx, server.ID(), httpProto)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cc.Write([]byte("x"))
	l.Close()
	cc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := cc.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("waiting stream after Close: %v, want a reset", err)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("waiting stream not reset by Close: %v", err)
	}

	// Closing the host ends Accept.
	l = server.ListenMember(httpProto)
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	server.Close()
	if err := recvErr(t, errc); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after the host closed: %v, want net.ErrClosed", err)
	}
	l.Close()
}

func TestNetConnPeerFromRemoteAddr(t *testing.T) {
	h := newHost(t, testConfig())
	id := h.ID().String()
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{id, true},
		{id + ":80", true},
		{id + ":", true},
		{"", false},
		{"127.0.0.1:80", false},
		{"[::1]:80", false},
		{id + "x", false},
		{":80", false},
	} {
		got, err := PeerFromRemoteAddr(tc.in)
		if tc.ok && (err != nil || got != h.ID()) {
			t.Errorf("%q: %v, %v; want %s", tc.in, got, err, id)
		}
		if !tc.ok && err == nil {
			t.Errorf("%q: accepted as %s", tc.in, got)
		}
		if err != nil && (!strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%q: error %q: want one line naming the input", tc.in, err)
		}
	}
}

func FuzzPeerFromRemoteAddr(f *testing.F) {
	for _, s := range []string{
		"12D3KooWGRUVh7oQjzELg8VpcNi2vGFhLqJbsKZR2YiLfLs6pbaP",
		"12D3KooWGRUVh7oQjzELg8VpcNi2vGFhLqJbsKZR2YiLfLs6pbaP:80",
		"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
		"", ":", "[::1]:80", "a:b:c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := PeerFromRemoteAddr(s)
		if err != nil {
			return
		}
		again, err := PeerFromRemoteAddr(id.String())
		if err != nil || again != id {
			t.Fatalf("%q parsed as %s, which reparses as %s, %v", s, id, again, err)
		}
	})
}
