package testnet

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fungistor/fungistor/node"
)

func TestParseSetting(t *testing.T) {
	for _, tc := range []struct {
		arg   string
		check func(c node.Config) bool
	}{
		{"cluster.domain=x", func(c node.Config) bool { return c.Cluster.Domain == "x" }},
		{`cluster.domain="x y"`, func(c node.Config) bool { return c.Cluster.Domain == "x y" }},
		{"cluster.domain=2", func(c node.Config) bool { return c.Cluster.Domain == "2" }}, // JSON, but the key takes a string
		{"cluster.domain=a=b", func(c node.Config) bool { return c.Cluster.Domain == "a=b" }},
		{"cluster.voters=5", func(c node.Config) bool { return c.Cluster.Voters == 5 }},
		{"cluster.no_store=true", func(c node.Config) bool { return c.Cluster.NoStore }},
		{"gateway.listen=", func(c node.Config) bool { return c.Gateway.Listen == "" }},
		{"gateway.listen=0.0.0.0:9999", func(c node.Config) bool { return c.Gateway.Listen == "0.0.0.0:9999" }},
		{`gateway.public_gateways={"localhost": {"Paths": ["/ipfs"], "UseSubdomains": true}}`,
			func(c node.Config) bool { return c.Gateway.PublicGateways["localhost"].UseSubdomains }},
		{`p2p.bootstrap=["/ip4/127.0.0.1/tcp/1/p2p/12D3KooWLRPJAA5o6Z6Bbe1ZRDUjFhMh8vS6SYkjxY9odvTDRdqa"]`,
			func(c node.Config) bool { return len(c.P2P.Bootstrap) == 1 }},
	} {
		st, err := ParseSetting(tc.arg)
		if err != nil {
			t.Errorf("ParseSetting(%q): %v", tc.arg, err)
			continue
		}
		c := node.DefaultConfig()
		if err := st.apply(&c); err != nil || !tc.check(c) {
			t.Errorf("%q (%s): %v; config %+v", tc.arg, st, err, c)
		}
	}
	for _, tc := range []struct{ arg, want string }{
		{"cluster.domain", "want KEY=VALUE"},
		{"=x", "want KEY=VALUE"},
		{"gateway.lisen=x", `unknown key "gateway.lisen"`},
		{"cluster.voters=many", "cluster.voters is a number, not a string"},
		{"cluster.no_store=yes", "cluster.no_store is a bool, not a string"},
		{`gateway={"listen": "x:1", "bogus": 2}`, `unknown field "bogus"`},
		{"a..b=1", "empty name"},
	} {
		if _, err := ParseSetting(tc.arg); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseSetting(%q) = %v; want one line with %q", tc.arg, err, tc.want)
		}
	}
	// together they must leave a valid config
	if _, err := ParseSettings([]string{"cluster.voters=4"}); err == nil || err.Error() != "cluster.voters is 4: use 3 or 5" {
		t.Errorf("voters 4: %v", err)
	}
	if _, err := ParseSettings([]string{"gateway.listen=nowhere"}); err == nil || !strings.Contains(err.Error(), `gateway.listen "nowhere"`) {
		t.Errorf("gateway nowhere: %v", err)
	}
	sets, err := ParseSettings([]string{"zdb={}", `zdb={"data":"d","index":"i"}`})
	if err != nil || len(sets) != 2 {
		t.Errorf("a later setting repairs an earlier one: %v", err)
	}
	if o := (Options{N: 1, Dir: "x", Set: []Setting{{"cluster.voters", json.RawMessage("4")}}}); o.validate() == nil {
		t.Error("Options.validate took an invalid setting")
	}
}

// FuzzParseSetting: any argument parses or fails with one line; what
// parses applies to a node's config.
func FuzzParseSetting(f *testing.F) {
	for _, s := range []string{"cluster.domain=x", "cluster.voters=5", `gateway.public_gateways."a.b".Paths=["/ipfs"]`, "gateway.listen=", "x=y=z", "=", `p2p.listen.0="/ip4/1.2.3.4/tcp/1"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		st, err := ParseSetting(arg)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseSetting(%q): error of several lines: %v", arg, err)
			}
			return
		}
		if !json.Valid(st.Value) {
			t.Fatalf("ParseSetting(%q): value %q is not JSON", arg, st.Value)
		}
		c := node.DefaultConfig()
		if err := st.apply(&c); err != nil {
			t.Fatalf("ParseSetting(%q) took it, apply did not: %v", arg, err)
		}
	})
}
