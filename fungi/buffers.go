package fungi

import "context"

// Buffers for the read path. A fragment read from the network and a block
// decoded for a stream are each a short-lived buffer of about the same
// size; allocating them fresh costs zeroing, page faults while the heap
// grows (a daemon's first big read) and garbage collection. They come from
// the codec's pools instead (size classes of four steps per power of two,
// see sizeClass) and go back once nothing refers to them.

// FragmentBuffer returns a buffer of n bytes for a fragment about to be
// read into (its bytes are not zeroed: the caller overwrites all n). Give
// it back with ReleaseFragment once nothing refers to it; a buffer never
// given back is simply collected.
func FragmentBuffer(n int) []byte { return getBuf(n).b }

// ReleaseFragment gives back a buffer of FragmentBuffer. The caller must
// own it alone: no slice of it may be used afterwards. Buffers of other
// origins are dropped unless their capacity is exactly a pool class.
func ReleaseFragment(b []byte) {
	if cap(b) > 0 {
		putBuf(&pooledBuf{b: b[:cap(b)]})
	}
}

// PooledFragmentGetter is implemented by fragment stores that can hand a
// fragment out in a buffer that becomes the caller's alone (the libp2p
// exchange's client, the embedded ZDB): release gives the buffer back for
// reuse once nothing refers to it; not calling it is fine (the buffer is
// then collected). A Reader uses it instead of GetFragment.
type PooledFragmentGetter interface {
	GetFragmentPooled(ctx context.Context, key []byte) (data []byte, release func(), err error)
}

// Buf is a block's bytes, possibly in a pooled buffer. Release gives the
// buffer back: B must not be used after it. A Buf is used by one goroutine
// at a time; Release is idempotent.
type Buf struct {
	B []byte
	p *pooledBuf
}

// Release gives B's buffer back to the pool (when it came from one).
func (b *Buf) Release() {
	if b.p != nil {
		putBuf(b.p)
		b.p = nil
	}
	b.B = nil
}
