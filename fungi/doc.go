// Package fungi is FungiStor's core: content identifiers, manifests and
// fragment references, the per-block codec (compression, encryption,
// erasure coding into verifiable fragments), the dispersal writer and the
// parallel, hedged reader.
//
// fungi imports no other package of this module. It declares the small
// interfaces it needs (a fragment store, a placement policy, a metadata
// log) and the layers below implement them; node wires them together.
//
// The codec and the writer and reader arrive with the zstor issue; this
// package holds the layer's place in the dependency graph until then.
package fungi
