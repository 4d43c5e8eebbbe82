package fungi

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"sync"
)

// ErrFragmentNotFound: the store does not hold the fragment.
var ErrFragmentNotFound = errors.New("fragment not found")

// FragmentStore holds fragments by key. Implementations: MemStore (tests),
// ZDB (embedded or remote, adapted in node) and the libp2p exchange (later).
// Methods are safe for concurrent use; Put of an existing key with the same
// bytes is a no-op (fragments are content-derived, so a key never changes
// meaning).
type FragmentStore interface {
	PutFragment(ctx context.Context, key, data []byte) error
	// GetFragment returns the fragment or ErrFragmentNotFound.
	GetFragment(ctx context.Context, key []byte) ([]byte, error)
	HasFragment(ctx context.Context, key []byte) (bool, error)
}

// FragmentDeleter is implemented by stores that can drop fragments (orphan
// collection, repair).
type FragmentDeleter interface {
	DeleteFragment(ctx context.Context, key []byte) error
}

// FragmentBatchPutter is implemented by stores that take many fragments in
// one call (one network request, one durability wait): the writer sends
// each block's fragments for one target together.
type FragmentBatchPutter interface {
	PutFragments(ctx context.Context, keys, values [][]byte) error
}

// PutFragments stores values[i] under keys[i] on s: in one call when s is
// a FragmentBatchPutter, else one put at a time (stopping at the first
// error).
func PutFragments(ctx context.Context, s FragmentStore, keys, values [][]byte) error {
	if b, ok := s.(FragmentBatchPutter); ok {
		return b.PutFragments(ctx, keys, values)
	}
	for i, k := range keys {
		if err := s.PutFragment(ctx, k, values[i]); err != nil {
			return err
		}
	}
	return nil
}

// MemStore is an in-memory FragmentStore.
type MemStore struct {
	mu sync.RWMutex
	m  map[string][]byte
}

var (
	_ FragmentStore   = (*MemStore)(nil)
	_ FragmentDeleter = (*MemStore)(nil)
)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{m: map[string][]byte{}} }

func (s *MemStore) PutFragment(_ context.Context, key, data []byte) error {
	s.mu.Lock()
	s.m[string(key)] = bytes.Clone(data)
	s.mu.Unlock()
	return nil
}

func (s *MemStore) GetFragment(_ context.Context, key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[string(key)]
	if !ok {
		return nil, ErrFragmentNotFound
	}
	return bytes.Clone(v), nil
}

func (s *MemStore) HasFragment(_ context.Context, key []byte) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.m[string(key)]
	return ok, nil
}

func (s *MemStore) DeleteFragment(_ context.Context, key []byte) error {
	s.mu.Lock()
	delete(s.m, string(key))
	s.mu.Unlock()
	return nil
}

// Len returns the number of fragments held.
func (s *MemStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

// Bytes returns the bytes of all fragments held.
func (s *MemStore) Bytes() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var n int64
	for _, v := range s.m {
		n += int64(len(v))
	}
	return n
}

// Mutate changes a held fragment in place (tests: corruption).
func (s *MemStore) Mutate(key []byte, fn func([]byte) []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[string(key)]
	if ok {
		s.m[string(key)] = fn(v)
	}
	return ok
}

// Keys returns the keys held, sorted.
func (s *MemStore) Keys() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.m))
	for k := range s.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
