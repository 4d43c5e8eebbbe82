//go:build linux

package mount

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Options configures a mount. Zero values mean defaults.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
	// EntryTimeout and AttrTimeout are how long the kernel keeps a tree
	// entry (a name, a missing name) and a tree directory's attributes
	// (default 10 s each): Changed invalidates them explicitly, the
	// timeout only bounds a change the node failed to report. What lies
	// under a CID is immutable and kept an hour.
	EntryTimeout, AttrTimeout time.Duration
	// ReadAhead is the kernel's readahead for the mount, set through
	// /sys/class/bdi after mounting (0: 16 MiB; negative: leave the
	// kernel's 128 KiB). It needs root; without it the mount keeps the
	// kernel's and says so at debug level.
	ReadAhead int
	FSName    string // shown in /proc/mounts, default "fungi"
}

const (
	defaultTreeTimeout = 10 * time.Second
	defaultReadAhead   = 16 << 20
	// maxRead is the largest READ the kernel sends (go-fuse's MaxWrite
	// sets max_read and max_pages): 1 MiB reads, not 128 KiB ones.
	maxRead = 1 << 20
	// subtype makes the mount's type "fuse.fungi" in /proc/self/mountinfo,
	// which ClearStale recognises.
	subtype = "fungi"
)

// Mount is a live FUSE mount of a node's shared tree.
type Mount struct {
	dir    string
	dev    uint64 // st_dev of the mount
	server *fuse.Server
	root   *treeDir
	fsys   *filesystem
	log    *slog.Logger

	done       chan struct{} // closed when the server stopped serving
	workerDone chan struct{} // closed when the invalidation goroutine ended
	unmountMu  sync.Mutex

	changesMu sync.Mutex
	changes   map[string]struct{} // tree paths to invalidate
	all       bool                // invalidate everything
	kick      chan struct{}       // (capacity 1) wakes the invalidation goroutine
}

// New mounts the node's shared tree read-only at dir: it clears a stale
// mount left there (ClearStale), checks the mount point (Check), mounts,
// and returns once the mount answers. (The brief's name, Mount, is the
// type's.)
func New(dir string, n Node, o Options) (*Mount, error) {
	if n == nil {
		return nil, errors.New("mount: no node")
	}
	abs, err := absDir(dir)
	if err != nil {
		return nil, fmt.Errorf("mount: %s: %w", dir, err)
	}
	if _, err := ClearStale(abs); err != nil {
		return nil, err
	}
	if err := Check(abs); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.EntryTimeout <= 0 {
		o.EntryTimeout = defaultTreeTimeout
	}
	if o.AttrTimeout <= 0 {
		o.AttrTimeout = defaultTreeTimeout
	}
	if o.ReadAhead == 0 {
		o.ReadAhead = defaultReadAhead
	}
	if o.FSName == "" {
		o.FSName = "fungi"
	}
	log := o.Logger.With("dir", abs)

	fsys := &filesystem{
		node:      n,
		log:       log,
		start:     time.Now(),
		uid:       uint32(os.Getuid()),
		gid:       uint32(os.Getgid()),
		treeEntry: o.EntryTimeout,
		treeAttr:  o.AttrTimeout,
	}
	root := &treeDir{base: base{fsys: fsys, path: "/"}}
	root.attr = fsys.attrOf("/", Entry{Kind: Dir})

	// go-fuse's diagnostics (the kernel connection failing, ...) go to
	// the logger as warnings.
	fuseLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	entry, attr, negative := o.EntryTimeout, o.AttrTimeout, o.EntryTimeout
	opts := &fusefs.Options{
		MountOptions: fuse.MountOptions{
			FsName: o.FSName,
			Name:   subtype,
			// "ro": the kernel refuses every write with EROFS before
			// asking. default_permissions: the kernel checks the modes
			// itself (no ACCESS round trips). No noexec: programs run
			// from the mount.
			Options:       []string{"ro", "default_permissions"},
			MaxWrite:      maxRead,
			MaxBackground: 32, // readahead requests in flight
			DisableXAttrs: true,
			// Replies are bytes in memory: splicing them gains nothing
			// and costs pipe syscalls per read (and a warning per 1 MiB
			// read, which overflows the default pipe size).
			DisableSplice:        true,
			EnableSymlinkCaching: true,
			// As root, mount(2) directly (no setuid helper); otherwise,
			// or if that fails, fusermount3.
			DirectMount:      os.Geteuid() == 0,
			DirectMountFlags: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV,
			Logger:           fuseLog,
		},
		// nil timeouts would turn the kernel's caches off.
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &negative,
		NullPermissions: true, // the modes are ours, 0 included
		UID:             fsys.uid,
		GID:             fsys.gid,
		Logger:          fuseLog,
	}
	server, err := fuse.NewServer(fusefs.NewNodeFS(root, opts), abs, &opts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount: %s: %w", abs, err)
	}
	m := &Mount{
		dir:        abs,
		server:     server,
		root:       root,
		fsys:       fsys,
		log:        log,
		done:       make(chan struct{}),
		workerDone: make(chan struct{}),
		changes:    make(map[string]struct{}),
		kick:       make(chan struct{}, 1),
	}
	go func() {
		server.Serve()
		close(m.done)
	}()
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		return nil, fmt.Errorf("mount: %s: %w", abs, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		server.Unmount()
		return nil, fmt.Errorf("mount: %s: %w", abs, err)
	}
	m.dev = st.Dev
	live.add(m.dev)
	m.setReadAhead(o.ReadAhead)
	go m.invalidate()
	log.Info("mount: mounted", "fsname", o.FSName)
	return m, nil
}

