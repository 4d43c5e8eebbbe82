package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// applyCmds appends one entry holding cmds to f at index and returns its outcomes.
func applyCmds(tb testing.TB, f *FSM, index uint64, cmds ...Command) []outcome {
	tb.Helper()
	data, err := encodeEntry(cmds)
	if err != nil {
		tb.Fatal(err)
	}
	resp := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(applyResponse)
	if resp.err != nil {
		tb.Fatal(resp.err)
	}
	return resp.outs
}

func TestFSMApply(t *testing.T) {
	f := NewFSM()
	joined := time.Unix(1700000000, 5)
	tests := []struct {
		name  string
		cmd   Command
		check func(t *testing.T)
	}{
		{"put member", PutMember(Member{ID: "p1", Addrs: []string{"/ip4/1.2.3.4/tcp/1"}, Capacity: 100, Domain: "eu", Voter: true, Joined: joined}), func(t *testing.T) {
			m, ok := f.Member("p1")
			want := Member{ID: "p1", Addrs: []string{"/ip4/1.2.3.4/tcp/1"}, Capacity: 100, Domain: "eu", Voter: true, Joined: joined}
			if !ok || !reflect.DeepEqual(m, want) {
				t.Fatalf("member = %+v, %v; want %+v", m, ok, want)
			}
		}},
		{"update keeps joined and voter", PutMember(Member{ID: "p1", Addrs: []string{"/ip4/5.6.7.8/tcp/2"}, Capacity: 200}), func(t *testing.T) {
			m, _ := f.Member("p1")
			if !m.Joined.Equal(joined) || !m.Voter || m.Capacity != 200 || m.Addrs[0] != "/ip4/5.6.7.8/tcp/2" {
				t.Fatalf("member = %+v", m)
			}
		}},
		{"set usage", SetUsage("p1", 1000, 10), func(t *testing.T) {
			if m, _ := f.Member("p1"); m.Capacity != 1000 || m.Used != 10 {
				t.Fatalf("member = %+v", m)
			}
		}},
		{"add usage", AddUsage("p1", 5), func(t *testing.T) {
			if m, _ := f.Member("p1"); m.Used != 15 {
				t.Fatalf("used = %d", m.Used)
			}
		}},
		{"add usage clamps at zero", AddUsage("p1", -100), func(t *testing.T) {
			if m, _ := f.Member("p1"); m.Used != 0 {
				t.Fatalf("used = %d", m.Used)
			}
		}},
		{"set voter", SetVoter("p1", false), func(t *testing.T) {
			if m, _ := f.Member("p1"); m.Voter {
				t.Fatal("still a voter")
			}
		}},
		{"usage of unknown member is a no-op", AddUsage("nobody", 5), func(t *testing.T) {
			if f.IsMember("nobody") {
				t.Fatal("created a member")
			}
		}},
		{"put manifest", PutManifest("bafyroot", 1234, []byte("manifest")), func(t *testing.T) {
			m, ok := f.Manifest("bafyroot")
			if !ok || m.Size != 1234 || string(m.Data) != "manifest" || m.Root != "bafyroot" {
				t.Fatalf("manifest = %+v, %v", m, ok)
			}
			if s := f.Stats(); s.ManifestBytes != 8 || s.Manifests != 1 {
				t.Fatalf("stats = %+v", s)
			}
		}},
		{"replace manifest", PutManifest("bafyroot", 1, []byte("m2")), func(t *testing.T) {
			if s := f.Stats(); s.ManifestBytes != 2 || s.Manifests != 1 {
				t.Fatalf("stats = %+v", s)
			}
		}},
		{"pin", Pin("bafyroot"), func(t *testing.T) {
			if !f.Pinned("bafyroot") || len(f.Pins()) != 1 {
				t.Fatal("not pinned")
			}
		}},
		{"link", Link("/photos/a.jpg", "bafyroot"), func(t *testing.T) {
			if c, ok := f.Path("/photos/a.jpg"); !ok || c != "bafyroot" {
				t.Fatalf("path = %q, %v", c, ok)
			}
		}},
		{"batch", Batch(Link("/b", "c1"), Link("/c", "c2"), Unpin("bafyroot"), DeleteManifest("bafyroot")), func(t *testing.T) {
			if len(f.Tree()) != 3 || f.Pinned("bafyroot") {
				t.Fatalf("tree = %v", f.Tree())
			}
			if _, ok := f.Manifest("bafyroot"); ok || f.Stats().ManifestBytes != 0 {
				t.Fatal("manifest still there")
			}
		}},
		{"unlink", Unlink("/b"), func(t *testing.T) {
			if _, ok := f.Path("/b"); ok {
				t.Fatal("still linked")
			}
		}},
		{"remove member", RemoveMember("p1"), func(t *testing.T) {
			if f.IsMember("p1") || len(f.Members()) != 0 {
				t.Fatal("still a member")
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cmd.RequestID = NewRequestID()
			outs := applyCmds(t, f, uint64(i+1), tt.cmd)
			if outs[0].err != nil || outs[0].res.Index != uint64(i+1) || outs[0].res.Duplicate {
				t.Fatalf("outcome = %+v", outs[0])
			}
			tt.check(t)
		})
	}
	if s := f.Stats(); s.Commands != uint64(len(tests)) || s.AppliedIndex != uint64(len(tests)) {
		t.Fatalf("stats = %+v", s)
	}
}

func TestFSMDedup(t *testing.T) {
	f := NewFSM()
	applyCmds(t, f, 1, PutMember(Member{ID: "p"}))
	add := AddUsage("p", 10)
	add.RequestID = NewRequestID()
	first := applyCmds(t, f, 2, add)[0]
	again := applyCmds(t, f, 3, add)[0]
	if first.res != (Result{Index: 2}) || again.res != (Result{Index: 2, Duplicate: true}) {
		t.Fatalf("first %+v, again %+v", first, again)
	}
	if m, _ := f.Member("p"); m.Used != 10 {
		t.Fatalf("used = %d: applied twice", m.Used)
	}
	if ops := f.Stats().Ops; ops["add-usage"] != 1 || ops["put-member"] != 1 {
		t.Fatalf("ops = %v", ops)
	}
	// Without a RequestID nothing is deduplicated.
	add.RequestID = RequestID{}
	applyCmds(t, f, 4, add, add)
	if m, _ := f.Member("p"); m.Used != 30 {
		t.Fatalf("used = %d", m.Used)
	}
	// The window is bounded: the oldest id is forgotten first.
	ids := make([]RequestID, DedupWindow+1)
	cmds := make([]Command, len(ids))
	for i := range ids {
		ids[i] = NewRequestID()
		cmds[i] = Pin(fmt.Sprint(i))
		cmds[i].RequestID = ids[i]
	}
	applyCmds(t, f, 5, cmds...)
	if s := f.Stats(); s.DedupEntries != DedupWindow {
		t.Fatalf("dedup entries = %d", s.DedupEntries)
	}
	if _, ok := f.seen[add.RequestID]; ok {
		t.Fatal("zero id remembered")
	}
	if _, ok := f.seen[ids[0]]; ok {
		t.Fatal("oldest id not evicted")
	}
	if _, ok := f.seen[ids[len(ids)-1]]; !ok {
		t.Fatal("newest id missing")
	}
}

// An add sent again after its first attempt committed (a client retry
// across a failover: a new request id) puts the same manifest again: a
// no-op, not counted, and the manifest keeps its epoch. Other bytes under
// the root replace it.
func TestFSMSameManifestAgain(t *testing.T) {
	f := NewFSM()
	applyCmds(t, f, 1, Batch(PutManifest("root", 10, []byte("m1")), Pin("root")))
	applyCmds(t, f, 2, BeginRepair(ReasonLost, []string{"x"}, []Candidate{{ID: "y"}}, time.Unix(1, 0)))
	applyCmds(t, f, 3, Batch(PutManifest("root", 10, []byte("m1")), Pin("root")))
	m, ok := f.Manifest("root")
	if !ok || m.Epoch != 0 || string(m.Data) != "m1" {
		t.Fatalf("after the same manifest again: %+v, %v; want epoch 0", m, ok)
	}
	if s := f.Stats(); s.Ops["put-manifest"] != 1 || s.Manifests != 1 {
		t.Fatalf("ops %v, %d manifests: the same manifest counted twice", s.Ops, s.Manifests)
	}
	applyCmds(t, f, 4, PutManifest("root", 11, []byte("m2")))
	if m, _ := f.Manifest("root"); m.Epoch != 1 || string(m.Data) != "m2" || f.Stats().Ops["put-manifest"] != 2 {
		t.Fatalf("another manifest under the root: %+v, ops %v", m, f.Stats().Ops)
	}
}

func TestFSMBatchAtomic(t *testing.T) {
	f := NewFSM()
	bad := Batch(Link("/ok", "c"), Link("not/absolute", "c"))
	outs := applyCmds(t, f, 1, bad, Pin("x"))
	if !errors.Is(outs[0].err, ErrInvalidCommand) {
		t.Fatalf("err = %v", outs[0].err)
	}
	if outs[1].err != nil {
		t.Fatalf("independent command failed: %v", outs[1].err)
	}
	if _, ok := f.Path("/ok"); ok {
		t.Fatal("half of an invalid batch applied")
	}
	if !f.Pinned("x") {
		t.Fatal("independent command lost")
	}
}

func TestCommandValidate(t *testing.T) {
	long := string(make([]byte, MaxKeyLen+1))
	tests := []struct {
		cmd Command
		ok  bool
	}{
		{PutManifest("r", 1, nil), true},
		{PutManifest("", 1, nil), false},
		{PutManifest(long, 1, nil), false},
		{Link("/a/b", "c"), true},
		{Link("/a/../b", "c"), false},
		{Link("/a/", "c"), false},
		{Link("a", "c"), false},
		{Link("/a", ""), false},
		{Unlink("/"), true},
		{Batch(), false},
		{Batch(Batch(Pin("x"))), false},
		{Command{Op: 200, Key: "x"}, false},
		{Command{Key: "x"}, false},
		{Command{Op: OpPutMember, Key: "a", Member: Member{ID: "b"}}, false},
		{PutIPNS("/ipns/k", 1, time.Now(), []byte("r")), true},
		{PutIPNS("/ipns/", 1, time.Now(), []byte("r")), false},
		{PutIPNS("/ipfs/k", 1, time.Now(), []byte("r")), false},
		{PutIPNS("/ipns/k", 1, time.Now(), nil), false},
		{PutIPNS("/ipns/k", 1, time.Now(), make([]byte, MaxIPNSRecordSize)), true},
		{PutIPNS("/ipns/k", 1, time.Now(), make([]byte, MaxIPNSRecordSize+1)), false},
		{PutIPNS("/ipns/k", 1, time.Time{}, []byte("r")), true}, // year 1
		{PutIPNS("/ipns/k", 1, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), []byte("r")), false},
		{PutIPNS("/ipns/k", 1, time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), []byte("r")), false},
		{Batch(Pin("x"), PutIPNS("/ipns/k", 1, time.Now(), nil)), false},
		// the tree commands: absolute clean paths, names up to MaxNameLen,
		// never in a batch (they can be refused); Link and Unlink can
		{Mkdir("/a", false), true},
		{Mkdir("/", true), true}, // refused when applied, not here
		{Mkdir("a/b", true), false},
		{Mkdir("/a/", true), false},
		{Mkdir("/"+strings.Repeat("n", MaxNameLen), false), true},
		{Mkdir("/"+strings.Repeat("n", MaxNameLen+1), false), false},
		{Link("/"+strings.Repeat("n", MaxNameLen+1), "c"), true}, // the old rules
		{FilesLink("/a", "c", LinkInfo{}, false, false), true},
		{FilesLink("/a", "", LinkInfo{}, false, false), false},
		{FilesLink("/a/./b", "c", LinkInfo{}, false, false), false},
		{FilesMove("/a", "/b"), true},
		{FilesMove("/a", "b"), false},
		{FilesMove("/a", ""), false},
		{FilesMove("//a", "/b"), false},
		{FilesMove("/a", "/b/"+strings.Repeat("n", MaxNameLen+1)), false},
		{FilesRemove("/a", true), true},
		{FilesRemove("/a/..", true), false},
		{FilesCopy("/a", "/b", false), true},
		{FilesCopy("/", "/", true), true}, // refused when applied, not here
		{FilesCopy("/a", "b", true), false},
		{FilesCopy("/a", "", false), false},
		{FilesCopy("", "/b", false), false},
		{FilesCopy("/a/", "/b", false), false},
		{FilesCopy("/a", "/b/../c", false), false},
		{FilesCopy("/"+strings.Repeat("n", MaxNameLen), "/b/"+strings.Repeat("n", MaxNameLen), false), true},
		{FilesCopy("/"+strings.Repeat("n", MaxNameLen+1), "/b", false), false},
		{FilesCopy("/a", "/b/"+strings.Repeat("n", MaxNameLen+1), false), false},
		{FilesCopy("/a", "/"+strings.Repeat("b", MaxKeyLen), false), false},
		{Batch(Link("/a", "c"), Unlink("/b")), true},
		{Batch(Pin("x"), Mkdir("/a", true)), false},
		{Batch(FilesLink("/a", "c", LinkInfo{}, true, true)), false},
		{Batch(FilesMove("/a", "/b")), false},
		{Batch(FilesRemove("/a", true)), false},
		{Batch(FilesCopy("/a", "/b", true)), false},
	}
	for _, tt := range tests {
		err := tt.cmd.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s %q: err = %v, want ok=%v", tt.cmd.Op, tt.cmd.Key, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%v does not wrap ErrInvalidCommand", err)
		}
	}
}

