package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// epochsEqual compares epochs field by field, times by Equal.
func epochsEqual(a, b []Epoch) bool {
	return slices.EqualFunc(a, b, func(x, y Epoch) bool {
		return x.Seq == y.Seq && x.Reason == y.Reason && x.Done == y.Done && x.Begun.Equal(y.Begun) &&
			slices.Equal(x.Lost, y.Lost) && slices.Equal(x.Pool, y.Pool)
	})
}

// mustApply applies cmds as one entry at the next index and fails on any
// refusal.
func mustApply(tb testing.TB, f *FSM, cmds ...Command) {
	tb.Helper()
	for i, o := range applyCmds(tb, f, f.AppliedIndex()+1, cmds...) {
		if o.err != nil {
			tb.Fatalf("%s: %v", cmds[i].Op, o.err)
		}
	}
}

func manifestEpoch(tb testing.TB, f *FSM, root string) uint64 {
	tb.Helper()
	m, ok := f.Manifest(root)
	if !ok {
		tb.Fatalf("no manifest %s", root)
	}
	return m.Epoch
}

func TestRepairEpochs(t *testing.T) {
	f := NewFSM()
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	mustApply(t, f, PutManifest("a", 1, []byte("A")))
	if e := manifestEpoch(t, f, "a"); e != 0 || len(f.Epochs()) != 0 || f.EpochCount() != 0 {
		t.Fatalf("before any epoch: manifest epoch %d, epochs %v", e, f.Epochs())
	}

	// lost and pool are sorted by BeginRepair; Seq is assigned when applied
	lost := []string{"p3", "p1"}
	pool := []Candidate{{ID: "q2", Domain: "us", Free: 5}, {ID: "q1", Domain: "eu", Free: 1 << 40}}
	mustApply(t, f, BeginRepair(ReasonLost, lost, pool, t0))
	if lost[0] != "p3" || pool[0].ID != "q2" {
		t.Fatal("BeginRepair sorted the caller's slices")
	}
	mustApply(t, f, PutManifest("b", 2, []byte("B")))
	mustApply(t, f, BeginRepair(ReasonAudit, []string{"q2"}, nil, t0.Add(time.Hour)))
	mustApply(t, f, PutManifest("a", 3, []byte("A2")), PutManifest("c", 4, nil))

	want := []Epoch{
		{Seq: 1, Reason: ReasonLost, Lost: []string{"p1", "p3"}, Pool: []Candidate{{ID: "q1", Domain: "eu", Free: 1 << 40}, {ID: "q2", Domain: "us", Free: 5}}, Begun: t0},
		{Seq: 2, Reason: ReasonAudit, Lost: []string{"q2"}, Begun: t0.Add(time.Hour)},
	}
	if got := f.Epochs(); !epochsEqual(got, want) {
		t.Fatalf("epochs\n%+v\nwant\n%+v", got, want)
	}
	// a manifest put again gets the count of then
	for root, e := range map[string]uint64{"a": 2, "b": 1, "c": 2} {
		if got := manifestEpoch(t, f, root); got != e {
			t.Errorf("manifest %s of epoch %d, want %d", root, got, e)
		}
	}
	var ranged int
	f.RangeManifests(func(m Manifest) bool {
		ranged++
		if m.Epoch != manifestEpoch(t, f, m.Root) {
			t.Errorf("RangeManifests: %s of epoch %d", m.Root, m.Epoch)
		}
		return true
	})
	if ranged != 3 || f.EpochCount() != 2 {
		t.Fatalf("%d manifests ranged, %d epochs", ranged, f.EpochCount())
	}

	// Epochs returns copies
	got := f.Epochs()
	got[0].Lost[0], got[0].Pool[0].Free, got[1].Reason = "x", 0, "y"
	if !epochsEqual(f.Epochs(), want) {
		t.Fatal("Epochs shares its slices with the FSM")
	}

	done := func() []bool {
		var out []bool
		for _, e := range f.Epochs() {
			out = append(out, e.Done)
		}
		return out
	}
	for _, tt := range []struct {
		cmd  Command
		want []bool
	}{
		{EndRepair(0), []bool{false, false}},
		{EndRepair(1), []bool{true, false}},
		{EndRepair(0), []bool{true, false}}, // never undone
		{EndRepair(1 << 40), []bool{true, true}},
		// an EndRepair past the last epoch marks only what existed
		{BeginRepair(ReasonManual, []string{"p9"}, nil, t0), []bool{true, true, false}},
		{EndRepair(3), []bool{true, true, true}},
	} {
		mustApply(t, f, tt.cmd)
		if d := done(); !slices.Equal(d, tt.want) {
			t.Fatalf("after %s %d: done %v, want %v", tt.cmd.Op, tt.cmd.Sequence, d, tt.want)
		}
	}
	st := f.Stats()
	if st.Epochs != 3 || st.EpochsDone != 3 || st.Ops["repair-begin"] != 3 || st.Ops["repair-end"] != 5 {
		t.Fatalf("stats %+v", st)
	}

	// a retried BeginRepair (same RequestID) opens one epoch
	c := BeginRepair(ReasonLost, []string{"p7"}, nil, t0)
	c.RequestID = NewRequestID()
	outs := applyCmds(t, f, f.AppliedIndex()+1, c, c)
	if !outs[1].res.Duplicate || len(f.Epochs()) != 4 || f.Epochs()[3].Seq != 4 {
		t.Fatalf("retry: %+v, %d epochs", outs, len(f.Epochs()))
	}
	// and repair commands batch: the epoch is counted before the put after it
	mustApply(t, f, Batch(PutManifest("d", 1, nil), BeginRepair(ReasonLost, []string{"p8"}, nil, t0), PutManifest("e", 1, nil), EndRepair(5)))
	if d, e := manifestEpoch(t, f, "d"), manifestEpoch(t, f, "e"); d != 4 || e != 5 || !f.Epochs()[4].Done {
		t.Fatalf("batch: d of epoch %d, e of %d, epochs %+v", d, e, f.Epochs())
	}
}

