package node

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/fungistor/fungistor/fungi"
)

// batchStore answers batches of keys; down makes every answer an error.
type batchStore struct {
	fungi.FragmentStore
	have     map[string]bool
	down     bool
	requests int
	most     int
}

func (s *batchStore) answer(keys [][]byte) []error {
	s.requests++
	s.most = max(s.most, len(keys))
	errs := make([]error, len(keys))
	for i, k := range keys {
		switch {
		case s.down:
			errs[i] = errors.New("connection refused")
		case !s.have[string(k)]:
			errs[i] = fungi.ErrFragmentNotFound
		}
	}
	return errs
}

func (s *batchStore) HasFragments(_ context.Context, keys [][]byte) ([]bool, []error) {
	errs := s.answer(keys)
	found := make([]bool, len(keys))
	for i := range keys {
		found[i] = errs[i] == nil
	}
	return found, errs
}

func (s *batchStore) GetFragments(_ context.Context, keys [][]byte) ([][]byte, []error) {
	errs := s.answer(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		if errs[i] == nil {
			vals[i] = append([]byte("data:"), k...)
		}
	}
	return vals, errs
}

func probes(n int) []*probe {
	ps := make([]*probe, n)
	for i := range ps {
		ps[i] = &probe{index: i, key: []byte(fmt.Sprint("k", i))}
	}
	return ps
}

// A holder is asked a batch at a time: verifying an object of any size
// holds a few MiB, and a dead holder is asked once.
func TestCheckHolderBatches(t *testing.T) {
	ok := func(*probe, []byte) error { return nil }
	s := &batchStore{have: map[string]bool{}}
	for i := range 1000 {
		if i != 7 {
			s.have[fmt.Sprint("k", i)] = true
		}
	}
	ps := probes(1000)
	checkHolder(context.Background(), s, ps, true, ok)
	if s.most > verifyBatch || s.requests != (1000+verifyBatch-1)/verifyBatch {
		t.Fatalf("verify: %d requests of at most %d keys", s.requests, s.most)
	}
	for i, p := range ps {
		if p.ok != (i != 7) || (i == 7) != errors.Is(p.err, fungi.ErrFragmentNotFound) {
			t.Fatalf("probe %d: ok %v err %v", i, p.ok, p.err)
		}
	}
	*s = batchStore{have: s.have}
	checkHolder(context.Background(), s, probes(10000), false, ok)
	if s.most > hasBatch || s.requests != 3 {
		t.Fatalf("presence: %d requests of at most %d keys", s.requests, s.most)
	}
	dead := &batchStore{down: true}
	ps = probes(1000)
	checkHolder(context.Background(), dead, ps, true, ok)
	if dead.requests != 1 {
		t.Fatalf("a dead holder was asked %d times", dead.requests)
	}
	for i, p := range ps {
		if p.ok || p.err == nil || errors.Is(p.err, fungi.ErrFragmentNotFound) {
			t.Fatalf("probe %d of a dead holder: ok %v err %v", i, p.ok, p.err)
		}
	}
}
