// Package consensus keeps FungiStor's replicated metadata: a hashicorp/raft
// group whose RPCs travel over libp2p streams, a state machine (FSM) holding
// pool membership, object manifests, pins, the shared file tree, signed
// IPNS records, repair epochs and damaged fragments, write forwarding from any node to the leader, admission of
// new members by the cluster secret, and the leader's policy for who votes.
//
// consensus imports no other package of this module but fungi; node wires
// it to the libp2p host (p2p) and the stores (store).
//
// # State
//
// The FSM is the single owner of the replicated state. It changes only by
// applying committed log entries, deterministically (no clock, no
// randomness: a member's Joined time travels in the command), so every
// replica holds the same state at the same index. Read accessors (Manifest,
// Members, Tree, Pins, Stats, ...) take a read lock and are safe from any
// goroutine.
//
// A log entry holds one or more Commands in a compact, versioned binary
// encoding (see command.go; decodeEntry has a fuzz target). Each command
// has its own Result. Every Op but the tree commands is total (removing
// what is absent, or updating an unknown member, does nothing), so a Batch
// command, validated as a whole first, is applied atomically: readers see
// all of it or none. The tree commands can be refused and are therefore
// never part of a Batch.
//
// IPNS records (PutIPNS) are kept per name, the IPNS routing key ("/ipns/"
// + binary peer id). The node taking the write verifies the record and
// puts its sequence and EOL into the command; the FSM keeps a new record
// only if it has none or the new one is better by Kubo's rule (higher
// sequence, then later EOL; a tie keeps the stored record), so the
// outcome depends only on the log. The put itself always succeeds: read
// the record back to learn whether it was kept.
//
// Entries are written in the lowest version that holds them: version 4
// for the repair commands, 3 for the tree commands, 2 for put-ipns, 1 for
// the rest, so an older build refuses only what it cannot know. Snapshots
// are format 5; formats 1 to 4 still restore (testdata holds one of each).
//
// Commands carry a RequestID. The FSM remembers the last DedupWindow
// (524,288) applied ids, in the snapshot too, so a write retried after a
// leader change is applied once: the retry gets the first Result with
// Duplicate set.
//
// # The shared tree
//
// The FSM holds a file tree that every node edits like Kubo's MFS: Mkdir,
// FilesLink (a path names a CID, with the type and sizes the proposer
// found), FilesMove, FilesRemove and FilesCopy. They are checked when
// applied, the same way on every replica: a refusal changes nothing and
// comes back from Node.Apply, on any node, as an error matching
// ErrTreeConflict and one of ErrTreeExists, ErrTreeNotFound,
// ErrTreeNotDir, ErrTreeNotEmpty or ErrTreeInvalid, with a one-line
// message naming the path ("/a/b: parent /a is not a directory"); it is
// not retried. The rules, in short: -p (parents) creates missing
// directories, else they are refused; a link is replaced only with
// replace, a directory never; mv into an existing directory moves to
// dir/base(src), never onto an existing entry, never into itself; cp
// copies a link or a whole directory to a path that must not exist (no
// copying into a directory: the caller appends the name), never into
// itself, and the copy is independent of its source from then on; a
// directory is removed only with recursive, even an empty one; "/" can
// only be read. Link and Unlink, the total commands of older logs, still
// apply: link with parents replacing whatever is in the way, and
// recursive remove if present.
//
// Every command that changes the tree takes the next tree revision
// (TreeRev, replicated, in snapshots). An entry's Rev (TreeStat,
// TreeList) is the last revision that changed what is at its path:
// something at or below it changed, or it, or a directory above it, was
// made, moved or copied there. So a path at a given Rev always holds the
// same content: the node caches what it derives from a directory (its
// UnixFS hash) by path and Rev. (Stored: each node the revision of the
// last change at or below it, set from the root down to what changed,
// and each directory the revision at which it was put at its place; a
// moved or copied subtree keeps the revisions below its root, so moves
// and copies are O(1), and a reader takes the largest on the path.)
// TreeChanges lists the paths created, replaced or removed after a
// revision (a copy: its path, and the parents it made), from a ring of
// the last 4096 changes (local, not in snapshots: after a restore, or
// when the ring overflowed, it says incomplete and the caller starts
// over); TreeWatch wakes a reader at the next change.
//
// The tree is a tree of nodes, directories holding a map of names to
// children; a name is stored once, as its map key, and a link's target
// CID in 36 bytes when it is the base32 "b..." form Kubo prints. A link
// costs ~175 heap bytes: 2,000 directories of 1,000 links (names of 22
// bytes, CIDv1 targets) take 334 MB built by FilesLink and 167 B/entry
// restored (BenchmarkTree2M).
//
// A copy shares what it copies: the new directory shares the source's
// children map, and the copy seals the tree, so that from then on a
// change copies the nodes on its path before changing them, once (the
// same copy-on-write as for snapshots, below), and neither side sees the
// other's changes. Copying a directory of 100,000 links takes ~6 ms, 1M
// ~60 ms (counting what it holds, the only walk; BenchmarkTreeCopy), and
// keeps almost no memory until the two sides diverge.
//
// # Repair
//
// When members are lost, their fragments must be re-created elsewhere. One
// entry per object moved would make a node loss cost as many log entries
// (and snapshot bytes) as there are objects. Instead a repair epoch
// (BeginRepair) records the placement change once: which members were
// lost, the pool their fragments may go to (with each candidate's domain
// and free bytes when the repair began) and why ("lost", "audit",
// "manual"). That is O(pool) bytes per node loss. Epochs are numbered 1, 2,
// ... as they are applied, and each manifest records how many epochs
// existed when it was put (Manifest.Epoch): the epochs with a higher Seq
// apply to it, and the fungi layer derives where each fragment now lives
// from the manifest and those epochs, deterministically. EndRepair(seq)
// marks the epochs up to seq done once every fragment they moved is
// written (a prefix: Done never goes back).
//
// Fragments found bad or missing on a live holder (by a scrubber or an
// audit) are reported with ReportDamage, keyed by holder and fragment key,
// rewritten in place and then cleared with ClearDamage. All four commands
// are total, so they may share a Batch with anything else.
//
// # Snapshots
//
// Snapshot freezes the big maps in O(1): they become read-only for the
// snapshot and later writes go to small overlays that readers consult
// first, folded back in when raft releases the snapshot. The tree is
// frozen the same way: the snapshot keeps the root, and a change while it
// persists copies the nodes on its path first (once per snapshot; a copied
// directory shares its children map and records its changes in an
// overlay, so copying a directory of a million entries is O(1) too);
// without a snapshot, what no copy shares changes in place. Persist
// streams the frozen state in a binary format with a checksummed header
// (a corrupt count is caught before it sizes a map) and a CRC-32C
// trailer, the tree in pre-order with names rather than paths; Restore
// builds the new state aside and swaps it in only if everything checks
// out. Measured on this 2-core machine (TestSnapshotMillion,
// BenchmarkSnapshot10M; 64-byte manifests, 59-byte CIDs; 132 snapshot
// bytes and ~230 heap bytes per entry): 1M manifests persist in ~0.14 s
// and restore in ~0.4-0.8 s; 10M persist in 2.4 s and restore in 11 s,
// most of it garbage collection of the growing maps (4.6 s with GOGC=400).
// A tree of 2M links persists in ~0.2 s (73 bytes per link) and restores
// in ~0.3 s (BenchmarkTree2M); 1,000 links made while it is frozen cost
// ~3 ms in all.
//
// # Writes
//
// Node.Apply works on every node. Concurrent calls are grouped into one log
// entry per round (up to Config.MaxBatch commands; four rounds in flight).
// On the leader the entry goes to raft.Apply; elsewhere it is forwarded over
// ForwardProtocol ("/fungi/raft-forward/1.0.0": uvarint length + entry;
// reply: status, then one result per command, or the leader's id, or a
// refusal). A write that meets a leader change (no leader yet, leader died
// mid-request, the receiver is no longer leader) is retried with backoff,
// up to the context's deadline (ApplyTimeout by default) and 30 attempts.
// The caller gets a committed Result, or an error: ErrInvalidCommand
// (nothing proposed) or an *ApplyError carrying the last leader tried, the
// cause, and whether the write may still commit (Unknown; retrying the
// same Command is then safe thanks to its RequestID). Apply returns after
// the write is applied on the leader and (waiting up to two heartbeat
// timeouts) on the calling node, so a node reads its own writes.
//
// # Access control
//
// Only members (peer ids in the FSM) may write: the leader checks the
// remote peer of every forward stream. Raft's own streams
// (RaftProtocol, "/fungi/raft/1.0.0") are accepted only from members,
// servers of the raft configuration, and peers this node is joining
// through; anything else is reset before raft reads a byte, so a stranger
// cannot send an AppendEntries with a higher term. (This is why the stream
// layer is ours rather than go-libp2p-raft's, which accepts every peer.)
//
// A new peer joins with JoinProtocol ("/fungi/join/1.0.0"): it sends its
// addresses, the member it contacts answers with a fresh 32-byte nonce, the
// joiner returns JoinSecretProof(secret, nonce, its peer id) =
// HMAC-SHA256(secret, "fungi join" || peer id || nonce), and the member
// checks it with Config.Authorize (implemented by node with the cluster
// secret). An admitted peer is committed as a Member; the leader's policy
// then adds it to raft as a non-voter.
//
// # Voters: the leader's policy
//
// A small voter set (Config.Voters: 3 by default, or 5) and any number of
// non-voters, which replicate the log so every node has the metadata
// locally. The leader runs this policy every PolicyInterval and on every
// membership change, after a Barrier once per term (so it acts on an FSM
// that reflects every committed change):
//
//  1. it admits itself as a member when there are none (the first leader
//     of a new cluster);
//  2. a raft server that is no longer a member is removed from raft
//     (Remove commits RemoveMember from any node; the leader does the rest);
//  3. a member missing from raft is added as a non-voter;
//  4. a voter the leader has not heard from for DeadVoterGrace (30 s; time
//     is counted from when this leader took over, if it never heard from
//     it) is demoted to non-voter, but only when a healthy non-voter can
//     take its place: demoting without a replacement would not make the
//     group more available. The demoted node stays a member and replicates
//     again when it returns;
//  5. while there are fewer than Voters voters, healthy non-voters (heard
//     from within two heartbeat timeouts) are promoted, preferring a
//     failure domain (Member.Domain) no live voter covers, then the oldest
//     member;
//  6. each member's suffrage is recorded in the FSM (Member.Voter), so any
//     replica can show it.
//
// A healthy voter is never demoted, so voters added by hand beyond Voters
// stay. Demote-then-promote needs only the surviving voters' agreement.
//
// # Timing
//
// Defaults (HeartbeatTimeout = ElectionTimeout = 500 ms, leader lease 250
// ms) elect a new leader ~1.0 s (0.75-1.2 s) after the leader dies on
// loopback (BenchmarkElection); Close hands leadership over first, so a
// clean shutdown costs one round trip instead of an election. Batched
// commits reach ~39,000/s forwarded from a non-voter of a 5-node cluster
// and ~57,000/s on the leader; unbatched, ~1,400/s (BenchmarkCommit).
//
// # Usage
//
//	cfg := consensus.DefaultConfig()
//	cfg.Dir = filepath.Join(repo, "raft")
//	cfg.Authorize = func(p peer.ID, nonce, proof []byte) bool {
//		return hmac.Equal(proof, consensus.JoinSecretProof(secret, nonce, p.String()))
//	}
//	n, err := consensus.New(cfg, host)
//	// first node:  n.Bootstrap()
//	// the others:  n.Join(ctx, seedAddrInfo, secret)
//	res, err := n.Apply(ctx, consensus.PutManifest(root.String(), size, manifestBytes))
//	m, ok := n.FSM().Manifest(root.String())
//	_, err = n.Apply(ctx, consensus.FilesLink("/photos/a.jpg", root.String(), info, true, false))
//	if errors.Is(err, consensus.ErrTreeExists) { ... }
//	_, err = n.Apply(ctx, consensus.FilesCopy("/photos", "/backup/photos", true))
//	list, err := n.FSM().TreeList("/photos")
package consensus
