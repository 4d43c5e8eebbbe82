// Package mount shows the cluster's shared tree as a read-only FUSE
// filesystem (QSFS, issue 12), with go-fuse's fs package.
//
// It owns the mount point, the kernel connection and what the kernel
// caches; the node owns the tree and the content, which the mount sees
// only through [Node]: TreeStat and TreeList answer from memory (they are
// called for every lookup), Stat, List and Open may go to the network.
//
// # Layout
//
//	/                    the shared tree (TreeStat, TreeList)
//	/a/b                 a tree entry: a directory of the tree itself (no CID),
//	                     or a CID: a UnixFS file, directory or symlink
//	/a/b/sub/path        inside a CID directory (List, cached for the inode's life)
//	/.ipfs/<cid>/path    any CID by name, as Kubo's /ipfs mount
//
// /.ipfs is hidden: a lookup of any CID in it works (CIDv0 or v1, as
// cid.Decode reads it), but readdir lists nothing, and the root's listing
// leaves it out, so that find, du, backups and file managers do not walk
// into it; a tree entry named .ipfs at the root is shadowed. A CID that
// is unknown gives ENOENT without a negative cache entry: it shows as soon
// as the cluster has it.
//
// # Choices
//
// Read-only: the mount is mounted "ro", so the kernel itself answers EROFS
// to every write, create, mkdir, unlink, rename, symlink, link, chmod,
// truncate, utimes and setxattr; the inodes answer EROFS too (go-fuse's
// defaults would be ENOTSUP, or success for unlink and rmdir).
//
// Modes: a file or directory with UnixFS permissions shows them masked
// with 0555; one without shows 0555, so that programs and scripts run from
// the mount (it is not mounted noexec). Symlinks are 0777, as every Linux
// symlink. The owner is the mounting user. Without allow_other (not
// offered), only that user can use the mount; the kernel checks the modes
// itself (default_permissions).
//
// Inode numbers are a hash of the path, so they are stable across lookups
// and mounts. go-fuse knows an inode by (type, number, generation): the
// generation is a hash of what the entry is (CID, mode, mtime, ...), so a
// replaced entry is a new inode, while a tree directory keeps its inode
// and answers getattr from the tree.
//
// Kernel caches: a tree entry (names, negative lookups) and a tree
// directory's attributes are kept Options.EntryTimeout and AttrTimeout
// (10 s), and [Mount.Changed] invalidates them at once; anything under a
// CID is immutable and kept an hour, file pages across opens
// (FOPEN_KEEP_CACHE), CID directory listings too (FOPEN_CACHE_DIR). Never
// direct I/O, which would break mmap and exec. READDIRPLUS answers from
// the directory's listing, never from the network: an entry the node has
// not described yet (Kind 0) is listed without attributes, and its Stat
// waits for a lookup.
//
// Reads: 1 MiB READ requests (MaxWrite raises max_pages) and a 16 MiB
// kernel readahead, set through /sys/class/bdi after mounting (the INIT
// reply can only lower the 128 KiB default; writing it needs root). Each
// open file has its own Reader, whose prefetch serves sequential reads. A
// read returns every byte asked for up to the end of the file, or EIO:
// content whose holders cannot be reached is EIO, with one log line per
// CID a minute, never short or wrong bytes. Extended attributes are off
// (unanswered xattr requests made ls -lR of 100,000 files 8x slower).
//
// Mounting: as root with mount(2) directly, otherwise through fusermount3.
// A mount left by a killed process (statfs fails with ENOTCONN, or any
// fungi mount this process does not serve) is lazily unmounted by
// [ClearStale], which [New] runs first. [Mount.Unmount] unmounts, retrying
// briefly while busy, then lazily; [Mount.Wait] also returns when someone
// else unmounted (fusermount3 -u).
//
// The process serving a mount must not mmap, or exec, files of that
// mount: a thread faulting on a page of the mount (exec's vfork child
// does) stalls the Go runtime's stop-the-world, and with it the server.
// Reading them with read(2) is fine.
//
// Usage:
//
//	m, err := mount.New("/mnt/fungi", node, mount.Options{Logger: log})
//	if err != nil { ... }
//	defer m.Unmount()
//	...
//	m.Changed([]string{"/docs/report.pdf"}) // after the tree changed
package mount