// Dir returns the mount point (absolute).
func (m *Mount) Dir() string { return m.dir }

// Unmount ends the mount: a clean unmount, retried briefly while the mount
// is busy, then a lazy one (the mount leaves the namespace at once; the
// kernel ends it when the last open file is closed, or at once when the
// FUSE control filesystem lets us abort it). Idempotent; nil if the mount
// had already ended.
func (m *Mount) Unmount() error {
	m.unmountMu.Lock()
	defer m.unmountMu.Unlock()
	select {
	case <-m.done:
		<-m.workerDone
		return nil
	default:
	}
	err := m.server.Unmount() // retries for about 0.3 s
	if err == nil {
		<-m.done
		<-m.workerDone
		return nil
	}
	if lerr := lazyUnmount(m.dir); lerr != nil {
		select {
		case <-m.done: // unmounted meanwhile by someone else
			<-m.workerDone
			return nil
		case <-time.After(time.Second):
		}
		return fmt.Errorf("mount: %s: unmount: %v; lazy unmount: %w", m.dir, err, lerr)
	}
	m.log.Warn("mount: busy, detached lazily", "err", err)
	select {
	case <-m.done:
	case <-time.After(time.Second):
		if m.abort() {
			<-m.done
		} else {
			m.log.Warn("mount: served until its last open file is closed")
			return nil
		}
	}
	<-m.workerDone
	return nil
}

// abort ends the kernel's connection through the FUSE control filesystem,
// if mounted (open files then fail with ENOTCONN).
func (m *Mount) abort() bool {
	p := fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", unix.Minor(m.dev))
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.WriteString("1")
	return err == nil
}

// Wait returns when the mount has ended: by Unmount, or by someone
// unmounting it (fusermount3 -u, umount).
func (m *Mount) Wait() {
	<-m.done
	<-m.workerDone
}

// setReadAhead raises the kernel's readahead for the mount's backing
// device (it stays at 128 KiB otherwise: the INIT reply can only lower
// it).
func (m *Mount) setReadAhead(bytes int) {
	if bytes < 0 {
		return
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(m.dev), unix.Minor(m.dev))
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(strconv.Itoa(bytes / 1024))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		m.log.Debug("mount: kernel readahead left at its default", "err", err)
	}
}

// live holds the devices of this process's mounts: ClearStale leaves them
// alone. (Mounts are process-wide, so this is the package's one global.)
var live = liveMounts{devs: make(map[uint64]bool)}

type liveMounts struct {
	mu   sync.Mutex
	devs map[uint64]bool
}

func (l *liveMounts) add(dev uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.devs[dev] = true
}

func (l *liveMounts) remove(dev uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.devs, dev)
}

func (l *liveMounts) has(dev uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.devs[dev]
}
