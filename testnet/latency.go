package testnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// LatencySyntax documents ParseLatency's spec (the CLI's --latency help).
const LatencySyntax = `one-way delays between nodes; a delay is a number of milliseconds (40, 0.5) or a Go duration (40ms, 1.5s):
  inline matrix: rows split by ';', entries by ',': row I column J is the delay from node I to node J (diagonal ignored), e.g. "0,5,40;5,0,40;40,40,0"
  regions:       regions=R1,...,RN:SAME/OTHER puts node I in region RI; SAME is the delay within a region, OTHER between regions, e.g. "regions=1,1,2,2,3:2ms/40ms"
  JSON file:     a path (holding a '/', ending in .json, or an existing file) to an N×N JSON array of numbers (ms) or duration strings; an inline JSON array ("[[0,5],[5,0]]") works too`

// MaxLatency bounds a delay in a latency spec: a larger one is a typo.
const MaxLatency = time.Hour

// maxLatencyFile bounds the latency file ParseLatency reads.
const maxLatencyFile = 1 << 20

// ParseLatency parses a latency spec (see LatencySyntax) for n nodes into an
// n×n matrix: m[i][j] is the one-way delay from node i+1 to node j+1, as
// Options.Latency wants it. Errors are one line.
func ParseLatency(spec string, n int) ([][]time.Duration, error) {
	if n < 1 {
		return nil, errors.New("latency: a testnet needs at least one node")
	}
	spec = strings.TrimSpace(spec)
	var m [][]time.Duration
	var err error
	switch {
	case spec == "":
		err = errors.New("empty spec")
	case strings.HasPrefix(spec, "regions="):
		m, err = parseRegions(strings.TrimPrefix(spec, "regions="), n)
	case strings.HasPrefix(spec, "["):
		m, err = parseLatencyJSON([]byte(spec), n)
	case isLatencyFile(spec):
		var b []byte
		if b, err = readLatencyFile(spec); err == nil {
			if m, err = parseLatencyJSON(b, n); err != nil {
				err = fmt.Errorf("%s: %v", spec, err)
			}
		}
	default:
		m, err = parseInline(spec, n)
	}
	if err != nil {
		return nil, fmt.Errorf("latency: %v", err)
	}
	return m, nil
}

// isLatencyFile: spec names a file rather than an inline matrix (which
// never holds a '/' or ends in .json).
func isLatencyFile(spec string) bool {
	if strings.Contains(spec, "/") || strings.HasSuffix(spec, ".json") {
		return true
	}
	fi, err := os.Stat(spec)
	return err == nil && fi.Mode().IsRegular()
}

func readLatencyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLatencyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxLatencyFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxLatencyFile)
	}
	return b, nil
}

// parseDelay parses one delay: bare numbers are milliseconds.
func parseDelay(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty delay")
	}
	var d time.Duration
	if ms, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(ms) {
			return 0, fmt.Errorf("bad delay %q", s)
		}
		if ms < 0 {
			return 0, fmt.Errorf("negative delay %q", s)
		}
		if ms > float64(MaxLatency/time.Millisecond) {
			return 0, fmt.Errorf("delay %q is over %v", s, MaxLatency)
		}
		d = time.Duration(ms * float64(time.Millisecond))
	} else {
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("bad delay %q (want milliseconds like 40 or a duration like 40ms)", s)
		}
		if d < 0 {
			return 0, fmt.Errorf("negative delay %q", s)
		}
		if d > MaxLatency {
			return 0, fmt.Errorf("delay %q is over %v", s, MaxLatency)
		}
	}
	return d, nil
}

// parseInline parses "0,5,40;5,0,40;40,40,0".
func parseInline(spec string, n int) ([][]time.Duration, error) {
	rows := strings.Split(strings.TrimSuffix(spec, ";"), ";")
	if len(rows) != n {
		return nil, fmt.Errorf("%d rows for %d nodes (rows are split by ';')", len(rows), n)
	}
	m := make([][]time.Duration, n)
	for i, row := range rows {
		cells := strings.Split(row, ",")
		if len(cells) != n {
			return nil, fmt.Errorf("row %d has %d entries for %d nodes (entries are split by ',')", i+1, len(cells), n)
		}
		m[i] = make([]time.Duration, n)
		for j, c := range cells {
			d, err := parseDelay(c)
			if err != nil {
				return nil, fmt.Errorf("row %d column %d: %v", i+1, j+1, err)
			}
			m[i][j] = d
		}
	}
	return m, nil
}

// parseRegions parses "1,1,2,2,3:2ms/40ms" (after "regions=").
func parseRegions(spec string, n int) ([][]time.Duration, error) {
	names, delays, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, errors.New("regions=R1,...,RN:SAME/OTHER needs ':' and the two delays")
	}
	same, other, ok := strings.Cut(delays, "/")
	if !ok {
		return nil, fmt.Errorf("regions: %q: want SAME/OTHER delays, e.g. 2ms/40ms", delays)
	}
	ds, err := parseDelay(same)
	if err != nil {
		return nil, fmt.Errorf("regions: same-region %v", err)
	}
	do, err := parseDelay(other)
	if err != nil {
		return nil, fmt.Errorf("regions: other-region %v", err)
	}
	region := strings.Split(names, ",")
	if len(region) != n {
		return nil, fmt.Errorf("regions: %d regions for %d nodes (one per node, split by ',')", len(region), n)
	}
	for i, r := range region {
		region[i] = strings.TrimSpace(r)
		if region[i] == "" {
			return nil, fmt.Errorf("regions: node %d has no region", i+1)
		}
	}
	m := make([][]time.Duration, n)
	for i := range m {
		m[i] = make([]time.Duration, n)
		for j := range m[i] {
			switch {
			case i == j:
			case region[i] == region[j]:
				m[i][j] = ds
			default:
				m[i][j] = do
			}
		}
	}
	return m, nil
}

// parseLatencyJSON parses an n×n JSON array of numbers (ms) or duration
// strings.
func parseLatencyJSON(b []byte, n int) ([][]time.Duration, error) {
	var raw [][]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("want a JSON array of arrays: %v", oneLine(err))
	}
	if len(raw) != n {
		return nil, fmt.Errorf("%d rows for %d nodes", len(raw), n)
	}
	m := make([][]time.Duration, n)
	for i, row := range raw {
		if len(row) != n {
			return nil, fmt.Errorf("row %d has %d entries for %d nodes", i+1, len(row), n)
		}
		m[i] = make([]time.Duration, n)
		for j, cell := range row {
			var s string
			var num json.Number
			if err := json.Unmarshal(cell, &s); err != nil {
				if err := json.Unmarshal(cell, &num); err != nil {
					return nil, fmt.Errorf("row %d column %d: %s is not a number or a duration string", i+1, j+1, oneLine(string(cell)))
				}
				s = num.String()
			}
			d, err := parseDelay(s)
			if err != nil {
				return nil, fmt.Errorf("row %d column %d: %v", i+1, j+1, err)
			}
			m[i][j] = d
		}
	}
	return m, nil
}

// oneLine keeps an error or a JSON fragment on one short line.
func oneLine(v any) string {
	s := strings.Join(strings.Fields(fmt.Sprint(v)), " ")
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}
