//go:build !linux

package mount

import (
	"errors"
	"log/slog"
	"time"
)

// Options configures a mount; see the Linux build.
type Options struct {
	Logger                    *slog.Logger
	EntryTimeout, AttrTimeout time.Duration
	ReadAhead                 int
	FSName                    string
}

// errUnsupported: the mount needs Linux.
var errUnsupported = errors.New("mount: FUSE mounts need Linux")

// Mount is a live mount; on this system there are none.
type Mount struct{}

func Check(dir string) error                            { return errUnsupported }
func ClearStale(dir string) (bool, error)               { return false, nil }
func New(dir string, n Node, o Options) (*Mount, error) { return nil, errUnsupported }
func (m *Mount) Dir() string                            { return "" }
func (m *Mount) Changed(paths []string)                 {}
func (m *Mount) ChangedAll()                            {}
func (m *Mount) Unmount() error                         { return nil }
func (m *Mount) Wait()                                  {}