func TestDamage(t *testing.T) {
	f := NewFSM()
	k := func(s string) []byte { return []byte(s) }
	ds := []Damage{
		{Holder: "h2", Key: k("k1"), Block: "b1", Coding: "16/20", Index: 3},
		{Holder: "h1", Key: k("k2"), Block: "b2", Coding: "16/20", Index: 4},
		{Holder: "h1", Key: k("k1"), Block: "b3", Coding: "4/6", Index: 0},
		{Holder: "h1", Key: k("k2"), Block: "b2", Coding: "16/20", Index: 5}, // the last report of a fragment wins
	}
	c := ReportDamage(ds)
	ds[0].Holder = "changed" // ReportDamage took its own copy of the list
	mustApply(t, f, c)
	want := []Damage{
		{Holder: "h1", Key: k("k1"), Block: "b3", Coding: "4/6", Index: 0},
		{Holder: "h1", Key: k("k2"), Block: "b2", Coding: "16/20", Index: 5},
		{Holder: "h2", Key: k("k1"), Block: "b1", Coding: "16/20", Index: 3},
	}
	if got := f.Damages(); !slicesEqualDamage(got, want) || f.DamageCount() != 3 {
		t.Fatalf("damages\n%+v\nwant\n%+v", got, want)
	}
	got := f.Damages()
	got[0].Key[0] = 'x'
	if !slicesEqualDamage(f.Damages(), want) {
		t.Fatal("Damages shares keys with the FSM")
	}

	// a repeat replaces; a clear needs only Holder and Key, ignores the absent
	mustApply(t, f, ReportDamage([]Damage{{Holder: "h2", Key: k("k1"), Block: "b1", Coding: "16/20", Index: 7}}))
	mustApply(t, f, ClearDamage([]Damage{{Holder: "h1", Key: k("k1")}, {Holder: "h1", Key: k("nope")}, {Holder: "h9", Key: k("k2")}}))
	want = []Damage{
		{Holder: "h1", Key: k("k2"), Block: "b2", Coding: "16/20", Index: 5},
		{Holder: "h2", Key: k("k1"), Block: "b1", Coding: "16/20", Index: 7},
	}
	if got := f.Damages(); !slicesEqualDamage(got, want) {
		t.Fatalf("damages\n%+v\nwant\n%+v", got, want)
	}
	// holders and keys never run into each other
	mustApply(t, f, ReportDamage([]Damage{{Holder: "h", Key: k("1k2"), Block: "b"}, {Holder: "h1", Key: k("k"), Block: "b"}}))
	if f.DamageCount() != 4 {
		t.Fatalf("%d damages", f.DamageCount())
	}
	mustApply(t, f, Batch(Pin("p"), ClearDamage([]Damage{{Holder: "h", Key: k("1k2")}, {Holder: "h1", Key: k("k")}, {Holder: "h1", Key: k("k2")}})))
	if st := f.Stats(); st.Damages != 1 || f.DamageCount() != 1 || st.Ops["report-damage"] != 3 || st.Ops["clear-damage"] != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func slicesEqualDamage(a, b []Damage) bool {
	return slices.EqualFunc(a, b, func(x, y Damage) bool {
		return x.Holder == y.Holder && bytes.Equal(x.Key, y.Key) && x.Block == y.Block && x.Coding == y.Coding && x.Index == y.Index
	})
}

func TestRepairValidate(t *testing.T) {
	at := time.Unix(1800000000, 0)
	long := strings.Repeat("x", MaxKeyLen+1)
	d := func(mod func(*Damage)) []Damage {
		x := Damage{Holder: "h", Key: make([]byte, 20), Block: "bafy", Coding: "16/20", Index: 19}
		mod(&x)
		return []Damage{x}
	}
	many := func(n int) []Damage {
		out := make([]Damage, n)
		for i := range out {
			out[i] = Damage{Holder: "h", Key: []byte{byte(i), byte(i >> 8)}, Block: "b"}
		}
		return out
	}
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("p%06d", i)
		}
		return out
	}
	tests := []struct {
		name string
		cmd  Command
		ok   bool
	}{
		{"begin", BeginRepair(ReasonLost, []string{"a", "b"}, []Candidate{{ID: "c"}, {ID: "d", Domain: "eu"}}, at), true},
		{"begin sorts", BeginRepair(ReasonLost, []string{"b", "a"}, []Candidate{{ID: "d"}, {ID: "c"}}, at), true},
		{"begin, empty pool, zero time", BeginRepair(ReasonManual, []string{"a"}, nil, time.Time{}), true},
		{"begin, other reason", BeginRepair(strings.Repeat("r", MaxReasonLen), []string{"a"}, nil, at), true},
		{"reason too long", BeginRepair(strings.Repeat("r", MaxReasonLen+1), []string{"a"}, nil, at), false},
		{"no reason", BeginRepair("", []string{"a"}, nil, at), false},
		{"no lost", BeginRepair(ReasonLost, nil, nil, at), false},
		{"lost twice", BeginRepair(ReasonLost, []string{"a", "a"}, nil, at), false},
		{"lost unsorted", Command{Op: OpRepairBegin, Key: ReasonLost, Lost: []string{"b", "a"}}, false},
		{"lost empty id", BeginRepair(ReasonLost, []string{""}, nil, at), false},
		{"lost long id", BeginRepair(ReasonLost, []string{long}, nil, at), false},
		{"lost at the bound", BeginRepair(ReasonLost, ids(MaxRepairMembers), nil, at), true},
		{"lost past the bound", BeginRepair(ReasonLost, ids(MaxRepairMembers+1), nil, at), false},
		{"pool twice", BeginRepair(ReasonLost, []string{"a"}, []Candidate{{ID: "c", Free: 1}, {ID: "c", Free: 2}}, at), false},
		{"pool unsorted", Command{Op: OpRepairBegin, Key: ReasonLost, Lost: []string{"a"}, Pool: []Candidate{{ID: "d"}, {ID: "c"}}}, false},
		{"pool empty id", BeginRepair(ReasonLost, []string{"a"}, []Candidate{{Domain: "eu"}}, at), false},
		{"pool long domain", BeginRepair(ReasonLost, []string{"a"}, []Candidate{{ID: "c", Domain: long}}, at), false},
		{"time past unix ns", BeginRepair(ReasonLost, []string{"a"}, nil, time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)), false},
		{"end", EndRepair(0), true},
		{"end with a key", Command{Op: OpRepairEnd, Key: "x", Sequence: 1}, false},
		{"report", ReportDamage(d(func(*Damage) {})), true},
		{"report at the bounds", ReportDamage(d(func(x *Damage) {
			x.Key, x.Coding, x.Index = make([]byte, MaxFragmentKeyLen), strings.Repeat("c", MaxCodingLen), MaxFragmentIndex
		})), true},
		{"report no coding", ReportDamage(d(func(x *Damage) { x.Coding = "" })), true},
		{"report nothing", ReportDamage(nil), false},
		{"report with a key", Command{Op: OpReportDamage, Key: "x", Damages: d(func(*Damage) {})}, false},
		{"report no holder", ReportDamage(d(func(x *Damage) { x.Holder = "" })), false},
		{"report long holder", ReportDamage(d(func(x *Damage) { x.Holder = long })), false},
		{"report no key", ReportDamage(d(func(x *Damage) { x.Key = nil })), false},
		{"report long key", ReportDamage(d(func(x *Damage) { x.Key = make([]byte, MaxFragmentKeyLen+1) })), false},
		{"report no block", ReportDamage(d(func(x *Damage) { x.Block = "" })), false},
		{"report long coding", ReportDamage(d(func(x *Damage) { x.Coding = strings.Repeat("c", MaxCodingLen+1) })), false},
		{"report index", ReportDamage(d(func(x *Damage) { x.Index = MaxFragmentIndex + 1 })), false},
		{"report negative index", ReportDamage(d(func(x *Damage) { x.Index = -1 })), false},
		{"report at the count bound", ReportDamage(many(MaxDamages)), true},
		{"report past the count bound", ReportDamage(many(MaxDamages + 1)), false},
		{"clear", ClearDamage([]Damage{{Holder: "h", Key: []byte{1}}}), true},
		{"clear ignores the rest", ClearDamage(d(func(x *Damage) { x.Block, x.Coding, x.Index = "", long, -5 })), true},
		{"clear no key", ClearDamage([]Damage{{Holder: "h"}}), false},
		{"clear nothing", ClearDamage(nil), false},
		{"clear past the count bound", ClearDamage(many(MaxDamages + 1)), false},
		{"in a batch", Batch(Pin("x"), EndRepair(1), BeginRepair(ReasonLost, []string{"a"}, nil, at), ReportDamage(d(func(*Damage) {})), ClearDamage(d(func(*Damage) {}))), true},
		{"invalid in a batch", Batch(Pin("x"), EndRepair(1), BeginRepair(ReasonLost, nil, nil, at)), false},
	}
	for _, tt := range tests {
		err := tt.cmd.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%s: %v does not wrap ErrInvalidCommand", tt.name, err)
		}
	}

	// the FSM refuses the same way, changing nothing
	f := NewFSM()
	outs := applyCmds(t, f, 1, Batch(EndRepair(1), BeginRepair(ReasonLost, []string{"a", "a"}, nil, at)),
		ReportDamage(d(func(x *Damage) { x.Block = "" })))
	if !errors.Is(outs[0].err, ErrInvalidCommand) || !errors.Is(outs[1].err, ErrInvalidCommand) {
		t.Fatalf("outcomes %+v", outs)
	}
	if len(f.Epochs()) != 0 || f.DamageCount() != 0 || f.Stats().Commands != 0 {
		t.Fatalf("a refused command changed the state: %+v", f.Stats())
	}
}

