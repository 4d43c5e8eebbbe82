// Package fungi is FungiStor's core, zstor: content addressed by IPFS CIDs,
// stored as encrypted erasure-coded fragments.
//
// The write path: ImportFile/ImportPath build a UnixFS DAG with boxo,
// exactly as Kubo does for the same Profile, and hand every block to a
// Writer. The Writer keeps inner nodes for the Manifest and turns each raw
// leaf into Coding.N fragments with the Codec (s2 compression where it pays,
// AES-256-GCM keyed by the cluster secret and the block's CID, Reed-Solomon
// "equations": only parity shards are stored and any K rebuild the block),
// putting fragment i on the Target a Placement names, under FragmentKey.
//
// The read path: a Reader asks the K holders it expects to answer first,
// verifies each fragment on its own (a keyed tag; a corrupt or forged one is
// never decoded), hedges when a holder is slow or fails, decodes as soon as K
// are in and checks the block against its CID. Reader.DAG serves an object
// to boxo's UnixFS reader for streaming and byte ranges.
//
// Blocks of any codec: a DAGImport takes blocks from a CAR (ReadCAR: CARv1
// and v2, every block checked against its CID) into imported manifests
// (blocks with links inline, bigger link-less blocks dispersed, missing
// links listed); WriteCAR writes a DAG as Kubo's `ipfs dag export` does.
// A BlockIndex maps every block of a set of manifests to the objects that
// hold it and its size, so a block service answers presence and sizes
// without fetching; LeavesInRange and OnlyLeaves let a byte-range reader
// fetch exactly the leaves of its range.
//
// Invariants: nothing decoded is returned unless it matches its CID; equal
// blocks give equal fragments under one secret (so a cluster dedups); the
// Manifest carries no per-fragment list (keys derive from CID and coding).
//
// fungi imports no other package of this module; it declares what it needs
// (FragmentStore, Placement) and node supplies ZDB-backed implementations.
//
//	codec, _ := fungi.NewCodec(secret, fungi.DefaultCoding())
//	w := fungi.NewWriter(ctx, codec, codec.Coding(), placement, 0)
//	root, _ := fungi.ImportPath(ctx, "photos/", fungi.DefaultProfile, w, fungi.ImportOptions{})
//	manifest, _ := w.Finish(root)
package fungi
