package client

import (
	"context"
	"fmt"

	"github.com/fungistor/fungistor/store"
	"github.com/fungistor/fungistor/store/resp"
)

// MGETBatch is the most keys GetMany puts in one MGET.
const MGETBatch = 1000

var (
	cmdSet    = []byte("SET")
	cmdGet    = []byte("GET")
	cmdMGet   = []byte("MGET")
	cmdExists = []byte("EXISTS")
	cmdDel    = []byte("DEL")
)

func checkKey(key []byte) error {
	if len(key) > store.MaxKeySize {
		return store.ErrKeyTooLong
	}
	return nil
}

func checkSet(key, value []byte) error {
	if len(key) > store.MaxKeySize {
		return store.ErrKeyTooLong
	}
	if len(value) > store.MaxValueSize {
		return store.ErrValueTooLarge
	}
	return nil
}

// keyError turns an error reply to a command on key into an error. The
// server refuses an empty key with "Invalid argument".
func keyError(msg, key []byte) error {
	if len(key) == 0 && string(msg) == "Invalid argument" {
		return &mappedError{sentinel: store.ErrInvalidKey, msg: resp.ServerError(msg)}
	}
	return serverError(msg, len(key))
}

func unexpected(r resp.Reply) error {
	return fmt.Errorf("unexpected reply %.64s", r.String())
}

// setResult interprets the reply to SET key value.
func setResult(key []byte, r resp.Reply) ([]byte, bool, error) {
	switch r.Kind {
	case resp.KindBulk:
		return r.Str, true, nil
	case resp.KindNil:
		return key, false, nil // the value was already stored
	case resp.KindError:
		return nil, false, keyError(r.Str, key)
	}
	return nil, false, unexpected(r)
}

// Set stores value under key. It returns the stored key (in a sequential
// namespace, the id a nil key was given) and whether anything was written:
// changed is false when key already held value.
func (c *Client) Set(ctx context.Context, key, value []byte) ([]byte, bool, error) {
	if err := checkSet(key, value); err != nil {
		return nil, false, wrap("set", key, err)
	}
	var stored []byte
	var changed bool
	var rerr error
	err := c.pipeline(ctx, 1,
		func(w *resp.Writer) { w.Command(cmdSet, key, value) },
		func(_ int, r resp.Reply) { stored, changed, rerr = setResult(key, r) })
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, false, wrap("set", key, err)
	}
	return stored, changed, nil
}

// Get returns key's value, or store.ErrNotFound. The server refuses an
// empty key: Get, Exists and Del return store.ErrInvalidKey for it (the
// embedded engine answers not found instead in a user-mode namespace).
func (c *Client) Get(ctx context.Context, key []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, wrap("get", key, err)
	}
	r, err := c.roundTrip(ctx, cmdGet, key)
	if err != nil {
		return nil, wrap("get", key, err)
	}
	switch r.Kind {
	case resp.KindBulk:
		return r.Str, nil
	case resp.KindNil:
		return nil, store.ErrNotFound
	case resp.KindError:
		return nil, wrap("get", key, keyError(r.Str, key))
	}
	return nil, wrap("get", key, unexpected(r))
}

// Exists reports whether key holds a value.
func (c *Client) Exists(ctx context.Context, key []byte) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, wrap("exists", key, err)
	}
	r, err := c.roundTrip(ctx, cmdExists, key)
	if err != nil {
		return false, wrap("exists", key, err)
	}
	switch r.Kind {
	case resp.KindInt:
		return r.Int == 1, nil
	case resp.KindError:
		return false, wrap("exists", key, keyError(r.Str, key))
	}
	return false, wrap("exists", key, unexpected(r))
}

