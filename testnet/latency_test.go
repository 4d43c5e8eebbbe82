package testnet

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestParseLatency(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sym3 := [][]time.Duration{{0, 5 * ms, 40 * ms}, {5 * ms, 0, 40 * ms}, {40 * ms, 40 * ms, 0}}
	for _, tc := range []struct {
		name, spec string
		n          int
		want       [][]time.Duration
	}{
		{"inline ms", "0,5,40;5,0,40;40,40,0", 3, sym3},
		{"inline durations and spaces", " 0, 5ms ,0.04s; 5,0,40ms ;40ms,40,0 ", 3, sym3},
		{"inline trailing semicolon", "0,5,40;5,0,40;40,40,0;", 3, sym3},
		{"inline fractional ms", "0,0.5;1.5,0", 2, [][]time.Duration{{0, 500 * time.Microsecond}, {1500 * time.Microsecond, 0}}},
		{"inline asymmetric", "0,1;2,0", 2, [][]time.Duration{{0, ms}, {2 * ms, 0}}},
		{"one node", "0", 1, [][]time.Duration{{0}}},
		{"regions", "regions=1,1,2,2,3:2ms/40ms", 5, [][]time.Duration{
			{0, 2 * ms, 40 * ms, 40 * ms, 40 * ms},
			{2 * ms, 0, 40 * ms, 40 * ms, 40 * ms},
			{40 * ms, 40 * ms, 0, 2 * ms, 40 * ms},
			{40 * ms, 40 * ms, 2 * ms, 0, 40 * ms},
			{40 * ms, 40 * ms, 40 * ms, 40 * ms, 0},
		}},
		{"regions by name, bare ms", "regions=eu,us,eu:1/30", 3, [][]time.Duration{{0, 30 * ms, ms}, {30 * ms, 0, 30 * ms}, {ms, 30 * ms, 0}}},
		{"inline JSON", "[[0,5,40],[5,0,40],[40,40,0]]", 3, sym3},
		{"JSON file of ms", write("ms.json", "[[0,5,40],\n [5,0,40],\n [40,40,0]]\n"), 3, sym3},
		{"JSON file of durations", write("d.json", `[["0s","5ms","40ms"],["5ms","0","0.04s"],["40ms","40ms","0"]]`), 3, sym3},
		{"JSON file, mixed", write("mixed", `[[0,"5ms",40],[5,0,"40ms"],["40ms",40,0]]`), 3, sym3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLatency(tc.spec, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseLatencyErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, spec string
		n          int
		want       string // in the error
	}{
		{"empty", "", 3, "empty spec"},
		{"no nodes", "0", 0, "at least one node"},
		{"too few rows", "0,1;1,0", 3, "2 rows for 3 nodes"},
		{"too many rows", "0,1;1,0;0,0", 2, "3 rows for 2 nodes"},
		{"short row", "0,1,1;1,0;1,1,0", 3, "row 2 has 2 entries for 3 nodes"},
		{"long row", "0,1;1,0,3", 2, "row 2 has 3 entries for 2 nodes"},
		{"negative ms", "0,-1;1,0", 2, "row 1 column 2: negative delay"},
		{"negative duration", "0,1;-5ms,0", 2, "row 2 column 1: negative delay"},
		{"negative diagonal", "-1,1;1,0", 2, "negative delay"},
		{"bad number", "0,x;1,0", 2, `row 1 column 2: bad delay "x"`},
		{"bad unit", "0,5parsecs;1,0", 2, "bad delay"},
		{"empty entry", "0,;1,0", 2, "row 1 column 2: empty delay"},
		{"NaN", "0,NaN;1,0", 2, "bad delay"},
		{"too large", "0,1e9;1,0", 2, "is over 1h"},
		{"too large duration", "0,2h;1,0", 2, "is over 1h"},
		{"regions without delays", "regions=1,1,2", 3, "needs ':'"},
		{"regions with one delay", "regions=1,1,2:40ms", 3, "want SAME/OTHER"},
		{"regions count", "regions=1,1:2/40", 3, "2 regions for 3 nodes"},
		{"regions empty name", "regions=1,,2:2/40", 3, "node 2 has no region"},
		{"regions negative", "regions=1,1,2:-2/40", 3, "same-region negative delay"},
		{"regions bad other", "regions=1,1,2:2/far", 3, `other-region bad delay "far"`},
		{"JSON not a matrix", "[1,2]", 2, "want a JSON array of arrays"},
		{"JSON rows", "[[0,1],[1,0]]", 3, "2 rows for 3 nodes"},
		{"JSON row length", "[[0,1],[1]]", 2, "row 2 has 1 entries"},
		{"JSON negative", `[[0,1],["-3ms",0]]`, 2, "row 2 column 1: negative delay"},
		{"JSON object cell", `[[0,{}],[1,0]]`, 2, "row 1 column 2: {} is not a number"},
		{"missing file", filepath.Join(dir, "none.json"), 2, "no such file"},
		{"file of garbage", write("bad.json", "0,1;1,0"), 2, "bad.json: want a JSON array"},
		{"file wrong size", write("small.json", "[[0]]"), 2, "small.json: 1 rows for 2 nodes"},
		{"directory", dir + "/", 2, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseLatency(tc.spec, tc.n)
			if err == nil {
				t.Fatalf("accepted: %v", m)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, "latency: ") || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line starting with \"latency: \" containing %q", msg, tc.want)
			}
		})
	}
}