func TestRepairEncoding(t *testing.T) {
	at := time.Date(2031, 5, 6, 7, 8, 9, 10, time.UTC)
	full := make([]Damage, MaxDamages)
	for i := range full {
		full[i] = Damage{Holder: fmt.Sprintf("12D3KooW%044d", i%50), Key: bytes.Repeat([]byte{byte(i)}, 20), Block: "bafkreig" + strings.Repeat("a", 52), Coding: "16/20", Index: i % 20}
	}
	cmds := []Command{
		BeginRepair(ReasonLost, []string{"p1", "p2"}, []Candidate{{ID: "a", Domain: "eu", Free: 1<<64 - 1}, {ID: "b"}}, at),
		BeginRepair(ReasonManual, []string{"p"}, nil, time.Time{}),
		EndRepair(1<<64 - 1), EndRepair(0),
		ReportDamage([]Damage{{Holder: "h", Key: []byte{0, 1}, Block: "b", Coding: "c", Index: MaxFragmentIndex}}),
		ReportDamage(full), ClearDamage(full),
		ClearDamage([]Damage{{Holder: "h", Key: []byte{9}, Block: "dropped", Coding: "dropped", Index: 9}}),
		Batch(EndRepair(2), ReportDamage(full[:3]), BeginRepair(ReasonAudit, []string{"x"}, []Candidate{{ID: "y"}}, at)),
	}
	for i, c := range cmds {
		c.RequestID = NewRequestID()
		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != entryVersion {
			t.Errorf("command %d: entry version %d", i, b[0])
		}
		var got Command
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		if !commandsEqual(got, c) || got.RequestID != c.RequestID {
			t.Errorf("command %d: round trip\n got %+v\nwant %+v", i, got, c)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("command %d: decoded, it is invalid: %v", i, err)
		}
		switch c.Op {
		case OpRepairBegin:
			if !got.At.Equal(c.At) || !slices.Equal(got.Lost, c.Lost) || !slices.Equal(got.Pool, c.Pool) || got.Key != c.Key {
				t.Errorf("command %d: %+v", i, got)
			}
		case OpReportDamage:
			if !slicesEqualDamage(got.Damages, c.Damages) {
				t.Errorf("command %d: damages differ", i)
			}
		case OpClearDamage:
			// only Holder and Key travel
			for j, d := range got.Damages {
				if d.Holder != c.Damages[j].Holder || !bytes.Equal(d.Key, c.Damages[j].Key) || d.Block != "" || d.Coding != "" || d.Index != 0 {
					t.Errorf("command %d: clear %d = %+v", i, j, d)
				}
			}
		}
		if c.Op == OpReportDamage && len(c.Damages) == MaxDamages {
			t.Logf("a report of %d damages: %d bytes (%.0f B each)", MaxDamages, len(b), float64(len(b))/MaxDamages)
		}
	}
	// A decoded key is the decoder's own: the entry's buffer may be reused.
	b, _ := ReportDamage([]Damage{{Holder: "h", Key: []byte("key"), Block: "b"}}).MarshalBinary()
	var got Command
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if string(got.Damages[0].Key) != "key" {
		t.Fatal("a decoded key aliases the entry")
	}

	// The decoder keeps the bounds Validate keeps, whatever the writer did.
	over := []Command{
		{Op: OpReportDamage, Damages: append(slices.Clone(full), full[0])},
		{Op: OpClearDamage, Damages: append(slices.Clone(full), full[0])},
		{Op: OpRepairBegin, Key: "r", Lost: make([]string, MaxRepairMembers+1)},
		{Op: OpRepairBegin, Key: "r", Lost: []string{"a"}, Pool: make([]Candidate, MaxRepairMembers+1)},
		{Op: OpReportDamage, Damages: []Damage{{Holder: "h", Key: make([]byte, MaxFragmentKeyLen+1), Block: "b"}}},
		{Op: OpReportDamage, Damages: []Damage{{Holder: "h", Key: []byte{1}, Block: "b", Coding: strings.Repeat("c", MaxCodingLen+1)}}},
		{Op: OpReportDamage, Damages: []Damage{{Holder: "h", Key: []byte{1}, Block: "b", Index: MaxFragmentIndex + 1}}},
	}
	for i, c := range over {
		b, err := encodeEntry([]Command{c})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeEntry(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("over the bounds %d: err = %v", i, err)
		}
	}
}

