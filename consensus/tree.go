package consensus

import (
	"encoding/base32"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

// MaxNameLen bounds one element of a path of the shared tree.
const MaxNameLen = 255

// treeChangeRing is how many changes TreeChanges remembers.
const treeChangeRing = 4096

// TreeEntry is one entry of the shared tree.
type TreeEntry struct {
	Name     string // last path element; "" for "/"
	Dir      bool   // a directory of the tree (made by mkdir or -p); false: a link
	Target   string // link: the CID string as given
	Type     uint8  // link: what the proposer found the target to be (opaque here)
	Size     uint64 // link: content size (opaque here)
	Tsize    uint64 // link: cumulative DAG size (opaque here)
	Rev      uint64 // tree revision of the last change of this path (see FSM.TreeStat)
	Children int    // Dir: number of children
}

// LinkInfo is what the proposer of a FilesLink found its target to be.
// The FSM keeps it without reading it.
type LinkInfo struct {
	Type        uint8
	Size, Tsize uint64
}

// TreeChange says that Path's entry was created, replaced or removed at
// tree revision Rev (a removed or moved directory takes its subtree with
// it: the change is reported for its root only).
type TreeChange struct {
	Rev  uint64
	Path string
}

// Tree errors. Every refusal of a tree command, and every error of
// TreeList, matches ErrTreeConflict and exactly one of the others; its
// message is one line naming the path ("/a/b: parent /a is not a
// directory"). A refused command changes nothing. The refusal reaches the
// caller of Node.Apply on any node with its sentinels and message; it
// never matches ErrInvalidCommand and is not retried.
var (
	ErrTreeConflict = errors.New("consensus: tree conflict")
	ErrTreeExists   = errors.New("consensus: tree entry exists")
	ErrTreeNotFound = errors.New("consensus: tree entry not found")
	ErrTreeNotDir   = errors.New("consensus: tree entry is not a directory")
	ErrTreeNotEmpty = errors.New("consensus: tree entry is a directory")
	ErrTreeInvalid  = errors.New("consensus: invalid tree operation")
)

// treeKinds numbers the specific tree errors for the forward protocol.
// The numbers are part of the protocol: never renumber.
var treeKinds = [...]error{1: ErrTreeExists, 2: ErrTreeNotFound, 3: ErrTreeNotDir, 4: ErrTreeNotEmpty, 5: ErrTreeInvalid}

type treeError struct {
	kind error // one of treeKinds
	msg  string
}

func (e *treeError) Error() string   { return e.msg }
func (e *treeError) Unwrap() []error { return []error{ErrTreeConflict, e.kind} }

func treeErr(kind error, format string, args ...any) error {
	return &treeError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// treeKindOf returns err's number in treeKinds, 0 if err is no tree error.
func treeKindOf(err error) byte {
	var te *treeError
	if errors.As(err, &te) {
		for i, k := range treeKinds {
			if k != nil && k == te.kind {
				return byte(i)
			}
		}
	}
	return 0
}

// treeErrorOf rebuilds a tree error that crossed the forward protocol.
func treeErrorOf(kind byte, msg string) error {
	if int(kind) < len(treeKinds) && treeKinds[kind] != nil {
		return &treeError{kind: treeKinds[kind], msg: msg}
	}
	return &treeError{kind: ErrTreeConflict, msg: msg} // a kind newer than this build
}

// The tree is made of tnodes. A link holds its type and target in one
// string (see linkString); a directory holds a tdir. Names live only as
// map keys. 48 bytes per node.
//
// rev is the revision of the last change at or below the node. A
// directory also records at, the revision at which it was put where it
// is (made, moved or copied there): a moved or copied subtree keeps the
// revs of the nodes below its root, so moving and copying are O(1), and
// what readers see as an entry's Rev is the largest of its rev and the at
// of every directory on its path (see fileTree.lookup).
type tnode struct {
	rev, size, tsize uint64
	link             string // a link: see linkString; "" for a directory
	dir              *tdir  // a directory; nil for a link
}

// tdir is a directory's children. When kids may be shared with another
// directory (this one is a copy of one that a snapshot or a copy of the
// tree still holds), kids is read-only and changes go to over, which reads
// consult first: see fileTree. 32 bytes.
type tdir struct {
	kids map[string]*tnode
	over map[string]*tnode // nil: kids is this directory's own; a nil value: removed
	n    int               // children, while over is set
	at   uint64            // the revision at which the directory was put at its place
}

func newDir(rev uint64) *tnode {
	return &tnode{rev: rev, dir: &tdir{kids: make(map[string]*tnode), at: rev}}
}

func newLink(rev uint64, target string, info LinkInfo) *tnode {
	return &tnode{rev: rev, size: info.Size, tsize: info.Tsize, link: linkString(info.Type, target)}
}

// A link's string is its Type, then its target in one of two forms:
// linkPlain and the target as given, or linkBase32 and the bytes that a
// target "b" + unpadded lower-case base32 decodes to, when it encodes back
// to exactly that target. A CIDv1 as Kubo prints it is such a target, and
// its 59 characters take 36 bytes: the string fits 48 bytes of heap
// instead of 64.
const (
	linkPlain  = 0
	linkBase32 = 1
)

var base32Lower = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func linkString(typ uint8, target string) string {
	var b strings.Builder
	if raw, ok := compactTarget(target); ok {
		b.Grow(2 + len(raw))
		b.WriteByte(typ)
		b.WriteByte(linkBase32)
		b.Write(raw)
		return b.String()
	}
	b.Grow(2 + len(target))
	b.WriteByte(typ)
	b.WriteByte(linkPlain)
	b.WriteString(target)
	return b.String()
}

// compactTarget decodes a "b" + base32 target that encodes back exactly.
func compactTarget(target string) ([]byte, bool) {
	if len(target) < 2 || target[0] != 'b' {
		return nil, false
	}
	raw, err := base32Lower.DecodeString(target[1:])
	if err != nil {
		return nil, false
	}
	var buf [128]byte
	if string(base32Lower.AppendEncode(buf[:0], raw)) != target[1:] {
		return nil, false // not canonical (stray bits, newlines): kept as given
	}
	return raw, true
}

func (n *tnode) target() string {
	if n.link[1] == linkPlain {
		return n.link[2:]
	}
	raw := n.link[2:]
	b := make([]byte, 1, 1+base32Lower.EncodedLen(len(raw)))
	b[0] = 'b'
	return string(base32Lower.AppendEncode(b, []byte(raw)))
}

func (n *tnode) sameLink(target string, info LinkInfo) bool {
	return n.dir == nil && n.link[0] == info.Type && n.size == info.Size && n.tsize == info.Tsize && n.target() == target
}

// entry describes n, which reads as changed at rev (see lookup).
func (n *tnode) entry(name string, rev uint64) TreeEntry {
	e := TreeEntry{Name: name, Rev: rev}
	if n.dir != nil {
		e.Dir, e.Children = true, n.dir.len()
	} else {
		e.Target, e.Type, e.Size, e.Tsize = n.target(), n.link[0], n.size, n.tsize
	}
	return e
}

// count returns how many entries are below n.
func (n *tnode) count() int {
	total := 0
	stack := []*tnode{n}
	for len(stack) > 0 {
		d := stack[len(stack)-1].dir
		stack = stack[:len(stack)-1]
		if d == nil {
			continue
		}
		total += d.len()
		d.each(func(_ string, k *tnode) {
			if k.dir != nil {
				stack = append(stack, k)
			}
		})
	}
	return total
}

func (d *tdir) get(name string) *tnode {
	if d.over != nil {
		if n, ok := d.over[name]; ok {
			return n
		}
	}
	return d.kids[name]
}

func (d *tdir) len() int {
	if d.over != nil {
		return d.n
	}
	return len(d.kids)
}

// set adds or replaces a child. The name is copied: callers pass
// substrings of a command's path, which the map must not keep alive.
func (d *tdir) set(name string, n *tnode) {
	name = strings.Clone(name)
	if d.over == nil {
		d.kids[name] = n
		return
	}
	if d.get(name) == nil {
		d.n++
	}
	d.over[name] = n
	d.compact()
}

func (d *tdir) del(name string) {
	if d.over == nil {
		delete(d.kids, name)
		return
	}
	if d.get(name) != nil {
		d.n--
		d.over[strings.Clone(name)] = nil
		d.compact()
	}
}

// each calls fn for every child, in no order.
func (d *tdir) each(fn func(name string, n *tnode)) {
	for name, n := range d.kids {
		if d.over != nil {
			if _, shadowed := d.over[name]; shadowed {
				continue
			}
		}
		fn(name, n)
	}
	for name, n := range d.over {
		if n != nil {
			fn(name, n)
		}
	}
}

// fold moves the overlay into kids, which must be d's own.
func (d *tdir) fold() {
	for name, n := range d.over {
		if n != nil {
			d.kids[name] = n
		} else {
			delete(d.kids, name)
		}
	}
	d.over = nil
}

// compact gives d (changed: not shared) a children map of its own again
// once its overlay holds an eighth of its children: O(children), once per
// that many changes (a directory of 1M entries: ~50 ms, a clone of the
// map's memory then the overlay folded in). An overlay outlives a snapshot
// only when kids may be shared by a copy of the tree (see fileTree).
func (d *tdir) compact() {
	if d.over == nil || len(d.over) <= 32 || len(d.over) <= len(d.kids)/8 {
		return
	}
	d.kids = maps.Clone(d.kids) // copies the map's memory: no hashing
	d.fold()
}

// share returns a new directory with d's children, d's own kids map
// shared by both from now on (read-only: the caller seals d).
func (d *tdir) share(at uint64) *tdir {
	c := &tdir{kids: d.kids, over: maps.Clone(d.over), n: d.len(), at: at}
	if c.over == nil {
		c.over = make(map[string]*tnode)
	}
	return c
}

// fileTree is the shared tree: the FSM owns it and serializes every call
// (writes under its write lock, reads under its read lock).
//
// Nodes are shared, never changed, in two cases, both told by the node's
// rev in O(1):
//
//   - Snapshots: freeze hands the root to the snapshot in O(1). While it
//     persists, a node whose rev is at most frozenRev may be read by the
//     snapshot.
//   - Copies (FilesCopy): the copy of a directory is a new node sharing
//     the source's children, so every node below the source is then in
//     two places. The copy seals the tree: every node whose rev is at most
//     sealed (the revision before the last copy) may be in several places,
//     for good.
//
// own copies a shared node before a change, and the copy replaces it in
// its (owned) parent, so a change copies the nodes on its path once per
// snapshot or copy of the tree. A copied directory shares its children
// map with the original and records its changes in an overlay (see
// tdir.share), so the copy costs O(1), plus the original's overlay, even
// for a directory of millions of entries. thaw folds the overlays back in
// when only the snapshot shared the map; one that a copy of the tree may
// share is kept, and compacted into a map of the directory's own once it
// holds an eighth of the directory (tdir.compact). Nodes that nothing
// shares change in place. Links are never changed in place when shared:
// replacing one replaces the node.
type fileTree struct {
	root    *tnode
	rev     uint64 // the revision of the last change; 0: never changed
	entries int    // links and directories, the root not counted
	sealed  uint64 // nodes at revisions up to sealed may be shared by copies (0: none)

	frozen       bool
	frozenRev    uint64
	overlaid     []*tdir // directories copied during the snapshot whose kids only it shares
	copiedFrozen bool    // a copy was made during the snapshot

	changes []TreeChange // ring: the oldest at head once full
	head    int
	floor   uint64 // every change with Rev > floor is in the ring
}

func newFileTree() *fileTree { return &fileTree{root: newDir(0)} }

// walk follows p (absolute, clean) from the root as far as it exists. It
// returns the last node reached and where its path ends in p: p[:end] ("/"
// when end is 0). p exists when end == len(p); otherwise n is a link
// (p[:end] is not a directory) or the element after end is missing.
func (t *fileTree) walk(p string) (n *tnode, end int) {
	n = t.root
	if p == "/" {
		return n, len(p)
	}
	for end < len(p) && n.dir != nil {
		name, j := elem(p, end)
		c := n.dir.get(name)
		if c == nil {
			break
		}
		n, end = c, j
	}
	return n, end
}

// elem returns the path element after the slash at p[i] and where it ends.
func elem(p string, i int) (name string, end int) {
	j := strings.IndexByte(p[i+1:], '/')
	if j < 0 {
		return p[i+1:], len(p)
	}
	return p[i+1 : i+1+j], i + 1 + j
}

func prefix(p string, end int) string {
	if end == 0 {
		return "/"
	}
	return p[:end]
}

// lastSlash is where p's parent ends in p.
func lastSlash(p string) int { return strings.LastIndexByte(p, '/') }

func base(p string) string { return p[lastSlash(p)+1:] }

func parentOf(p string) string { return prefix(p, lastSlash(p)) }

// begin starts a change and returns its revision.
func (t *fileTree) begin() uint64 {
	t.rev++
	return t.rev
}

// shared reports whether a snapshot or a copy may share n.
func (t *fileTree) shared(n *tnode) bool {
	return t.copied(n) || (t.frozen && n.rev <= t.frozenRev)
}

// copied reports whether a copy of the tree may share n.
func (t *fileTree) copied(n *tnode) bool { return t.sealed > 0 && n.rev <= t.sealed }

// own returns n ready to be changed at rev: n itself, or a copy when a
// snapshot or a copy may share n (the caller puts the copy in n's place).
func (t *fileTree) own(n *tnode, rev uint64) *tnode {
	if !t.shared(n) {
		n.rev = rev
		return n
	}
	c := &tnode{rev: rev, size: n.size, tsize: n.tsize, link: n.link}
	if n.dir != nil {
		c.dir = n.dir.share(n.dir.at)
		if n.dir.over == nil && !t.copied(n) {
			// only the snapshot shares the map: it is c's at thaw
			t.overlaid = append(t.overlaid, c.dir)
		}
	}
	return c
}

// ownPath owns the root and every node of p[:end] (which must exist) at
// rev and returns the node at p[:end].
func (t *fileTree) ownPath(p string, end int, rev uint64) *tnode {
	t.root = t.own(t.root, rev)
	n := t.root
	for i := 0; i < end; {
		name, j := elem(p, i)
		c := n.dir.get(name)
		if oc := t.own(c, rev); oc != c {
			n.dir.set(name, oc)
			c = oc
		}
		n, i = c, j
	}
	return n
}

// mkdirs creates below n (owned) the directories p[end:upto] names.
func (t *fileTree) mkdirs(n *tnode, p string, end, upto int, rev uint64) *tnode {
	for end < upto {
		name, j := elem(p, end)
		d := newDir(rev)
		n.dir.set(name, d)
		t.entries++
		t.record(rev, p[:j])
		n, end = d, j
	}
	return n
}

func (t *fileTree) record(rev uint64, p string) {
	c := TreeChange{Rev: rev, Path: p}
	if len(t.changes) < treeChangeRing {
		t.changes = append(t.changes, c)
		return
	}
	t.floor = max(t.floor, t.changes[t.head].Rev)
	t.changes[t.head] = c
	t.head = (t.head + 1) % treeChangeRing
}

// parentErr checks that p can be created where walk stopped (at n, p[:end]).
func parentErr(p string, n *tnode, end int, parents bool) error {
	if n.dir == nil {
		return treeErr(ErrTreeNotDir, "%s: parent %s is not a directory", p, prefix(p, end))
	}
	if !parents && lastSlash(p) > end {
		return treeErr(ErrTreeNotFound, "%s: parent %s does not exist (use -p)", p, parentOf(p))
	}
	return nil
}

// mkdir makes directory p (and its missing parents if parents).
func (t *fileTree) mkdir(p string, parents bool) error {
	n, end := t.walk(p)
	if end == len(p) {
		switch {
		case n.dir == nil:
			return treeErr(ErrTreeExists, "%s: already exists (not a directory)", p)
		case parents:
			return nil
		}
		return treeErr(ErrTreeExists, "%s: already exists", p)
	}
	if err := parentErr(p, n, end, parents); err != nil {
		return err
	}
	rev := t.begin()
	t.mkdirs(t.ownPath(p, end, rev), p, end, len(p), rev)
	return nil
}

// link binds p to target (FilesLink).
func (t *fileTree) link(p, target string, info LinkInfo, parents, replace bool) error {
	n, end := t.walk(p)
	if end == len(p) {
		switch {
		case n.dir != nil:
			return treeErr(ErrTreeExists, "%s: already exists (a directory)", p)
		case !replace:
			return treeErr(ErrTreeExists, "%s: already exists", p)
		case n.sameLink(target, info):
			return nil
		}
		rev := t.begin()
		l := t.ownPath(p, end, rev)
		l.link, l.size, l.tsize = linkString(info.Type, target), info.Size, info.Tsize
		t.record(rev, p)
		return nil
	}
	if err := parentErr(p, n, end, parents); err != nil {
		return err
	}
	rev := t.begin()
	d := t.mkdirs(t.ownPath(p, end, rev), p, end, lastSlash(p), rev)
	d.dir.set(base(p), newLink(rev, target, info))
	t.entries++
	t.record(rev, p)
	return nil
}

// move moves src to dst, or into dst when dst is a directory (FilesMove).
func (t *fileTree) move(src, dst string) error {
	fail := func(kind error, format string, args ...any) error {
		return treeErr(kind, "mv %s %s: %s", src, dst, fmt.Sprintf(format, args...))
	}
	if src == "/" {
		return fail(ErrTreeInvalid, "cannot move the root")
	}
	sn, send := t.walk(src)
	if send != len(src) {
		return fail(ErrTreeNotFound, "%s does not exist", src)
	}
	to := dst
	dn, dend := t.walk(to)
	if dend == len(to) && dn.dir != nil {
		to = path.Join(to, base(src))
		dn, dend = t.walk(to)
	}
	switch {
	case to == src:
		return fail(ErrTreeInvalid, "source and destination are the same")
	case sn.dir != nil && strings.HasPrefix(to, src+"/"):
		return fail(ErrTreeInvalid, "cannot move a directory into itself")
	case dend == len(to):
		return fail(ErrTreeExists, "%s already exists", to)
	case dn.dir == nil:
		return fail(ErrTreeNotDir, "parent %s is not a directory", prefix(to, dend))
	case lastSlash(to) > dend:
		return fail(ErrTreeNotFound, "parent %s does not exist", parentOf(to))
	}
	rev := t.begin()
	sp := t.ownPath(src, lastSlash(src), rev)
	moved := sp.dir.get(base(src))
	sp.dir.del(base(src))
	moved = t.own(moved, rev)
	if moved.dir != nil {
		moved.dir.at = rev
	}
	t.ownPath(to, lastSlash(to), rev).dir.set(base(to), moved)
	t.record(rev, src)
	t.record(rev, to)
	return nil
}

// copy copies the entry at src to dst, making dst's parents if parents
// (FilesCopy). dst must not exist: there is no copying into a directory.
//
// A directory is copied in O(1) (plus its overlay, if it has one): the
// copy is a new node sharing the source's children, and the copy seals
// the tree (see fileTree), so that whichever side changes later copies
// the nodes on its path first and the other side never sees it. Counting
// the entries copied is the only O(entries) part: a walk, no allocation.
//
// Revisions: dst and its parents get the new revision, and dst records it
// as the revision it was put there (tdir.at). The nodes below keep the
// source's revs, but every entry below dst reads as changed at the new
// revision (lookup takes the largest at on the path), so a path at a
// given Rev always has the same content. Keeping the source's Revs as
// they read would not: mkdir -p /x/s/s at 5, cp /x /y, rm -r /y, cp /x/s
// /y would show /y/s at Rev 5 first with a child s, then empty.
func (t *fileTree) copy(src, dst string, parents bool) error {
	fail := func(kind error, format string, args ...any) error {
		return treeErr(kind, "cp %s %s: %s", src, dst, fmt.Sprintf(format, args...))
	}
	if src == "/" {
		return fail(ErrTreeInvalid, "cannot copy the root")
	}
	sn, send := t.walk(src)
	if send != len(src) {
		return fail(ErrTreeNotFound, "%s does not exist", src)
	}
	if sn.dir != nil && (dst == src || strings.HasPrefix(dst, src+"/")) {
		return fail(ErrTreeInvalid, "cannot copy a directory into itself")
	}
	dn, dend := t.walk(dst)
	switch {
	case dend == len(dst):
		return fail(ErrTreeExists, "%s already exists", dst)
	case dn.dir == nil:
		return fail(ErrTreeNotDir, "parent %s is not a directory", prefix(dst, dend))
	case !parents && lastSlash(dst) > dend:
		return fail(ErrTreeNotFound, "parent %s does not exist (use -p)", parentOf(dst))
	}
	rev := t.begin()
	// from now on, sn and what it holds are in two places (sn was made at
	// a revision before this one: sealed > 0)
	t.sealed = rev - 1
	t.copiedFrozen = t.copiedFrozen || t.frozen
	c := &tnode{rev: rev, size: sn.size, tsize: sn.tsize, link: sn.link}
	if sn.dir != nil {
		c.dir = sn.dir.share(rev)
	}
	d := t.mkdirs(t.ownPath(dst, dend, rev), dst, dend, lastSlash(dst), rev)
	d.dir.set(base(dst), c)
	t.entries += 1 + sn.count()
	t.record(rev, dst)
	return nil
}

// remove removes p, a directory only if recursive (FilesRemove).
func (t *fileTree) remove(p string, recursive bool) error {
	if p == "/" {
		return treeErr(ErrTreeInvalid, "/: cannot remove the root")
	}
	n, end := t.walk(p)
	switch {
	case end != len(p):
		return treeErr(ErrTreeNotFound, "%s: does not exist", p)
	case n.dir != nil && !recursive:
		return treeErr(ErrTreeNotEmpty, "%s: is a directory (use -r)", p)
	}
	t.cut(p, n, t.begin())
	return nil
}

func (t *fileTree) cut(p string, n *tnode, rev uint64) {
	t.ownPath(p, lastSlash(p), rev).dir.del(base(p))
	t.entries -= 1 + n.count()
	t.record(rev, p)
}

// linkTotal is the link of logs written before FilesLink (OpLink): it
// creates missing parents, and replaces whatever is in the way: a
// directory at p, or links where p needs parent directories. "/" is left
// alone.
func (t *fileTree) linkTotal(p, target string) {
	if p == "/" {
		return
	}
	n, end := t.walk(p)
	if end == len(p) && n.dir == nil && n.sameLink(target, LinkInfo{}) {
		return
	}
	rev := t.begin()
	if end == len(p) {
		parent := t.ownPath(p, lastSlash(p), rev)
		t.entries -= n.count() // a directory's entries go with it
		parent.dir.set(base(p), newLink(rev, target, LinkInfo{}))
		t.record(rev, p)
		return
	}
	if n.dir == nil { // a link where a parent directory must be
		d := newDir(rev)
		t.ownPath(p, lastSlash(p[:end]), rev).dir.set(base(p[:end]), d)
		t.record(rev, p[:end])
		n = d
	} else {
		n = t.ownPath(p, end, rev)
	}
	n = t.mkdirs(n, p, end, lastSlash(p), rev)
	n.dir.set(base(p), newLink(rev, target, LinkInfo{}))
	t.entries++
	t.record(rev, p)
}

// unlinkTotal is OpUnlink: it removes p and everything below, if present.
func (t *fileTree) unlinkTotal(p string) {
	if p == "/" {
		return
	}
	if n, end := t.walk(p); end == len(p) {
		t.cut(p, n, t.begin())
	}
}

// freeze hands the tree as it is to a snapshot (see fileTree).
func (t *fileTree) freeze() *tnode {
	t.frozen, t.frozenRev = true, t.rev
	return t.root
}

func (t *fileTree) thaw() {
	if !t.copiedFrozen {
		for _, d := range t.overlaid {
			d.fold()
		}
	} // else the copy may share their maps: they keep their overlays
	t.overlaid, t.frozen, t.copiedFrozen = nil, false, false
}

// lookup is walk for readers: the node at p, if any, and placed, the
// largest at of the directories from the root down to it. What is at p
// and below reads as changed at the larger of its rev and placed (see
// TreeStat): the nodes below a moved or copied directory keep the revs
// they had, but its at is the revision of the move or copy.
func (t *fileTree) lookup(p string) (n *tnode, placed uint64, ok bool) {
	n = t.root
	for end := 0; end < len(p) && p != "/"; {
		if n.dir == nil {
			return nil, 0, false
		}
		name, j := elem(p, end)
		if n = n.dir.get(name); n == nil {
			return nil, 0, false
		}
		if n.dir != nil {
			placed = max(placed, n.dir.at)
		}
		end = j
	}
	return n, placed, true
}

func (t *fileTree) since(since uint64) (ch []TreeChange, rev uint64, complete bool) {
	if since >= t.rev {
		return nil, t.rev, since == t.rev
	}
	for i := range t.changes {
		c := t.changes[(t.head+i)%len(t.changes)]
		if c.Rev > since {
			ch = append(ch, c)
		}
	}
	return ch, t.rev, since >= t.floor
}

// validTreePath reports whether p is absolute and clean.
func validTreePath(p string) bool {
	return p != "" && p[0] == '/' && path.Clean(p) == p
}

// TreeStat returns the entry at p ("/" always exists, as a directory).
//
// Its Rev is the last tree revision that changed what is at p: something
// at or below p changed, or p's entry, or a directory above it, was made,
// moved or copied there. So a path at a given Rev always holds the same
// content: the node caches what it derives from a directory (its UnixFS
// hash) by path and Rev. A directory's Rev is never below its entries'.
// TreeList reports Rev the same way.
func (f *FSM) TreeStat(p string) (TreeEntry, bool) {
	if !validTreePath(p) {
		return TreeEntry{}, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, placed, ok := f.tree.lookup(p)
	if !ok {
		return TreeEntry{}, false
	}
	if p == "/" {
		return n.entry("", max(n.rev, placed)), true
	}
	return n.entry(base(p), max(n.rev, placed)), true
}

// TreeList returns the children of directory p, sorted by name (byte
// order). The error matches ErrTreeNotFound, ErrTreeNotDir or, for a path
// that is not absolute and clean, ErrTreeInvalid (each also ErrTreeConflict).
func (f *FSM) TreeList(p string) ([]TreeEntry, error) {
	if !validTreePath(p) {
		return nil, treeErr(ErrTreeInvalid, "%q: not an absolute, clean path", p)
	}
	f.mu.RLock()
	n, placed, ok := f.tree.lookup(p)
	var out []TreeEntry
	if ok && n.dir != nil {
		out = make([]TreeEntry, 0, n.dir.len())
		n.dir.each(func(name string, k *tnode) { out = append(out, k.entry(name, max(k.rev, placed))) })
	}
	f.mu.RUnlock()
	switch {
	case !ok:
		return nil, treeErr(ErrTreeNotFound, "%s: does not exist", p)
	case out == nil:
		return nil, treeErr(ErrTreeNotDir, "%s: not a directory", p)
	}
	slices.SortFunc(out, func(a, b TreeEntry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// TreeRev returns the tree revision: how many commands changed the tree
// (0: never changed). It is replicated state, equal on every replica at
// the same applied index.
func (f *FSM) TreeRev() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.tree.rev
}

// TreeChanges returns the changes made after revision since, oldest first,
// and the current revision. The FSM remembers the last 4096 changes (not
// in snapshots): complete is false when some change after since is no
// longer known (too old, or the state was restored from a snapshot since),
// and the caller must then assume that everything changed.
func (f *FSM) TreeChanges(since uint64) (ch []TreeChange, rev uint64, complete bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.tree.since(since)
}

// TreeWatch returns a channel closed at the next change of the tree (or
// restore of a snapshot).
func (f *FSM) TreeWatch() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.treeCh
}

// Path returns the CID that the link at p names.
func (f *FSM) Path(p string) (string, bool) {
	e, ok := f.TreeStat(p)
	if !ok || e.Dir {
		return "", false
	}
	return e.Target, true
}

// Tree returns every link of the shared tree (path -> CID); directories
// are left out. It walks the whole tree under the read lock: for tests and
// small trees (use TreeList to browse).
func (f *FSM) Tree() map[string]string {
	out := make(map[string]string)
	f.mu.RLock()
	defer f.mu.RUnlock()
	var walk func(p string, n *tnode)
	walk = func(p string, n *tnode) {
		n.dir.each(func(name string, k *tnode) {
			if k.dir != nil {
				walk(p+name+"/", k)
			} else {
				out[p+name] = k.target()
			}
		})
	}
	walk("/", f.tree.root)
	return out
}
