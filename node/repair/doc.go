// Package repair keeps a cluster's content whole: a scrubber on every
// storing node re-reads and verifies its fragments at a capped rate, the
// leader audits every holder with random challenges, and a monitor on the
// leader turns losses into repairs.
//
// What to repair and where is pure and lives in fungi (Layout, the one
// placement function; PlanRepair, most at risk first; Losses, partition or
// loss). This package runs it against a Node: the small interface of what
// it needs from the daemon (objects with their layouts, members' liveness,
// fragment stores, a codec, and four replicated writes).
//
// A node unheard for the grace is replaced by a repair epoch, committed
// through RAFT before any fragment moves: a few hundred bytes naming the
// lost nodes and the live pool, from which every node derives each moved
// fragment's new holder. The runner then decodes each degraded block once
// from K good fragments, re-encodes it (encoding is deterministic, so the
// new fragments are the ones that were lost) and writes every missing
// fragment together; when a pass leaves nothing missing it marks the
// epochs done, and only then do the lost nodes' copies become orphans.
// The runner checks presence before writing, so a leader that takes over
// mid-repair repeats no write that landed.
package repair
