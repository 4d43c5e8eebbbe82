package node

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fungistor/fungistor/consensus"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "100": 100, "100MB": 100e6, "50MiB/s": 50 << 20, "1.5GB": 1.5e9, " 64 KiB ": 64 << 10, "2kB": 2000} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "fast", "-1MB", "1e20GB", "MB", "NaN"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestRepairSettings(t *testing.T) {
	c := DefaultConfig()
	if _, err := c.Repair.settings(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []RepairConfig{{Grace: "soon"}, {Rate: "quick"}, {ScrubRate: "-3"}, {AuditInterval: "x"}, {AuditSample: -1}} {
		c.Repair = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "repair.") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	c.Repair = RepairConfig{Grace: "10s", Rate: "0", ScrubRate: "1MB"}
	s, err := c.Repair.settings()
	if err != nil || s.Grace.Seconds() != 10 || s.Rate != 0 || s.ScrubRate != 1e6 {
		t.Fatalf("%+v %v", s, err)
	}
}

// FuzzParseRate: any input is a rate or an error, never a panic or a
// negative rate.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"0", "100MB", "1.5GiB/s", "-1", "1e308", "NaN", "Inf MB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseRate(s); err == nil && v < 0 {
			t.Fatalf("ParseRate(%q) = %d", s, v)
		}
	})
}

// A node loss costs the replicated log one repair epoch whatever the
// number of objects: the lost ids and the live pool (and one small
// command when it is done). At 20 members of 52-byte peer ids it is
// about 1.5 KB.
func TestRepairEpochBytes(t *testing.T) {
	id := func(i int) string { return fmt.Sprintf("12D3KooW%044d", i) }
	var pool []consensus.Candidate
	for i := 4; i < 20; i++ {
		pool = append(pool, consensus.Candidate{ID: id(i), Domain: "", Free: 900 << 30})
	}
	begin, err := consensus.BeginRepair("lost", []string{id(0), id(1), id(2), id(3)}, pool, time.Now()).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	end, err := consensus.EndRepair(1).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("4 of 20 members lost: %d bytes to begin the repair epoch, %d to end it", len(begin), len(end))
	if len(begin)+len(end) > 2048 {
		t.Fatalf("a node loss costs %d bytes of metadata", len(begin)+len(end))
	}
}