func TestCommandRoundTrip(t *testing.T) {
	cmds := []Command{
		PutMember(Member{ID: "p", Addrs: []string{"/a", "/b"}, Capacity: 1 << 40, Used: 7, Domain: "d", Voter: true, Joined: time.Unix(5, 6)}),
		RemoveMember("p"), SetUsage("p", 1, 2), AddUsage("p", -9), SetVoter("p", true),
		PutManifest("r", 99, []byte{1, 2, 3}), DeleteManifest("r"), Pin("c"), Unpin("c"),
		Link("/x", "c"), Unlink("/x"), Batch(Pin("a"), Link("/y", "b")),
		PutIPNS("/ipns/\x00\x24name", 7, time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC), []byte("record")),
		Batch(Pin("a"), PutIPNS("/ipns/k", 1<<63, time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), []byte{0})),
		PutIPNS("/ipns/k", 0, time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), []byte{1}),
		Mkdir("/a/b", true), Mkdir("/a", false),
		FilesLink("/a/f", "bafkreif", LinkInfo{Type: 2, Size: 1 << 40, Tsize: 1<<40 + 99}, true, true),
		FilesLink("/a/g", "QmX", LinkInfo{}, false, false), FilesLink("/h", "c", LinkInfo{Type: 255}, false, true),
		FilesMove("/a", "/b/c"), FilesRemove("/a", true), FilesRemove("/a", false),
		FilesCopy("/a", "/b/c", true), FilesCopy("/a/b", "/c", false),
		BeginRepair(ReasonLost, []string{"p2", "p1"}, []Candidate{{ID: "q", Domain: "eu", Free: 1 << 40}, {ID: "a"}}, time.Unix(1800000000, 7)),
		BeginRepair(ReasonManual, []string{"p"}, nil, time.Time{}),
		EndRepair(3), EndRepair(0),
		ReportDamage([]Damage{{Holder: "h", Key: []byte("k1"), Block: "bafy", Coding: "16/20", Index: 65535}, {Holder: "g", Key: make([]byte, 64), Block: "b"}}),
		ClearDamage([]Damage{{Holder: "h", Key: []byte("k1")}}),
		Batch(Pin("a"), EndRepair(1), ReportDamage([]Damage{{Holder: "h", Key: []byte{0}, Block: "b", Index: 3}})),
	}
	for i := range cmds {
		cmds[i].RequestID = NewRequestID()
		b, err := cmds[i].MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Command
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%s: %v", cmds[i].Op, err)
		}
		if !commandsEqual(got, cmds[i]) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", cmds[i].Op, got, cmds[i])
		}
		if cmds[i].Op == OpPutIPNS && (!got.EOL.Equal(cmds[i].EOL) || got.Sequence != cmds[i].Sequence) {
			t.Errorf("put-ipns: EOL %v seq %d, want %v %d", got.EOL, got.Sequence, cmds[i].EOL, cmds[i].Sequence)
		}
		// the lowest version that holds the entry: 2 for put-ipns, 3 for
		// the tree commands, 4 for the repair commands
		want := byte(1)
		switch last := cmds[i]; {
		case last.Op == OpPutIPNS || (last.Op == OpBatch && last.Batch[len(last.Batch)-1].Op == OpPutIPNS):
			want = 2
		case last.Op.treeEdit():
			want = 3
		case last.Op.repair() || (last.Op == OpBatch && last.Batch[len(last.Batch)-1].Op.repair()):
			want = 4
		}
		if b[0] != want {
			t.Errorf("%s: entry version %d, want %d", cmds[i].Op, b[0], want)
		}
	}
	// A compact encoding: a pin with a request id is ~ op+flags+id+key.
	b, _ := cmds[7].MarshalBinary()
	if len(b) != 2+2+16+2 {
		t.Errorf("pin entry is %d bytes", len(b))
	}
}

