package consensus

import (
	"errors"
	"testing"
	"time"
)

// The FSM keeps the better IPNS record by Kubo's rule (higher sequence,
// then later EOL; a tie keeps what is stored), whatever order they come in.
func TestFSMPutIPNS(t *testing.T) {
	f := NewFSM()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const name = "/ipns/\x00\x24key"
	steps := []struct {
		what string
		cmd  Command
		want string // the record kept afterwards
	}{
		{"first record", PutIPNS(name, 5, t0, []byte("s5")), "s5"},
		{"higher sequence replaces", PutIPNS(name, 6, t0.Add(-time.Hour), []byte("s6")), "s6"},
		{"lower sequence is ignored, even with a later EOL", PutIPNS(name, 5, t0.Add(time.Hour), []byte("s5 later")), "s6"},
		{"equal sequence, later EOL replaces", PutIPNS(name, 6, t0, []byte("s6 later")), "s6 later"},
		{"equal sequence, earlier EOL is ignored", PutIPNS(name, 6, t0.Add(-time.Minute), []byte("s6 earlier")), "s6 later"},
		{"a tie keeps the stored record", PutIPNS(name, 6, t0, []byte("s6 tie")), "s6 later"},
		{"one nanosecond later wins", PutIPNS(name, 6, t0.Add(time.Nanosecond), []byte("s6 +1ns")), "s6 +1ns"},
		{"the highest sequence there is", PutIPNS(name, 1<<64-1, t0.Add(-24*time.Hour), []byte("max")), "max"},
	}
	for i, s := range steps {
		s.cmd.RequestID = NewRequestID()
		out := applyCmds(t, f, uint64(i+1), s.cmd)[0]
		if out.err != nil || out.res.Duplicate {
			t.Fatalf("%s: %+v", s.what, out)
		}
		if got, ok := f.IPNSRecord(name); !ok || string(got) != s.want {
			t.Fatalf("%s: kept %q, want %q", s.what, got, s.want)
		}
	}
	r, _ := f.IPNS(name)
	if r.Name != name || r.Sequence != 1<<64-1 || !r.EOL.Equal(t0.Add(-24*time.Hour)) {
		t.Fatalf("record = %+v", r)
	}
	st := f.Stats()
	if st.IPNSRecords != 1 || st.Ops["put-ipns"] != uint64(len(steps)) {
		t.Fatalf("stats = %+v", st)
	}
	if _, ok := f.IPNSRecord("/ipns/other"); ok {
		t.Fatal("a record for a name never put")
	}

	// A retry with the same RequestID is not applied again, and a put in a
	// batch applies with the rest.
	g := NewFSM()
	put := PutIPNS(name, 1, t0, []byte("one"))
	put.RequestID = NewRequestID()
	applyCmds(t, g, 1, put)
	applyCmds(t, g, 2, PutIPNS(name, 2, t0, []byte("two")))
	if again := applyCmds(t, g, 3, put)[0]; !again.res.Duplicate || again.res.Index != 1 {
		t.Fatalf("retry = %+v", again)
	}
	applyCmds(t, g, 4, Batch(Pin("x"), PutIPNS("/ipns/b", 1, t0, []byte("b"))))
	if b, ok := g.IPNSRecord("/ipns/b"); !ok || string(b) != "b" || !g.Pinned("x") {
		t.Fatal("batch not applied")
	}
	if rec, _ := g.IPNSRecord(name); string(rec) != "two" {
		t.Fatalf("kept %q", rec)
	}

	// An invalid put is refused on every replica alike, and a batch
	// holding one is refused whole.
	outs := applyCmds(t, g, 5, PutIPNS("/ipfs/x", 9, t0, []byte("r")),
		Batch(Pin("y"), PutIPNS(name, 9, t0, nil)))
	for i, o := range outs {
		if !errors.Is(o.err, ErrInvalidCommand) {
			t.Errorf("invalid command %d: %+v", i, o)
		}
	}
	if g.Pinned("y") || g.Stats().IPNSRecords != 2 {
		t.Fatal("an invalid put changed the state")
	}
}

// The same puts in any order leave every replica the same record.
func TestFSMPutIPNSOrder(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	puts := []Command{
		PutIPNS("/ipns/k", 3, t0, []byte("a")),
		PutIPNS("/ipns/k", 4, t0, []byte("b")),
		PutIPNS("/ipns/k", 4, t0.Add(time.Second), []byte("c")),
		PutIPNS("/ipns/k", 2, t0.Add(time.Hour), []byte("d")),
	}
	perm := [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}, {1, 3, 0, 2}}
	for _, p := range perm {
		f := NewFSM()
		for i, j := range p {
			applyCmds(t, f, uint64(i+1), puts[j])
		}
		if rec, _ := f.IPNSRecord("/ipns/k"); string(rec) != "c" {
			t.Errorf("order %v kept %q, want c", p, rec)
		}
	}
}
