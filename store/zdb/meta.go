package zdb

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Mode is how a namespace assigns keys.
type Mode uint8

const (
	// ModeUser: clients choose keys (1 to 255 bytes).
	ModeUser Mode = iota
	// ModeSeq: the server assigns 64-bit ids, sent as 8 little-endian bytes.
	ModeSeq
)

func (m Mode) String() string {
	if m == ModeSeq {
		return "seq"
	}
	return "user"
}

// ParseMode accepts 0-db's names: "user", "seq" or "sequential".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "user", "userkey", "":
		return ModeUser, nil
	case "seq", "sequential":
		return ModeSeq, nil
	}
	return 0, fmt.Errorf("unknown mode %q (want user or seq)", s)
}

func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	*m = v
	return err
}

// Settings are a namespace's persistent options (NSSET).
type Settings struct {
	Mode     Mode   `json:"mode"`
	Password string `json:"password,omitempty"`
	// Public namespaces can be read without the password; writes always
	// need it when one is set.
	Public bool `json:"public"`
	// Worm (write once, read many) refuses overwrites and deletes.
	Worm bool `json:"worm"`
	// MaxSize caps the data bytes of the namespace; 0 is no limit.
	MaxSize int64 `json:"maxsize"`
	// Generation changes when the data files are replaced (FLUSH, compact),
	// so an index checkpoint of other files is never applied to them.
	Generation uint64 `json:"generation"`
}

const metaFile = "zdb-namespace.json"

func newGeneration() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return binary.LittleEndian.Uint64(b[:]) | 1
}

func loadSettings(dir string) (Settings, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if os.IsNotExist(err) {
		return Settings{}, false, nil
	}
	if err != nil {
		return Settings{}, false, err
	}
	var s Settings
	if err := json.Unmarshal(b, &s); err != nil {
		return Settings{}, false, fmt.Errorf("%s: %w", filepath.Join(dir, metaFile), err)
	}
	return s, true, nil
}

func saveSettings(dir string, s Settings) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, metaFile), b)
}

// writeFileAtomic replaces path with data so a crash leaves the old or the
// new content, never a mix.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ValidName reports whether name can be a namespace: 1 to 128 printable
// ASCII bytes without '/', '\' or '~' (compaction uses it), not starting
// with '.'.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 128 || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= '~' || c == '/' || c == '\\' {
			return false
		}
	}
	return true
}