// repairCmd is a random repair, damage or manifest command over a small
// space of names, for the concurrent snapshot test.
func repairCmd(r *rand.Rand, at time.Time, i int) Command {
	switch r.IntN(6) {
	case 0:
		lost := []string{fmt.Sprintf("p%d", r.IntN(50))}
		pool := make([]Candidate, r.IntN(20))
		for j := range pool {
			pool[j] = Candidate{ID: fmt.Sprintf("q%03d", j), Domain: "eu", Free: r.Uint64()}
		}
		return BeginRepair(ReasonLost, lost, pool, at.Add(time.Duration(i)*time.Second))
	case 1:
		return EndRepair(uint64(r.IntN(i + 1)))
	case 2:
		return PutManifest(fmt.Sprintf("root%d", r.IntN(2000)), uint64(i), []byte("m"))
	case 3:
		return ClearDamage([]Damage{{Holder: fmt.Sprintf("h%d", r.IntN(20)), Key: []byte{byte(r.IntN(256))}}})
	}
	ds := make([]Damage, 1+r.IntN(8))
	for j := range ds {
		ds[j] = Damage{Holder: fmt.Sprintf("h%d", r.IntN(20)), Key: []byte{byte(r.IntN(256))}, Block: fmt.Sprintf("b%d", i), Coding: "16/20", Index: r.IntN(20)}
	}
	return ReportDamage(ds)
}

