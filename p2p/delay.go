package p2p

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// DelayStream wraps s to simulate a one-way network delay d on it, for tests
// and the local testnet (this machine has no netem). d <= 0 returns s.
//
// What it simulates: every message that starts a new turn of the
// conversation reaches the other side d later. A Write starts a turn when it
// is the first Write on the stream, or the first Write after a Read returned
// data; it waits d (at the sender) before sending, later Writes of the same
// turn do not. So with both ends wrapped (two Hosts with ExtraLatency), a
// request/response exchange costs 2*d more, on a fresh stream or on a
// long-lived one, and a one-way transfer of any size costs d more once.
//
// What it does not simulate: bandwidth and the bandwidth-delay product,
// jitter, loss, the handshakes of connection set-up, and traffic on streams
// it does not wrap (the DHT, identify). Because the sender sleeps, a
// protocol that pipelines (writes new requests while responses are being
// read) sees its writes serialized behind the delay: pessimistic for it.
//
// The returned stream is safe for one reader and one writer concurrently,
// as network.Stream is. Close and Reset cut a pending delay short.
func DelayStream(s network.Stream, d time.Duration) network.Stream {
	if d <= 0 {
		return s
	}
	ds := &delayedStream{Stream: s, d: d, done: make(chan struct{})}
	ds.owed.Store(true)
	return ds
}

type delayedStream struct {
	network.Stream
	d    time.Duration
	owed atomic.Bool // the next Write starts a turn
	done chan struct{}
	once sync.Once
}

func (s *delayedStream) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	if n > 0 {
		s.owed.Store(true)
	}
	return n, err
}

func (s *delayedStream) Write(b []byte) (int, error) {
	if len(b) > 0 && s.owed.Swap(false) {
		t := time.NewTimer(s.d)
		select {
		case <-t.C:
		case <-s.done:
			t.Stop() // the Write below reports the closed or reset stream
		}
	}
	return s.Stream.Write(b)
}

func (s *delayedStream) stop() { s.once.Do(func() { close(s.done) }) }

func (s *delayedStream) Close() error {
	defer s.stop() // after, so a pending Write sees the stream closed
	return s.Stream.Close()
}

func (s *delayedStream) Reset() error {
	defer s.stop()
	return s.Stream.Reset()
}

func (s *delayedStream) ResetWithError(code network.StreamErrorCode) error {
	defer s.stop()
	return s.Stream.ResetWithError(code)
}