// Del deletes key, or returns store.ErrNotFound.
func (c *Client) Del(ctx context.Context, key []byte) error {
	if err := checkKey(key); err != nil {
		return wrap("del", key, err)
	}
	r, err := c.roundTrip(ctx, cmdDel, key)
	if err != nil {
		return wrap("del", key, err)
	}
	switch r.Kind {
	case resp.KindSimple:
		return nil
	case resp.KindError:
		return wrap("del", key, keyError(r.Str, key))
	}
	return wrap("del", key, unexpected(r))
}

// GetMany returns one value per key, nil where a key is missing (an empty
// value is a non-nil empty slice). The keys go in MGETs of at most
// MGETBatch keys, all pipelined on one connection.
func (c *Client) GetMany(ctx context.Context, keys [][]byte) ([][]byte, error) {
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, wrap("mget", k, err)
		}
	}
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	batches := (len(keys) + MGETBatch - 1) / MGETBatch
	batch := func(i int) [][]byte { return keys[i*MGETBatch : min((i+1)*MGETBatch, len(keys))] }
	var first error
	fail := func(err error) {
		if first == nil {
			first = err
		}
	}
	err := c.pipeline(ctx, batches,
		func(w *resp.Writer) {
			for i := 0; i < batches; i++ {
				b := batch(i)
				w.Array(1 + len(b))
				w.Bulk(cmdMGet)
				for _, k := range b {
					w.Bulk(k)
				}
			}
		},
		func(i int, r resp.Reply) {
			b := batch(i)
			switch {
			case r.Kind == resp.KindError:
				fail(fmt.Errorf("zdb mget (keys %d-%d): %w", i*MGETBatch, i*MGETBatch+len(b)-1, serverError(r.Str, 0)))
				return
			case r.Kind != resp.KindArray || len(r.Elems) != len(b):
				fail(fmt.Errorf("zdb mget (keys %d-%d): %w", i*MGETBatch, i*MGETBatch+len(b)-1, unexpected(r)))
				return
			}
			for j, e := range r.Elems {
				switch e.Kind {
				case resp.KindBulk:
					out[i*MGETBatch+j] = e.Str
				case resp.KindNil:
				case resp.KindError:
					fail(wrap("mget", b[j], keyError(e.Str, b[j])))
				default:
					fail(wrap("mget", b[j], unexpected(e)))
				}
			}
		})
	if err != nil {
		if bare(err) {
			return nil, err
		}
		return nil, fmt.Errorf("zdb mget (%d keys): %w", len(keys), err)
	}
	if first != nil {
		return nil, first
	}
	return out, nil
}

// SetMany stores values[i] under keys[i], pipelining every SET on one
// connection, and returns the stored keys (as Set does).
//
// Every write is attempted even when some fail: the error is then the first
// failure (naming its index), and the returned slice still holds the stored
// key of every write that succeeded (nil for those that failed). On a
// transport error or cancellation the slice is nil: writes whose reply was
// not read may or may not have been applied. A key or value over the limits
// fails the whole call before anything is sent.
func (c *Client) SetMany(ctx context.Context, keys, values [][]byte) ([][]byte, error) {
	if len(keys) != len(values) {
		return nil, fmt.Errorf("zdb setmany: %d keys but %d values", len(keys), len(values))
	}
	for i := range keys {
		if err := checkSet(keys[i], values[i]); err != nil {
			return nil, fmt.Errorf("zdb setmany [%d] %q: %w", i, keys[i], err)
		}
	}
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var first error
	err := c.pipeline(ctx, len(keys),
		func(w *resp.Writer) {
			for i := range keys {
				w.Command(cmdSet, keys[i], values[i])
			}
		},
		func(i int, r resp.Reply) {
			stored, _, err := setResult(keys[i], r)
			if err != nil {
				if first == nil {
					first = fmt.Errorf("zdb setmany [%d] %q: %w", i, keys[i], err)
				}
				return
			}
			out[i] = stored
		})
	if err != nil {
		if bare(err) {
			return nil, err
		}
		return nil, fmt.Errorf("zdb setmany (%d keys): %w", len(keys), err)
	}
	return out, first
}