// A snapshot persists while repair epochs begin and end, damages come and
// go and manifests are put (with new epochs) under it: it holds the state
// as frozen, the live state has every change, and after Release both
// agree with an FSM that never snapshotted. Run with -race.
func TestRepairSnapshotConcurrent(t *testing.T) {
	n := 20000
	if raceEnabled || testing.Short() {
		n = 4000
	}
	at := time.Unix(1800000000, 0)
	r := rand.New(rand.NewPCG(3, 4))
	f, ref, frozenRef := NewFSM(), NewFSM(), NewFSM()
	var build []Command
	for i := range n {
		build = append(build, repairCmd(r, at, i))
	}
	for _, g := range []*FSM{f, ref, frozenRef} {
		mustApply(t, g, build...)
	}
	if st := f.Stats(); st.Epochs == 0 || st.Damages == 0 || st.EpochsDone == 0 {
		t.Fatalf("a poor start: %+v", st)
	}

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	done := make(chan error, 1)
	go func() { done <- snap.Persist(&sink) }()
	changes := 0
	for persisting := true; persisting || changes < 2000; changes++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			persisting = false
		default:
		}
		c := repairCmd(r, at, n+changes)
		mustApply(t, f, c)
		mustApply(t, ref, c)
		// readers meanwhile
		if changes%100 == 0 && (len(f.Epochs()) != int(f.EpochCount()) || len(f.Damages()) != f.DamageCount()) {
			t.Fatal("readers disagree")
		}
	}
	fsmEqual(t, f, ref)
	snap.Release()
	fsmEqual(t, f, ref)
	if f.damages.over != nil || len(f.damages.base) != f.DamageCount() {
		t.Fatal("damages not thawed")
	}

	g := NewFSM()
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	fsmEqual(t, frozenRef, g)
	h := NewFSM()
	if err := h.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	fsmEqual(t, f, h)
	t.Logf("%d changes while persisting: %d -> %d epochs, %d -> %d damages", changes,
		frozenRef.Stats().Epochs, f.Stats().Epochs, frozenRef.DamageCount(), f.DamageCount())
}

