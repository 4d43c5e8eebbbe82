package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// ErrCorruptIdentity is returned (wrapped) by LoadOrCreateIdentity when the key
// file exists but does not hold a libp2p private key. The file is left as it
// is: replacing it would silently give the node a new peer ID.
var ErrCorruptIdentity = errors.New("corrupt identity key file")

// maxIdentityFile bounds what LoadOrCreateIdentity reads: an Ed25519 key is
// 68 bytes and even an RSA-4096 key is under 3 KiB.
const maxIdentityFile = 64 << 10

// LoadOrCreateIdentity returns the node's private key kept at path. When the
// file does not exist it generates an Ed25519 key and writes it there (mode
// 0600, parent directories 0700), as libp2p's protobuf encoding of the key
// (crypto.MarshalPrivateKey). Creation never overwrites: if another process
// creates the file first, its key is loaded and returned instead.
//
// A file that exists but cannot be decoded is an error wrapping
// ErrCorruptIdentity; it is never replaced. Keys of other libp2p types (RSA,
// secp256k1, ECDSA) are accepted when loading, so an existing identity keeps
// its peer ID.
func LoadOrCreateIdentity(path string) (crypto.PrivKey, error) {
	priv, err := loadIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return priv, err
	}
	priv, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("p2p: generate identity: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("p2p: encode identity: %w", err)
	}
	if err := createExclusive(path, raw); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadIdentity(path) // lost a race with another creator
		}
		return nil, fmt.Errorf("p2p: write identity %q: %w", path, err)
	}
	return priv, nil
}

func loadIdentity(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("p2p: read identity: %w", err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxIdentityFile+1))
	n := len(buf)
	if err != nil {
		return nil, fmt.Errorf("p2p: read identity %q: %w", path, err)
	}
	if n > maxIdentityFile {
		return nil, fmt.Errorf("p2p: identity %q: %w: larger than %d bytes", path, ErrCorruptIdentity, maxIdentityFile)
	}
	if n == 0 {
		return nil, fmt.Errorf("p2p: identity %q: %w: empty file", path, ErrCorruptIdentity)
	}
	priv, err := crypto.UnmarshalPrivateKey(buf[:n])
	if err != nil {
		return nil, fmt.Errorf("p2p: identity %q: %w: %v", path, ErrCorruptIdentity, err)
	}
	return priv, nil
}

// createExclusive writes data to a temporary file, fsyncs it and links it to
// path, which fails with fs.ErrExist rather than replace an existing file. A
// crash leaves either no file or a complete one, never a torn key.
func createExclusive(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".identity-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