// commandsEqual compares as the encoding does: nil and empty are equal,
// Member.ID is the Key, batch members carry no RequestID.
func commandsEqual(a, b Command) bool {
	ea, err1 := encodeEntry([]Command{a})
	eb, err2 := encodeEntry([]Command{b})
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}

func TestDecodeRejects(t *testing.T) {
	good, _ := PutManifest("r", 1, []byte("data")).MarshalBinary()
	cases := map[string][]byte{
		"empty":         nil,
		"version":       append([]byte{9}, good[1:]...),
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte{}, good...), 0),
		"zero commands": {entryVersion, 0},
		"huge count":    {entryVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"unknown op":    {entryVersion, 1, 99, 0, 1, 'k'},
		"bad flags":     {entryVersion, 1, byte(OpPin), 4, 1, 'k'},
		// put-ipns needs version 2, also inside a batch
		"put-ipns in v1":         {entryVersion1, 1, byte(OpPutIPNS), 0, 1, 'k', 1, 0, 0, 1, 'r'},
		"put-ipns in v1 batch":   {entryVersion1, 1, byte(OpBatch), 0, 1, byte(OpPutIPNS), 0, 1, 'k', 1, 0, 0, 1, 'r'},
		"put-ipns nanoseconds":   {entryVersion, 1, byte(OpPutIPNS), 0, 1, 'k', 1, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03, 1, 'r'},
		"put-ipns record length": {entryVersion, 1, byte(OpPutIPNS), 0, 1, 'k', 1, 0, 0, 0x81, 0x50, 'r'},
		// the tree commands need version 3, and known opts bits
		"mkdir in v2":           {entryVersion2, 1, byte(OpMkdir), 0, 2, '/', 'a', 1},
		"files-move in v1":      {entryVersion1, 1, byte(OpFilesMove), 0, 2, '/', 'a', 2, '/', 'b'},
		"mkdir opts":            {entryVersion, 1, byte(OpMkdir), 0, 2, '/', 'a', 2},
		"files-remove opts":     {entryVersion, 1, byte(OpFilesRemove), 0, 2, '/', 'a', 0x81},
		"files-link opts":       {entryVersion, 1, byte(OpFilesLink), 0, 2, '/', 'a', 1, 'c', 0, 0, 0, 4},
		"files-link truncated":  {entryVersion, 1, byte(OpFilesLink), 0, 2, '/', 'a', 1, 'c', 0, 0, 0},
		"files-link bad target": {entryVersion, 1, byte(OpFilesLink), 0, 2, '/', 'a', 0x81, 0x40},
		"files-copy in v2":      {entryVersion2, 1, byte(OpFilesCopy), 0, 2, '/', 'a', 2, '/', 'b', 1},
		"files-copy opts":       {entryVersion, 1, byte(OpFilesCopy), 0, 2, '/', 'a', 2, '/', 'b', 2},
		"files-copy truncated":  {entryVersion, 1, byte(OpFilesCopy), 0, 2, '/', 'a', 2, '/', 'b'},
		"op after clear-damage": {entryVersion, 1, byte(opCount), 0, 0, 1},
		// the repair commands need version 4, bounded counts, indices up to 65535
		"repair-end in v3":         {entryVersion3, 1, byte(OpRepairEnd), 0, 0, 1},
		"repair-begin in v3 batch": {entryVersion3, 1, byte(OpBatch), 0, 1, byte(OpRepairBegin), 0, 1, 'r', 0, 1, 1, 'p', 0},
		"repair-begin lost count":  {entryVersion, 1, byte(OpRepairBegin), 0, 1, 'r', 0, 0xff, 0xff, 0x03, 1, 'p', 0},
		"repair-begin truncated":   {entryVersion, 1, byte(OpRepairBegin), 0, 1, 'r', 0, 1, 1, 'p', 1, 1, 'q', 0},
		"report-damage count":      {entryVersion, 1, byte(OpReportDamage), 0, 0, 0x81, 0x20, 1, 'h', 1, 'k', 1, 'b', 0, 0},
		"report-damage index":      {entryVersion, 1, byte(OpReportDamage), 0, 0, 1, 1, 'h', 1, 'k', 1, 'b', 0, 0x80, 0x80, 0x04},
		"report-damage key length": {entryVersion, 1, byte(OpReportDamage), 0, 0, 1, 1, 'h', 65, 'k', 1, 'b', 0, 0},
		"clear-damage truncated":   {entryVersion, 1, byte(OpClearDamage), 0, 0, 2, 1, 'h', 1, 'k', 1, 'h'},
	}
	for name, b := range cases {
		if _, err := decodeEntry(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	for _, ok := range [][]byte{
		{entryVersion, 1, byte(OpPutIPNS), 0, 1, 'k', 1, 0, 0, 1, 'r'},
		{entryVersion2, 1, byte(OpPutIPNS), 0, 1, 'k', 1, 0, 0, 1, 'r'},
		{entryVersion, 1, byte(OpMkdir), 0, 2, '/', 'a', 1},
		{entryVersion, 1, byte(OpFilesRemove), 0, 2, '/', 'a', 1},
		{entryVersion, 1, byte(OpFilesLink), 0, 2, '/', 'a', 1, 'c', 0, 0, 0, 3},
		{entryVersion, 1, byte(OpFilesCopy), 0, 2, '/', 'a', 2, '/', 'b', 1},
		{entryVersion, 1, byte(OpFilesCopy), 0, 2, '/', 'a', 2, '/', 'b', 0},
		{entryVersion3, 1, byte(OpFilesCopy), 0, 2, '/', 'a', 2, '/', 'b', 0},
		{entryVersion, 1, byte(OpRepairEnd), 0, 0, 1},
		{entryVersion, 1, byte(OpBatch), 0, 1, byte(OpRepairBegin), 0, 1, 'r', 0, 1, 1, 'p', 0},
		{entryVersion, 1, byte(OpRepairBegin), 0, 1, 'r', 0, 1, 1, 'p', 1, 1, 'q', 0, 0},
		{entryVersion, 1, byte(OpReportDamage), 0, 0, 1, 1, 'h', 1, 'k', 1, 'b', 0, 0xff, 0xff, 0x03},
		{entryVersion, 1, byte(OpClearDamage), 0, 0, 2, 1, 'h', 1, 'k', 1, 'h', 1, 'j'},
	} {
		if _, err := decodeEntry(ok); err != nil {
			t.Errorf("a well-formed entry those cases break (%x): %v", ok, err)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	seeds := []Command{
		PutMember(Member{ID: "p", Addrs: []string{"/a"}, Joined: time.Unix(1, 0)}),
		PutManifest("r", 1, []byte("x")), Link("/a", "b"), AddUsage("p", -3),
		Batch(Pin("a"), Unpin("b"), SetVoter("p", true), SetUsage("p", 1, 2)),
		PutIPNS("/ipns/\x00\x24k", 3, time.Unix(1900000000, 5), []byte("record")),
		Batch(PutIPNS("/ipns/k", 1, time.Unix(-5, 0), []byte{0}), PutManifest("r", 1, nil)),
		Mkdir("/a/b", true), FilesLink("/a/b/c", "bafy", LinkInfo{Type: 1, Size: 300, Tsize: 1 << 33}, true, false),
		FilesMove("/a/b", "/d"), FilesRemove("/d", true), Batch(Link("/x/y", "c"), Unlink("/x")),
		FilesCopy("/a/b", "/d/e", true), FilesCopy("/a", "/b", false),
		BeginRepair(ReasonLost, []string{"p1", "p2"}, []Candidate{{ID: "a", Domain: "eu", Free: 1 << 33}, {ID: "b"}}, time.Unix(1800000000, 9)),
		EndRepair(1), ReportDamage([]Damage{{Holder: "h", Key: []byte("0123456789abcdefghij"), Block: "bafy", Coding: "16/20", Index: 19}}),
		ClearDamage([]Damage{{Holder: "h", Key: []byte("0123456789abcdefghij")}, {Holder: "g", Key: []byte{1}}}),
		Batch(BeginRepair(ReasonAudit, []string{"p"}, nil, time.Time{}), PutManifest("r", 1, nil), EndRepair(9),
			ReportDamage([]Damage{{Holder: "h", Key: []byte{2}, Block: "b"}})),
	}
	for _, c := range seeds {
		c.RequestID = NewRequestID()
		b, _ := c.MarshalBinary()
		f.Add(b)
	}
	// a whole session in one entry: the applied tree commands meet every refusal
	if b, err := encodeEntry([]Command{Mkdir("/a", false), Mkdir("/a", false), FilesLink("/a/f", "c", LinkInfo{}, false, false),
		FilesLink("/a/f/g", "c", LinkInfo{}, true, false), FilesMove("/a", "/a/f"), FilesMove("/a", "/b"), FilesRemove("/b", false),
		FilesRemove("/", true), Link("/b/f/x", "d"), Unlink("/b")}); err == nil {
		f.Add(b)
	}
	// copies meeting every refusal, then changes on both sides
	if b, err := encodeEntry([]Command{Mkdir("/a/b", true), FilesLink("/a/b/f", "c", LinkInfo{}, false, false),
		FilesCopy("/a", "/c", false), FilesCopy("/a", "/c", false), FilesCopy("/a", "/a/b/x", true), FilesCopy("/", "/x", true),
		FilesCopy("/x", "/y", true), FilesCopy("/a", "/a/b/f/g", true), FilesCopy("/a/b/f", "/n/m/f", false), FilesCopy("/a/b/f", "/n/m/f", true),
		FilesLink("/c/b/f", "d", LinkInfo{}, false, true), FilesRemove("/a/b", true), FilesMove("/c", "/a"), Link("/a/c/b/g", "e")}); err == nil {
		f.Add(b)
	}
	// a repair session in one entry: epochs around manifests, repeats, clears
	if b, err := encodeEntry([]Command{PutManifest("a", 1, nil), BeginRepair(ReasonLost, []string{"x"}, []Candidate{{ID: "y"}}, time.Unix(5, 0)),
		PutManifest("b", 2, nil), EndRepair(2), BeginRepair(ReasonManual, []string{"y", "z"}, nil, time.Unix(6, 0)), PutManifest("a", 3, nil),
		ReportDamage([]Damage{{Holder: "h", Key: []byte{1}, Block: "b"}, {Holder: "h", Key: []byte{1}, Block: "c", Index: 2}}),
		ClearDamage([]Damage{{Holder: "h", Key: []byte{2}}}), EndRepair(1)}); err == nil {
		f.Add(b)
	}
	for _, name := range []string{"testdata/entry-v1.bin", "testdata/entry-v2.bin", "testdata/entry-v3.bin"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cmds, err := decodeEntry(data)
		if err != nil {
			return
		}
		again, err := encodeEntry(cmds)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		cmds2, err := decodeEntry(again)
		if err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		third, _ := encodeEntry(cmds2)
		if !bytes.Equal(again, third) {
			t.Fatal("encoding is not stable")
		}
		// Whatever decodes must apply without panicking, the same way twice.
		fsm, fsm2 := NewFSM(), NewFSM()
		fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: again})
		fsm2.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
		if err := diffFSM(fsm, fsm2, true); err != nil {
			t.Fatal(err)
		}
	})
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func snapshotBytes(tb testing.TB, f *FSM) []byte {
	tb.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		tb.Fatal(err)
	}
	return sink.Bytes()
}