// The repair state survives a snapshot, and a corrupt one is refused.
func TestRepairSnapshotRoundTrip(t *testing.T) {
	f := NewFSM()
	at := time.Date(2031, 1, 1, 0, 0, 0, 5, time.UTC)
	mustApply(t, f, PutManifest("a", 1, []byte("A")),
		BeginRepair(ReasonLost, []string{"p1", "p2"}, []Candidate{{ID: "q1", Domain: "eu", Free: 7}}, at),
		PutManifest("b", 1, []byte("B")), BeginRepair(ReasonManual, []string{"q1"}, nil, time.Time{}), EndRepair(1),
		ReportDamage([]Damage{{Holder: "h", Key: []byte{1, 2}, Block: "bafy", Coding: "16/20", Index: 65535}}))
	b := snapshotBytes(t, f)
	if b[len(snapMagic)] != 5 {
		t.Fatalf("snapshot version %d", b[len(snapMagic)])
	}
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	fsmEqual(t, f, g)
	if es := g.Epochs(); len(es) != 2 || !es[0].Done || es[1].Done || !es[0].Begun.Equal(at) || !es[1].Begun.IsZero() {
		t.Fatalf("epochs %+v", es)
	}
	if manifestEpoch(t, g, "a") != 0 || manifestEpoch(t, g, "b") != 1 {
		t.Fatal("manifest epochs lost")
	}
	// the next epoch continues the sequence
	mustApply(t, g, BeginRepair(ReasonLost, []string{"z"}, nil, at), PutManifest("c", 1, nil))
	if es := g.Epochs(); es[2].Seq != 3 || manifestEpoch(t, g, "c") != 3 {
		t.Fatalf("epochs %+v", es)
	}
	for i := 0; i < len(b); i++ {
		bad := append([]byte{}, b...)
		bad[i] ^= 0x10
		if err := g.Restore(io.NopCloser(bytes.NewReader(bad))); err == nil {
			t.Fatalf("corruption at byte %d not detected", i)
		}
	}
}
