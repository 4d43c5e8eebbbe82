package node

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func objectsFixture() []ObjectInfo {
	healths := []string{"full", "degraded", "full", "lost", "at_risk", "full"}
	var all []ObjectInfo
	for i := range 1200 {
		all = append(all, ObjectInfo{Root: fmt.Sprintf("bafy%04dx", i), Health: healths[i%len(healths)]})
	}
	return all
}

func TestObjectsPage(t *testing.T) {
	sel, err := parseObjectQuery(url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	got := sel.page(objectsFixture())
	if got.Total != 1200 || got.Matched != 1200 || len(got.Objects) != 50 || got.Limit != 50 {
		t.Fatalf("default page: total %d matched %d len %d limit %d", got.Total, got.Matched, len(got.Objects), got.Limit)
	}
	if got.Counts.Full != 600 || got.Counts.Degraded != 200 || got.Counts.Lost != 200 || got.Counts.AtRisk != 200 {
		t.Fatalf("counts %+v", got.Counts)
	}
	// worst first, then by root
	if got.Objects[0].Health != "lost" || got.Objects[0].Root != "bafy0003x" || got.Objects[1].Root != "bafy0009x" {
		t.Fatalf("order: %+v %+v", got.Objects[0], got.Objects[1])
	}
	sel, _ = parseObjectQuery(url.Values{"health": {"full"}, "offset": {"590"}, "limit": {"20"}})
	got = sel.page(objectsFixture())
	if got.Matched != 600 || len(got.Objects) != 10 || got.Objects[9].Root != "bafy1199x" {
		t.Fatalf("last page of full: matched %d len %d", got.Matched, len(got.Objects))
	}
	sel, _ = parseObjectQuery(url.Values{"q": {" BAFY011 "}})
	got = sel.page(objectsFixture())
	if got.Matched != 10 || got.Total != 1200 {
		t.Fatalf("search: matched %d of %d", got.Matched, got.Total)
	}
	sel, _ = parseObjectQuery(url.Values{"offset": {"5000"}})
	if got = sel.page(objectsFixture()); len(got.Objects) != 0 || got.Objects == nil {
		t.Fatalf("past the end: %v", got.Objects)
	}
	for _, bad := range []url.Values{{"health": {"good"}}, {"limit": {"-1"}}, {"limit": {"1001"}}, {"offset": {"x"}}} {
		if _, err := parseObjectQuery(bad); err == nil || statusOf(err) != http.StatusBadRequest {
			t.Errorf("%v: want a 400, got %v", bad, err)
		}
	}
}

func FuzzObjectQuery(f *testing.F) {
	f.Add("bafy", "full", "10", "20")
	f.Add("", "", "", "")
	f.Add("\x00", "lost", "99999999999999999999", "-3")
	all := objectsFixture()
	f.Fuzz(func(t *testing.T, q, health, offset, limit string) {
		sel, err := parseObjectQuery(url.Values{"q": {q}, "health": {health}, "offset": {offset}, "limit": {limit}})
		if err != nil {
			return
		}
		got := sel.page(all)
		if len(got.Objects) > sel.limit || got.Matched > got.Total {
			t.Fatalf("page of %d (limit %d), matched %d of %d", len(got.Objects), sel.limit, got.Matched, got.Total)
		}
	})
}

// guarded serves ok behind the guard on a loopback listener, as the
// daemon does.
func guarded(t *testing.T) string {
	srv := httptest.NewServer(guardBrowsers(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestGuardBrowsers(t *testing.T) {
	addr := guarded(t)
	_, port, _ := net.SplitHostPort(addr)
	for _, tc := range []struct {
		host, origin, site string
		ok                 bool
	}{
		{ok: true}, // a CLI: no Origin, Host is the address
		{origin: "http://" + addr, site: "same-origin", ok: true}, // the console's own page
		{host: "localhost:" + port, origin: "http://localhost:" + port, ok: true},
		{origin: "http://evil.example", site: "cross-site"},                   // CSRF
		{origin: "http://evil.example"},                                       // an old browser: Origin only
		{origin: "null"},                                                      // a sandboxed frame
		{host: "evil.example:" + port, origin: "http://evil.example:" + port}, // DNS rebinding
		{host: "evil.example:" + port},
		{site: "cross-site"},
	} {
		req, _ := http.NewRequestWithContext(context.Background(), "POST", "http://"+addr+"/api/v0/add", strings.NewReader("x"))
		if tc.host != "" {
			req.Host = tc.host
		}
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		if tc.site != "" {
			req.Header.Set("Sec-Fetch-Site", tc.site)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusOK; got != tc.ok {
			t.Errorf("host %q origin %q site %q: status %d, want ok=%v", tc.host, tc.origin, tc.site, resp.StatusCode, tc.ok)
		}
	}
}

func FuzzCrossSite(f *testing.F) {
	f.Add("127.0.0.1:5001", "http://127.0.0.1:5001", "same-origin")
	f.Add("[::1]:80", "http://[::1", "")
	f.Add("localhost", "%zz", "cross-site")
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5001}
	f.Fuzz(func(t *testing.T, host, origin, site string) {
		r := httptest.NewRequest("GET", "/api/v0/id", nil)
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(local)))
		r.Host = host
		r.Header.Set("Origin", origin)
		r.Header.Set("Sec-Fetch-Site", site)
		why := crossSite(r)
		if why == "" && !loopbackHost(host) {
			t.Fatalf("host %q let through on a loopback listener", host)
		}
		if why == "" && site == "cross-site" {
			t.Fatal("a cross-site request let through")
		}
	})
}
