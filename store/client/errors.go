package client

import (
	"errors"
	"strings"

	"github.com/fungistor/fungistor/store"
	"github.com/fungistor/fungistor/store/resp"
)

var (
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("zdb client: closed")
	// ErrAccessDenied: the server refused a password (AUTH or SELECT) or a
	// command needs admin rights. It wraps the server's resp.ServerError.
	ErrAccessDenied = errors.New("access denied")
)

// mappedError is a server error reply that corresponds to a sentinel error:
// errors.Is matches the sentinel, errors.As finds the resp.ServerError.
type mappedError struct {
	sentinel error
	msg      resp.ServerError
}

func (e *mappedError) Error() string {
	return e.sentinel.Error() + " (server: " + string(e.msg) + ")"
}

func (e *mappedError) Unwrap() []error { return []error{e.sentinel, e.msg} }

// serverError turns an error reply into an error; keyLen is the length of
// the key the command carried (0 when none).
func serverError(msg []byte, keyLen int) error {
	s := string(msg)
	if sentinel := sentinelFor(s, keyLen); sentinel != nil {
		if sentinel == store.ErrNotFound {
			return store.ErrNotFound // an expected outcome, kept cheap
		}
		return &mappedError{sentinel: sentinel, msg: resp.ServerError(s)}
	}
	return resp.ServerError(s)
}

// sentinelFor maps 0-db's error strings (see store/server/commands.go) to the
// store sentinels.
func sentinelFor(msg string, keyLen int) error {
	switch msg {
	case "Key not found":
		return store.ErrNotFound
	case "Key too large":
		return store.ErrKeyTooLong
	case "Invalid key":
		// a key over the limit (GET, DEL, ...) or not an id of a sequential
		// namespace
		if keyLen > store.MaxKeySize {
			return store.ErrKeyTooLong
		}
		return store.ErrInvalidKey
	case "Invalid key, only update authorized", "Invalid argument, key needed", "Invalid argument":
		return store.ErrInvalidKey
	case "Payload too big":
		return store.ErrValueTooLarge
	case "No space left on this namespace":
		return store.ErrNamespaceFull
	case "Access denied", "Permission denied", "Namespace protected and private":
		return ErrAccessDenied
	}
	switch {
	case strings.HasPrefix(msg, "Namespace is temporarily frozen"):
		return store.ErrFrozen
	case strings.Contains(msg, "locked"), strings.Contains(msg, "worm"), strings.Contains(msg, "read-only mode"):
		return store.ErrReadOnly
	case strings.HasPrefix(msg, "Internal Error (stored data is corrupt"):
		return store.ErrCorrupt
	}
	return nil
}

// dropsConn reports error replies after which the server closes the
// connection (or its session is no longer usable).
func dropsConn(msg []byte) bool {
	s := string(msg)
	return strings.HasPrefix(s, "Protocol error") ||
		strings.HasPrefix(s, "Timeout: incomplete command") ||
		strings.HasPrefix(s, "Your active namespace is not available")
}
