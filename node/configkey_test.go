package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want []string // nil: an error
	}{
		{"gateway.listen", []string{"gateway", "listen"}},
		{"profile", []string{"profile"}},
		{`gateway.public_gateways."dweb.link".Paths`, []string{"gateway", "public_gateways", "dweb.link", "Paths"}},
		{`a."b\"c".d`, []string{"a", `b"c`, "d"}},
		{`"".x`, []string{"", "x"}},
		{"p2p.listen.0", []string{"p2p", "listen", "0"}},
		{"", nil},
		{".a", nil},
		{"a.", nil},
		{"a..b", nil},
		{`a."b`, nil},
		{`a."b"c`, nil},
		{`a.b"c`, nil},
		{`a."\x"`, nil},
		{"a.\xaa", nil},
	} {
		segs, err := parseKey(tc.key)
		if tc.want == nil {
			if err == nil || !errors.Is(err, ErrBadSetting) {
				t.Errorf("parseKey(%q) = %v, %v; want a bad setting", tc.key, segs, err)
			}
			continue
		}
		var got []string
		for _, s := range segs {
			got = append(got, s.name)
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseKey(%q) = %q, %v; want %q", tc.key, got, err, tc.want)
		}
	}
}

func TestConfigValue(t *testing.T) {
	c := DefaultConfig()
	c.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"}
	c.Gateway.PublicGateways = map[string]*PublicGateway{"dweb.link": {Paths: []string{"/ipfs"}, UseSubdomains: true}}
	for _, tc := range []struct {
		key, want, err string
	}{
		{key: "gateway.listen", want: `"127.0.0.1:8080"`},
		{key: "cluster.no_store", want: `false`},
		{key: "Cluster.Domain", want: `""`}, // case-insensitive, as the file
		{key: "cluster.orphan_age", want: `""`},
		{key: "cluster.voters", want: `0`},
		{key: "p2p.listen", want: `["/ip4/127.0.0.1/tcp/4001","/ip4/127.0.0.1/udp/4001/quic-v1"]`},
		{key: "p2p.listen.1", want: `"/ip4/127.0.0.1/udp/4001/quic-v1"`},
		{key: "p2p.latency", want: `null`},
		{key: "zdb", want: `{"data":"zdb/data","index":"zdb/index"}`},
		{key: `gateway.public_gateways."dweb.link".UseSubdomains`, want: `true`},
		{key: `gateway.public_gateways.dweb.link.Paths`, want: `["/ipfs"]`}, // an existing key needs no quotes
		{key: "nope", err: `unknown key "nope" (the config has: profile, coding`},
		{key: "gateway.lisen", err: `unknown key "gateway.lisen" (gateway has: listen, public_gateways`},
		{key: "gateway.listen.port", err: `gateway.listen is a string: it has no key "port"`},
		{key: "p2p.listen.2", err: "p2p.listen has 2 entries: no index 2"},
		{key: "p2p.listen.x", err: `p2p.listen is a list: "x" is not an index`},
		{key: "p2p.listen.01", err: `"01" is not an index`},
		{key: "gateway.public_gateways.example.com", err: `gateway.public_gateways has no entry "example"`},
		{key: "a..b", err: "empty name"},
	} {
		got, err := c.Value(tc.key)
		if tc.err != "" {
			if err == nil || !errors.Is(err, ErrBadSetting) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Value(%q) = %s, %v; want an error with %q", tc.key, got, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("Value(%q) = %s, %v; want %s", tc.key, got, err, tc.want)
		}
	}
}

