package store

import (
	"context"
	"errors"
)

// Sentinel errors shared by the embedded engine and the remote client, so a
// caller can tell them apart whichever it talks to.
var (
	// ErrNotFound: the key does not exist (or was deleted).
	ErrNotFound = errors.New("key not found")
	// ErrKeyTooLong: keys are at most MaxKeySize bytes.
	ErrKeyTooLong = errors.New("key too long")
	// ErrValueTooLarge: values are at most MaxValueSize bytes.
	ErrValueTooLarge = errors.New("value too large")
	// ErrNamespaceFull: the write would exceed the namespace's maxsize.
	ErrNamespaceFull = errors.New("no space left on this namespace")
	// ErrReadOnly: the namespace is locked (or worm forbids the change).
	ErrReadOnly = errors.New("namespace is read-only")
	// ErrFrozen: the namespace is frozen; neither reads nor writes.
	ErrFrozen = errors.New("namespace is temporarily frozen")
	// ErrCorrupt: stored bytes failed their checksum and were not returned.
	ErrCorrupt = errors.New("stored record is corrupt")
	// ErrInvalidKey: a sequential namespace was given a key that is not an id.
	ErrInvalidKey = errors.New("invalid key")
)

// Limits of one record, as in 0-db.
const (
	MaxKeySize   = 255
	MaxValueSize = 8 << 20
)

// KV is one ZDB namespace as a key-value store, embedded (zdb.Namespace) or
// remote (client.Client). Both pass the shared suite in store/storetest.
//
// Methods are safe for concurrent use. Set in a sequential namespace takes a
// nil key to append (the assigned 8-byte little-endian id comes back) or an
// existing id to overwrite. A write returns only once it is as durable as the
// server's policy promises (fsynced under --sync).
type KV interface {
	// Set stores value under key and returns the key; changed is false when
	// the stored value was already equal (nothing was written).
	Set(ctx context.Context, key, value []byte) (stored []byte, changed bool, err error)
	// Get returns the value, or ErrNotFound.
	Get(ctx context.Context, key []byte) ([]byte, error)
	// GetMany returns one value per key, nil where a key is missing.
	GetMany(ctx context.Context, keys [][]byte) ([][]byte, error)
	// Exists reports whether key holds a value.
	Exists(ctx context.Context, key []byte) (bool, error)
	// Del deletes key, or returns ErrNotFound.
	Del(ctx context.Context, key []byte) error
}
