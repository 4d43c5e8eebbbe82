//go:build linux

package mount

import (
	"path"
	"strings"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
)

// Changed tells the mount that the shared tree's entries at paths were
// created, replaced or removed. It never blocks: the paths are queued
// (duplicates merged) and a goroutine of the mount invalidates what the
// kernel caches of them. "/" stands for everything (ChangedAll); an empty
// list does nothing. Callable from any goroutine, also after the mount
// ended.
func (m *Mount) Changed(paths []string) {
	if len(paths) == 0 {
		return
	}
	m.changesMu.Lock()
	for _, p := range paths {
		p = path.Clean("/" + p)
		switch {
		case p == "/":
			m.all = true
			continue
		case p == "/"+ipfsName || strings.HasPrefix(p, "/"+ipfsName+"/"):
			continue // shadowed by the hidden directory
		}
		m.changes[p] = struct{}{}
	}
	m.changesMu.Unlock()
	m.wake()
}

// ChangedAll tells the mount that anything in the shared tree may have
// changed: the kernel forgets every tree name it knows (names it looked
// up in vain stay missing until the entry timeout; Changed with their
// paths drops them at once).
func (m *Mount) ChangedAll() {
	m.changesMu.Lock()
	m.all = true
	m.changesMu.Unlock()
	m.wake()
}

func (m *Mount) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// invalidate is the goroutine that tells the kernel about changes. It
// notifies from here, never from a request, and holds no lock while it
// does: the kernel takes the directory's lock for a notification, which
// a request in flight in that directory may hold.
func (m *Mount) invalidate() {
	defer close(m.workerDone)
	defer live.remove(m.dev)
	for {
		select {
		case <-m.done:
			return
		case <-m.kick:
		}
		m.changesMu.Lock()
		changes, all := m.changes, m.all
		m.changes, m.all = make(map[string]struct{}), false
		m.changesMu.Unlock()
		if all {
			m.invalidateTree(&m.root.Inode)
			m.notify("content", "/", m.root.Inode.NotifyContent(0, 0))
			continue
		}
		for p := range changes {
			m.invalidatePath(p)
		}
	}
}

// invalidatePath drops the kernel's entry for tree path p: under the
// deepest directory of p that the kernel knows, the next name of p (which
// may be a missing name the kernel remembers). A removed entry the kernel
// knows is deleted (watchers see it go); a tree directory's known names
// are dropped with it, as the directory keeps its inode when replaced.
func (m *Mount) invalidatePath(p string) {
	dir := &m.root.Inode
	names := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, name := range names {
		child := dir.GetChild(name)
		if child != nil && i < len(names)-1 {
			dir = child
			continue
		}
		// NotifyEntry and NotifyDelete also drop the listing the kernel
		// keeps of dir (FOPEN_CACHE_DIR): the kernel counts the directory
		// as changed
		if child == nil {
			m.notify("entry", p, dir.NotifyEntry(name))
			return
		}
		if _, err := m.fsys.node.TreeStat(p); err != nil {
			m.notify("delete", p, dir.NotifyDelete(name, child))
		} else {
			m.notify("entry", p, dir.NotifyEntry(name))
		}
		if _, ok := child.Operations().(*treeDir); ok {
			m.invalidateTree(child)
		}
		return
	}
}

// invalidateTree drops the kernel's entries for every name it knows in
// tree directory dir and, recursively, in its tree subdirectories.
func (m *Mount) invalidateTree(dir *fusefs.Inode) {
	for name, child := range dir.Children() {
		if dir.IsRoot() && name == ipfsName {
			continue
		}
		if _, ok := child.Operations().(*treeDir); ok {
			m.invalidateTree(child)
		}
		m.notify("entry", name, dir.NotifyEntry(name))
	}
	// names the kernel never looked up may be new too: drop the listing
	m.notify("content", "", dir.NotifyContent(0, 0))
}

// notify logs a failed notification at debug level: the kernel answers
// ENOENT for a name it had already dropped, which is the common case.
func (m *Mount) notify(kind, p string, errno syscall.Errno) {
	if errno != 0 && errno != syscall.ENOENT {
		m.log.Debug("mount: invalidation", "kind", kind, "path", p, "err", errno)
	}
}