func TestConfigSetValue(t *testing.T) {
	const peerID = "12D3KooWLRPJAA5o6Z6Bbe1ZRDUjFhMh8vS6SYkjxY9odvTDRdqa"
	for _, tc := range []struct {
		key, value string
		check      func(c Config) bool
		err        string
	}{
		{key: "gateway.listen", value: `"0.0.0.0:8081"`, check: func(c Config) bool { return c.Gateway.Listen == "0.0.0.0:8081" }},
		{key: "gateway.listen", value: `""`, check: func(c Config) bool { return c.Gateway.Listen == "" }},
		{key: "cluster.no_store", value: `true`, check: func(c Config) bool { return c.Cluster.NoStore }},
		{key: "cluster.voters", value: `5`, check: func(c Config) bool { return c.Cluster.Voters == 5 }},
		{key: "cluster.domain", value: `"rack-1"`, check: func(c Config) bool { return c.Cluster.Domain == "rack-1" }},
		{key: "p2p.listen.0", value: `"/ip4/0.0.0.0/tcp/4002"`, check: func(c Config) bool { return c.P2P.Listen[0] == "/ip4/0.0.0.0/tcp/4002" }},
		{key: "p2p.listen", value: `["/ip4/0.0.0.0/tcp/4003"]`, check: func(c Config) bool { return len(c.P2P.Listen) == 1 }},
		{key: "p2p.latency." + peerID, value: `"40ms"`, check: func(c Config) bool { return c.P2P.Latency[peerID] == "40ms" }},
		{key: `gateway.public_gateways."example.com"`, value: `{"Paths":["/ipfs","/ipns"],"UseSubdomains":true}`,
			check: func(c Config) bool {
				pg := c.Gateway.PublicGateways["example.com"]
				return pg != nil && pg.UseSubdomains && len(pg.Paths) == 2
			}},
		{key: `gateway.public_gateways."example.com".InlineDNSLink`, value: `true`,
			check: func(c Config) bool {
				pg := c.Gateway.PublicGateways["example.com"]
				return pg != nil && pg.InlineDNSLink
			}},
		{key: `gateway.public_gateways.localhost.DeserializedResponses`, value: `false`,
			check: func(c Config) bool {
				pg := c.Gateway.PublicGateways["localhost"]
				return pg != nil && pg.DeserializedResponses != nil && !*pg.DeserializedResponses
			}},
		{key: "zdb", value: `{"data":"d","index":"i"}`, check: func(c Config) bool { return c.ZDB == ZDBDirs{"d", "i"} }},

		{key: "cluster.voters", value: `"5"`, err: "cluster.voters is a number, not a string"},
		{key: "cluster.no_store", value: `"yes"`, err: "cluster.no_store is a bool, not a string"},
		{key: "cluster.no_store", value: `"yes"`, err: ErrStringValue.Error()},
		{key: "cluster.voters", value: `"5"`, err: ErrStringValue.Error()},
		{key: "cluster.domain", value: `7`, err: "cluster.domain is a string, not a number"},
		{key: "cluster.capacity", value: `-1`, err: "cluster.capacity: -1 is out of range"},
		{key: "p2p.listen", value: `"/ip4/0.0.0.0/tcp/1"`, err: "p2p.listen is a list, not a string"},
		{key: "zdb", value: `{"data":"d","bogus":1}`, err: `zdb: unknown field "bogus"`},
		{key: "gateway.public_gateways.example.com.Paths", value: `[]`, err: `unknown key "gateway.public_gateways.example.com" (gateway.public_gateways.example has: Paths, UseSubdomains`},
		{key: "gateway.public_gateways.example.com.Paths", value: `[]`, err: `quote map keys that hold dots: gateway.public_gateways."example.com"`},
		{key: "cluster", value: `{"domain": }`, err: "the value is not JSON"},
		{key: "bogus", value: `1`, err: `unknown key "bogus"`},
		{key: "p2p.listen.5", value: `"x"`, err: "p2p.listen has 2 entries: no index 5"},
	} {
		c := DefaultConfig()
		c.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"}
		before := DefaultConfig()
		before.P2P.Listen = slicesClone(c.P2P.Listen)
		err := c.SetValue(tc.key, json.RawMessage(tc.value))
		if tc.err != "" {
			if tc.err == ErrStringValue.Error() {
				if !errors.Is(err, ErrStringValue) || !errors.Is(err, ErrBadSetting) {
					t.Errorf("SetValue(%s, %s) = %v; want ErrStringValue", tc.key, tc.value, err)
				}
			} else if err == nil || !errors.Is(err, ErrBadSetting) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("SetValue(%s, %s) = %v; want an error with %q", tc.key, tc.value, err, tc.err)
			} else if errors.Is(err, ErrStringValue) && !strings.Contains(tc.value, `"`) {
				t.Errorf("SetValue(%s, %s) = %v: not a string, yet ErrStringValue", tc.key, tc.value, err)
			}
			if !reflect.DeepEqual(c, before) {
				t.Errorf("SetValue(%s, %s) failed but changed the config", tc.key, tc.value)
			}
			continue
		}
		if err != nil || !tc.check(c) {
			t.Errorf("SetValue(%s, %s) = %v; config %s", tc.key, tc.value, err, configJSON(c))
		}
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// A set works on a copy: the original's maps are never shared or changed.
func TestConfigSetValueCopies(t *testing.T) {
	c := DefaultConfig()
	c.Gateway.PublicGateways = map[string]*PublicGateway{"a.example": {Paths: []string{"/ipfs"}}}
	orig := c
	if err := c.SetValue(`gateway.public_gateways."a.example".UseSubdomains`, json.RawMessage(`true`)); err != nil {
		t.Fatal(err)
	}
	if orig.Gateway.PublicGateways["a.example"].UseSubdomains {
		t.Fatal("the set changed a map shared with the original config")
	}
	if err := c.SetValue(`gateway.public_gateways.a.example`, json.RawMessage(`null`)); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Gateway.PublicGateways["a.example"]; ok || len(orig.Gateway.PublicGateways) != 1 {
		t.Fatalf("null did not delete the entry: %s", configJSON(c))
	}
}

func writeTestConfig(t *testing.T, c Config) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, configFile), configJSON(c), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSetConfigValue(t *testing.T) {
	dir := writeTestConfig(t, DefaultConfig())
	for _, tc := range []struct{ key, value string }{
		{"gateway.listen", `"127.0.0.1:9090"`},
		{"cluster.no_store", `true`},
		{"cluster.domain", `"eu-west"`},
	} {
		if err := SetConfigValue(dir, tc.key, json.RawMessage(tc.value)); err != nil {
			t.Fatalf("set %s: %v", tc.key, err)
		}
		got, err := GetConfigValue(dir, tc.key)
		if err != nil || string(got) != tc.value {
			t.Fatalf("get %s = %s, %v; want %s", tc.key, got, err, tc.value)
		}
	}
	cfg, err := readConfig(dir) // the strict reader the daemon uses
	if err != nil || cfg.Gateway.Listen != "127.0.0.1:9090" || !cfg.Cluster.NoStore || cfg.Cluster.Domain != "eu-west" {
		t.Fatalf("readConfig = %+v, %v", cfg, err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, configFile))
	// invalid results are refused and leave the file as it was
	for _, tc := range []struct{ key, value, err string }{
		{"cluster.voters", `4`, "cluster.voters is 4: use 3 or 5"},
		{"gateway.listen", `"nocolon"`, `gateway.listen "nocolon": want host:port`},
		{"profile", `"fancy"`, `unknown profile "fancy"`},
		{"gateway.retrieval_timeout", `"soon"`, "gateway.retrieval_timeout"},
		{"nope", `1`, `unknown key "nope"`},
	} {
		err := SetConfigValue(dir, tc.key, json.RawMessage(tc.value))
		if err == nil || !errors.Is(err, ErrBadSetting) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("set %s %s = %v; want a bad setting with %q", tc.key, tc.value, err, tc.err)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(dir, configFile)); !bytes.Equal(before, after) {
		t.Fatal("a refused set changed the file")
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(tmp) > 0 {
		t.Fatalf("temporary files left behind: %v", tmp)
	}
	if _, err := GetConfigValue(t.TempDir(), "gateway.listen"); !errors.Is(err, ErrNoRepo) {
		t.Fatalf("no repo: %v", err)
	}
}

// Concurrent writers of one file (two `fungi config` runs, or one beside
// the daemon's own save) each write a temporary file of their own: all
// succeed, the file is one writer's whole content, and nothing is left.
func TestWriteFileAtomicConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, configFile)
	const writers = 8
	errs := make(chan error, writers)
	for i := range writers {
		go func() { errs <- writeFileAtomic(path, bytes.Repeat([]byte{'a' + byte(i)}, 64<<10), 0o644) }()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) != 64<<10 || !bytes.Equal(b, bytes.Repeat(b[:1], len(b))) {
		t.Fatalf("the file is not one writer's: %d bytes, %v", len(b), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d files in the directory; want only the config", len(ents))
	}
}