// fsmEqual compares every piece of replicated state.
func fsmEqual(tb testing.TB, a, b *FSM) {
	tb.Helper()
	if err := diffFSM(a, b, true); err != nil {
		tb.Fatal(err)
	}
}

// diffFSM describes the first difference between two FSMs' states; the
// applied index is compared only if withIndex.
func diffFSM(a, b *FSM, withIndex bool) error { return diffState(a, b, withIndex, true) }

// diffState is diffFSM, comparing the tree's revisions only if treeRevs.
func diffState(a, b *FSM, withIndex, treeRevs bool) error {
	sa, sb := a.Stats(), b.Stats()
	if !withIndex {
		sa.AppliedIndex, sb.AppliedIndex = 0, 0
	}
	if !reflect.DeepEqual(sa, sb) {
		return fmt.Errorf("stats differ:\n%+v\n%+v", sa, sb)
	}
	if ma, mb := a.Members(), b.Members(); !reflect.DeepEqual(ma, mb) {
		return fmt.Errorf("members differ:\n%+v\n%+v", ma, mb)
	}
	if !reflect.DeepEqual(a.Pins(), b.Pins()) {
		return fmt.Errorf("pins differ")
	}
	if ra, rb := a.TreeRev(), b.TreeRev(); treeRevs && ra != rb {
		return fmt.Errorf("tree revisions differ: %d, %d", ra, rb)
	}
	if ta, tb := treeDump(a, treeRevs), treeDump(b, treeRevs); !slices.Equal(ta, tb) {
		return fmt.Errorf("trees differ:\n%s\n--\n%s", strings.Join(ta, "\n"), strings.Join(tb, "\n"))
	}
	var err error
	if ea, eb := a.Epochs(), b.Epochs(); !epochsEqual(ea, eb) {
		return fmt.Errorf("repair epochs differ:\n%+v\n%+v", ea, eb)
	}
	if da, db := a.Damages(), b.Damages(); !reflect.DeepEqual(da, db) {
		return fmt.Errorf("damages differ:\n%+v\n%+v", da, db)
	}
	a.RangeManifests(func(m Manifest) bool {
		o, ok := b.Manifest(m.Root)
		if !ok || o.Size != m.Size || !bytes.Equal(o.Data, m.Data) || o.Epoch != m.Epoch {
			err = fmt.Errorf("manifest %s differs", m.Root)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	a.RangeIPNS(func(r IPNSRecord) bool {
		o, ok := b.IPNS(r.Name)
		if !ok || o.Sequence != r.Sequence || !o.EOL.Equal(r.EOL) || !bytes.Equal(o.Data, r.Data) {
			err = fmt.Errorf("IPNS record %q differs", r.Name)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(dedupOrder(a), dedupOrder(b)) {
		return fmt.Errorf("dedup tables differ")
	}
	return nil
}

func dedupOrder(f *FSM) []dedupEntry {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append(append([]dedupEntry{}, f.ring[f.head:]...), f.ring[:f.head]...)
}

func TestSnapshotRoundTripSmall(t *testing.T) {
	f := NewFSM()
	for i := range 100 {
		c := Batch(
			PutManifest(fmt.Sprintf("root%d", i), uint64(i), bytes.Repeat([]byte{byte(i)}, i)),
			Pin(fmt.Sprintf("pin%d", i)), Link(fmt.Sprintf("/dir/f%d", i), fmt.Sprintf("root%d", i)),
			PutMember(Member{ID: fmt.Sprintf("peer%d", i%7), Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, Joined: time.Unix(int64(i), 0), Domain: "x"}),
			PutIPNS(fmt.Sprintf("/ipns/name%d", i%10), uint64(i), time.Unix(1800000000, int64(i)), bytes.Repeat([]byte{byte(i)}, 1+i)),
		)
		c.RequestID = NewRequestID()
		applyCmds(t, f, uint64(i+1), c)
	}
	if r, ok := f.IPNS("/ipns/name3"); !ok || r.Sequence != 93 || len(r.Data) != 94 {
		t.Fatalf("ipns record = %+v, %v", r, ok)
	}
	b := snapshotBytes(t, f)
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	fsmEqual(t, f, g)
	if st := g.Stats(); st.IPNSRecords != 10 {
		t.Fatalf("IPNS records after restore: %d", st.IPNSRecords)
	}
	if ops := g.Stats().Ops; ops["batch"] != 100 || ops["put-manifest"] != 100 || ops["link"] != 100 || ops["put-ipns"] != 100 {
		t.Fatalf("op counts after restore: %v", ops)
	}
	// A dedup entry survives the snapshot.
	for id, idx := range f.seen {
		if g.seen[id] != idx {
			t.Fatal("dedup entry lost")
		}
		break
	}

	// Every single-byte corruption and every truncation is refused, and a
	// refused restore leaves the state alone.
	for i := 0; i < len(b); i += 1 + i/64 {
		bad := append([]byte{}, b...)
		bad[i] ^= 0x40
		if err := g.Restore(io.NopCloser(bytes.NewReader(bad))); err == nil {
			t.Fatalf("corruption at byte %d not detected", i)
		}
	}
	for _, n := range []int{0, 1, 9, len(b) / 2, len(b) - 1} {
		if err := g.Restore(io.NopCloser(bytes.NewReader(b[:n]))); err == nil {
			t.Fatalf("truncation to %d bytes not detected", n)
		}
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader(append(append([]byte{}, b...), 0)))); err == nil {
		t.Fatal("trailing byte not detected")
	}
	fsmEqual(t, f, g)
}

// Writes made while a snapshot is being persisted go to the overlay, are
// visible to readers at once, and are folded back in by Release.
func TestSnapshotCopyOnWrite(t *testing.T) {
	f := NewFSM()
	eol := time.Unix(1800000000, 0)
	applyCmds(t, f, 1, PutManifest("a", 1, []byte("A")), Link("/a", "a"), Pin("a"), PutIPNS("/ipns/a", 1, eol, []byte("A1")))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Snapshot(); err == nil {
		t.Fatal("second concurrent snapshot allowed")
	}
	applyCmds(t, f, 2, PutManifest("b", 2, []byte("B")), DeleteManifest("a"), Unlink("/a"), Link("/b", "b"), Unpin("a"), Pin("b"),
		PutIPNS("/ipns/a", 2, eol, []byte("A2")), PutIPNS("/ipns/b", 1, eol, []byte("B1")))
	if r, _ := f.IPNSRecord("/ipns/a"); string(r) != "A2" || f.Stats().IPNSRecords != 2 {
		t.Fatalf("IPNS during snapshot: %q, %d records", r, f.Stats().IPNSRecords)
	}
	if _, ok := f.Manifest("a"); ok {
		t.Fatal("deleted manifest visible")
	}
	if s := f.Stats(); s.Manifests != 1 || s.Paths != 1 || s.Pins != 1 {
		t.Fatalf("stats during snapshot = %+v", s)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if f.frozen || f.manifests.over != nil {
		t.Fatal("not thawed")
	}
	if _, ok := f.Manifest("b"); !ok || f.Stats().Manifests != 1 || len(f.manifests.base) != 1 {
		t.Fatal("overlay not folded back")
	}
	if r, _ := f.IPNSRecord("/ipns/a"); string(r) != "A2" || len(f.ipns.base) != 2 || f.ipns.over != nil {
		t.Fatal("IPNS overlay not folded back")
	}
	// The snapshot holds the state as of index 1.
	g := NewFSM()
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Manifest("a"); !ok || g.AppliedIndex() != 1 || !g.Pinned("a") {
		t.Fatalf("snapshot content wrong: %+v", g.Stats())
	}
	if r, _ := g.IPNSRecord("/ipns/a"); string(r) != "A1" || g.Stats().IPNSRecords != 1 {
		t.Fatalf("snapshot IPNS content wrong: %q", r)
	}
}

func FuzzReadSnapshot(f *testing.F) {
	fsm := NewFSM()
	c := Batch(PutManifest("r", 1, []byte("x")), Pin("p"), Link("/l", "r"), PutMember(Member{ID: "m", Addrs: []string{"/a"}}),
		PutIPNS("/ipns/n", 2, time.Unix(1800000000, 7), []byte("rec")))
	c.RequestID = NewRequestID()
	applyCmds(f, fsm, 1, c)
	f.Add(snapshotBytes(f, fsm))
	f.Add(snapshotBytes(f, NewFSM()))
	applyCmds(f, fsm, 2, Mkdir("/a/b/c", true), FilesLink("/a/b/f", "bafy", LinkInfo{Type: 2, Size: 5, Tsize: 9}, false, false),
		FilesMove("/l", "/a"))
	f.Add(snapshotBytes(f, fsm))
	applyCmds(f, fsm, 3, FilesCopy("/a", "/c", false), FilesLink("/c/b/g", "bafy", LinkInfo{}, false, false), FilesMove("/c/b", "/a/d"))
	f.Add(snapshotBytes(f, fsm)) // directories placed after their children's revisions, overlays
	applyCmds(f, fsm, 4, BeginRepair(ReasonLost, []string{"m", "n"}, []Candidate{{ID: "a", Domain: "eu", Free: 9}, {ID: "b"}}, time.Unix(1800000000, 3)),
		PutManifest("s", 2, []byte("y")), BeginRepair(ReasonAudit, []string{"a"}, nil, time.Time{}), EndRepair(1),
		ReportDamage([]Damage{{Holder: "h", Key: []byte("k"), Block: "bafy", Coding: "4/6", Index: 5}, {Holder: "g", Key: []byte{0}, Block: "c"}}))
	f.Add(snapshotBytes(f, fsm)) // epochs, damages, manifests of epoch 1
	for _, name := range []string{"testdata/snapshot-v1.bin", "testdata/snapshot-v2.bin", "testdata/snapshot-v3.bin", "testdata/snapshot-v4.bin"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := readSnapshot(bytes.NewReader(data), snapLimits{prealloc: 1 << 10})
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if _, err := writeSnapshot(&buf, st); err != nil {
			t.Fatal(err)
		}
		if _, err := readSnapshot(&buf, snapLimits{prealloc: 1 << 10}); err != nil {
			t.Fatalf("re-read: %v", err)
		}
	})
}

// fillManifests puts n manifests of ~size bytes into f, 4096 per entry.
func fillManifests(tb testing.TB, f *FSM, n, size int) {
	tb.Helper()
	data := bytes.Repeat([]byte{0xab}, size)
	idx := f.AppliedIndex()
	cmds := make([]Command, 0, 4096)
	for i := 0; i < n; i++ {
		// CIDv1 raw, base32: 59 characters, like a real root.
		cmds = append(cmds, PutManifest(fmt.Sprintf("bafkreig%052d", i), uint64(i)<<20, data))
		if len(cmds) == cap(cmds) || i == n-1 {
			idx++
			applyCmds(tb, f, idx, cmds...)
			cmds = cmds[:0]
		}
	}
}

func snapshotRoundTrip(tb testing.TB, n int) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapAlloc
	f := NewFSM()
	start := time.Now()
	fillManifests(tb, f, n, 64)
	fill := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap := ms.HeapAlloc - heap0

	start = time.Now()
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	freeze := time.Since(start)
	var sink memSink
	sink.Grow(n * 140)
	start = time.Now()
	if err := snap.Persist(&sink); err != nil {
		tb.Fatal(err)
	}
	persist := time.Since(start)
	snap.Release()
	size := sink.Len()

	g := NewFSM()
	start = time.Now()
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		tb.Fatal(err)
	}
	restore := time.Since(start)
	if !reflect.DeepEqual(g.Stats(), f.Stats()) {
		tb.Fatalf("stats differ after restore: %+v vs %+v", g.Stats(), f.Stats())
	}
	tb.Logf("%d manifests (64 B each): FSM heap %d MB (%.0f B/entry), fill %v, freeze %v, persist %v (%.0f MB/s), restore %v (%.0f MB/s), snapshot %d bytes (%.1f B/entry)",
		n, heap>>20, float64(heap)/float64(n), fill.Round(time.Millisecond), freeze, persist.Round(time.Millisecond), float64(size)/persist.Seconds()/1e6,
		restore.Round(time.Millisecond), float64(size)/restore.Seconds()/1e6, size, float64(size)/float64(n))
	if b, ok := tb.(*testing.B); ok {
		b.ReportMetric(persist.Seconds(), "persist-s")
		b.ReportMetric(restore.Seconds(), "restore-s")
		b.ReportMetric(float64(size), "snapshot-bytes")
		b.ReportMetric(float64(heap)/float64(n), "heap-B/entry")
	}
}

func TestSnapshotMillion(t *testing.T) {
	n := 1_000_000
	if raceEnabled || testing.Short() {
		n = 200_000 // the race detector slows map work ~10x
	}
	snapshotRoundTrip(t, n)
}

func BenchmarkSnapshot10M(b *testing.B) {
	for b.Loop() {
		snapshotRoundTrip(b, 10_000_000)
	}
}