func TestLatencyConfig(t *testing.T) {
	nodes := []Node{{Index: 1, Peer: "A"}, {Index: 2, Peer: "B"}, {Index: 3, Peer: "C"}}
	m := [][]time.Duration{{7 * ms, 2 * ms, 60 * ms}, {2 * ms, 0, 0}, {0, 0, 0}}
	for i, want := range []map[string]string{
		{"B": "2ms", "C": "60ms"}, // the diagonal is ignored
		{"A": "2ms"},
		nil, // no delay at all
	} {
		if got := latencyConfig(nodes, m, i); !reflect.DeepEqual(got, want) {
			t.Errorf("node %d: %v, want %v", i+1, got, want)
		}
	}
	if got := latencyConfig(nodes, nil, 0); got != nil {
		t.Errorf("no matrix: %v", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string // "" is valid
	}{
		{Options{N: 2, Dir: "d", Latency: [][]time.Duration{{0, ms}, {ms, 0}}, NoStore: []int{2}}, ""},
		{Options{N: 2, Dir: "d", Latency: [][]time.Duration{{0, ms}}}, "1 rows for 2 nodes"},
		{Options{N: 2, Dir: "d", Latency: [][]time.Duration{{0, ms}, {ms}}}, "row 2 has 1 entries"},
		{Options{N: 2, Dir: "d", Latency: [][]time.Duration{{0, -ms}, {ms, 0}}}, "negative delay"},
		{Options{N: 2, Dir: "d", NoStore: []int{3}}, "no node 3"},
		{Options{N: 2, Dir: "d", NoStore: []int{0}}, "no node 0"},
		{Options{N: 0, Dir: "d"}, "at least one node"},
	} {
		err := tc.o.validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

func FuzzParseLatency(f *testing.F) {
	for _, s := range []string{
		"0,5,40;5,0,40;40,40,0", "0,1ms;2.5,0", "regions=1,1,2:2ms/40ms", "regions=a,b:1/2",
		`[[0,5],["5ms",0]]`, "[[0]]", "0", "0,-1;1,0", "1e400", "NaN", ";;", "regions=:/",
	} {
		f.Add(s, 2)
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, spec string, n int) {
		if n > 64 || isLatencyFile(strings.TrimSpace(spec)) {
			t.Skip() // files are another test's business
		}
		m, err := ParseLatency(spec, n)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("%q: error of several lines: %q", spec, err)
			}
			return
		}
		if len(m) != n {
			t.Fatalf("%q n=%d: %d rows", spec, n, len(m))
		}
		for i, row := range m {
			if len(row) != n {
				t.Fatalf("%q n=%d: row %d has %d entries", spec, n, i+1, len(row))
			}
			for j, d := range row {
				if d < 0 || d > MaxLatency {
					t.Fatalf("%q: m[%d][%d] = %v", spec, i, j, d)
				}
			}
		}
	})
}