// A config that no longer validates can still be read and repaired.
func TestSetConfigValueRepairs(t *testing.T) {
	bad := DefaultConfig()
	bad.Gateway.Listen = "broken"
	dir := writeTestConfig(t, bad)
	if _, err := readConfig(dir); err == nil {
		t.Fatal("the broken config validates")
	}
	if got, err := GetConfigValue(dir, "gateway.listen"); err != nil || string(got) != `"broken"` {
		t.Fatalf("get = %s, %v", got, err)
	}
	if err := SetConfigValue(dir, "gateway.listen", json.RawMessage(`"127.0.0.1:8080"`)); err != nil {
		t.Fatal(err)
	}
	if _, err := readConfig(dir); err != nil {
		t.Fatalf("after the repair: %v", err)
	}
	show, err := ShowConfig(dir)
	if err != nil || !json.Valid(show) || !bytes.Contains(show, []byte(`"listen": "127.0.0.1:8080"`)) {
		t.Fatalf("ShowConfig = %s, %v", show, err)
	}
}

// FuzzConfigKey: any key parses or fails cleanly, formats back to the same
// names, and a get or set with it never panics nor half-applies.
func FuzzConfigKey(f *testing.F) {
	for _, s := range []struct{ key, value string }{
		{"gateway.listen", `"127.0.0.1:1"`},
		{`gateway.public_gateways."dweb.link".Paths`, `["/ipfs"]`},
		{`gateway.public_gateways.a.b.UseSubdomains`, `true`},
		{"p2p.listen.0", `"/ip4/1.2.3.4/tcp/1"`},
		{`a."b\"c".d`, `null`},
		{"cluster", `{"voters": 5}`},
		{"zdb..data", `""`},
	} {
		f.Add(s.key, []byte(s.value))
	}
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		segs, err := parseKey(key)
		if err != nil {
			if !errors.Is(err, ErrBadSetting) {
				t.Fatalf("parseKey(%q): %v is not a bad setting", key, err)
			}
			return
		}
		again, err := parseKey(formatKey(segs))
		if err != nil || len(again) != len(segs) {
			t.Fatalf("parseKey(formatKey(%q)) = %v, %v", key, again, err)
		}
		for i := range segs {
			if again[i].name != segs[i].name {
				t.Fatalf("%q: segment %d: %q after formatting as %q", key, i, again[i].name, segs[i].name)
			}
		}
		c := DefaultConfig()
		c.Value(key)
		before := configJSON(c)
		err = c.SetValue(key, value)
		if err != nil {
			if !errors.Is(err, ErrBadSetting) {
				t.Fatalf("SetValue(%q, %q): %v is not a bad setting", key, value, err)
			}
			if !bytes.Equal(before, configJSON(c)) {
				t.Fatalf("a failed SetValue(%q, %q) changed the config", key, value)
			}
			return
		}
		if !bytes.Equal(bytes.TrimSpace(value), []byte("null")) {
			if _, err := c.Value(key); err != nil {
				t.Fatalf("SetValue(%q, %q) worked but Value: %v", key, value, err)
			}
		}
	})
}
