//go:build linux

package mount

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Check says whether dir can be mounted on: it exists, is an empty
// directory and no mount point, /dev/fuse can be opened, and the process
// is root or has fusermount3. It returns nil or one line per problem
// (errors.Join), e.g. "mount: /mnt/x: not empty".
func Check(dir string) error {
	var problems []error
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	abs, err := absDir(dir)
	if err != nil {
		add("mount: %s: %v", dir, err)
		abs = ""
	}
	if abs != "" {
		st, err := os.Stat(abs)
		switch {
		case errors.Is(err, iofs.ErrNotExist):
			add("mount: %s: no such directory", abs)
		case errors.Is(err, unix.ENOTCONN):
			add("mount: %s: a FUSE mount whose server is gone (fusermount3 -u -z %s clears it)", abs, abs)
		case errors.Is(err, iofs.ErrPermission):
			add("mount: %s: permission denied", abs)
		case err != nil:
			add("mount: %s: %v", abs, errors.Unwrap(err))
		case !st.IsDir():
			add("mount: %s: not a directory", abs)
		default:
			if m, ok := mountAt(abs); ok && strings.HasPrefix(m.fsType, "fuse") && disconnected(abs) {
				add("mount: %s: a FUSE mount whose server is gone (fusermount3 -u -z %s clears it)", abs, abs)
			} else if ok {
				add("mount: %s: already a mount point (%s)", abs, m.fsType)
			} else if empty, err := isEmpty(abs); errors.Is(err, iofs.ErrPermission) {
				add("mount: %s: permission denied", abs)
			} else if err != nil {
				add("mount: %s: %v", abs, err)
			} else if !empty {
				add("mount: %s: not empty", abs)
			} else if os.Geteuid() != 0 && unix.Access(abs, unix.W_OK|unix.X_OK) != nil {
				add("mount: %s: permission denied", abs) // fusermount3 needs write access
			}
		}
	}
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err == nil {
		f.Close()
	} else if errors.Is(err, unix.EACCES) {
		add("mount: /dev/fuse: permission denied")
	} else {
		add("mount: /dev/fuse: not available (load the fuse module or run in a container with --device /dev/fuse)")
	}
	if os.Geteuid() != 0 {
		if _, err := fusermount(); err != nil {
			add("mount: fusermount3: not found (install fuse3, or mount as root)")
		}
	}
	return errors.Join(problems...)
}

// ClearStale unmounts (lazily) a FUSE mount left at dir by a process that
// is gone: one whose server no longer answers (ENOTCONN), or any fungi
// mount not served by this process. It reports whether it cleared one.
// Other mounts at dir are left alone (Check then reports them).
func ClearStale(dir string) (bool, error) {
	abs, err := absDir(dir)
	if err != nil {
		return false, fmt.Errorf("mount: %s: %w", dir, err)
	}
	cleared := false
	for range 16 { // stacked mounts, topmost first
		m, ok := mountAt(abs)
		if !ok || !strings.HasPrefix(m.fsType, "fuse") || live.has(m.dev) {
			return cleared, nil
		}
		if m.fsType != "fuse."+subtype && !disconnected(abs) {
			return cleared, nil
		}
		if err := lazyUnmount(abs); err != nil {
			return cleared, fmt.Errorf("mount: %s: clearing a stale mount: %w", abs, err)
		}
		cleared = true
	}
	return cleared, nil
}

// disconnected says whether dir is a FUSE mount whose server is gone:
// statfs, which the kernel always asks the server (a stat may be answered
// from its attribute cache), fails with ENOTCONN. A live server that hangs
// would hang the call: after 2 s it counts as alive (and the goroutine
// stays blocked until the server answers).
func disconnected(dir string) bool {
	res := make(chan error, 1)
	go func() {
		var st unix.Statfs_t
		res <- unix.Statfs(dir, &st)
	}()
	select {
	case err := <-res:
		return errors.Is(err, unix.ENOTCONN)
	case <-time.After(2 * time.Second):
		return false
	}
}

// lazyUnmount detaches the mount at dir now (MNT_DETACH): as root with
// umount2, else (or if that is refused) with fusermount3 -u -z.
func lazyUnmount(dir string) error {
	var err error
	if os.Geteuid() == 0 {
		if err = unix.Unmount(dir, unix.MNT_DETACH); err == nil {
			return nil
		}
	}
	bin, ferr := fusermount()
	if ferr != nil {
		if err != nil {
			return err
		}
		return ferr
	}
	out, ferr := exec.Command(bin, "-u", "-z", dir).CombinedOutput()
	if ferr != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return errors.New(msg)
		}
		return ferr
	}
	return nil
}

func fusermount() (string, error) {
	for _, name := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		if p := "/bin/" + name; isExecutable(p) {
			return p, nil
		}
	}
	return "", errors.New("fusermount3 not found")
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// absDir makes dir absolute with its parent's symlinks resolved, without
// touching dir itself (a dead mount there fails every stat).
func absDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	parent, base := filepath.Split(abs)
	if base == "" {
		return abs, nil
	}
	if real, err := filepath.EvalSymlinks(parent); err == nil {
		return filepath.Join(real, base), nil
	}
	return abs, nil
}

func isEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return false, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return true, nil
}

// mountInfo is one line of /proc/self/mountinfo (proc(5)).
type mountInfo struct {
	dev        uint64 // unix.Mkdev(major, minor)
	mountPoint string
	fsType     string
	source     string
}

// mountAt returns the topmost mount whose mount point is dir.
func mountAt(dir string) (mountInfo, bool) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return mountInfo{}, false
	}
	var top mountInfo
	found := false
	for line := range strings.Lines(string(data)) {
		if m, ok := parseMountinfo(strings.TrimSuffix(line, "\n")); ok && m.mountPoint == dir {
			top, found = m, true // later lines are mounted on top
		}
	}
	return top, found
}

// parseMountinfo parses one line of /proc/self/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// (id, parent id, major:minor, root, mount point, options, optional
// fields, "-", type, source, super options; spaces and such in paths as
// octal escapes, so fields are split at single spaces only).
func parseMountinfo(line string) (mountInfo, bool) {
	f := strings.Split(line, " ")
	if len(f) < 10 {
		return mountInfo{}, false
	}
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+2 >= len(f) {
		return mountInfo{}, false
	}
	majStr, minStr, ok := strings.Cut(f[2], ":")
	if !ok {
		return mountInfo{}, false
	}
	maj, err1 := strconv.ParseUint(majStr, 10, 32)
	min, err2 := strconv.ParseUint(minStr, 10, 32)
	if err1 != nil || err2 != nil {
		return mountInfo{}, false
	}
	return mountInfo{
		dev:        unix.Mkdev(uint32(maj), uint32(min)),
		mountPoint: unescapeMountinfo(f[4]),
		fsType:     unescapeMountinfo(f[sep+1]),
		source:     unescapeMountinfo(f[sep+2]),
	}, true
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space,
// \011, \012, \134).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] <= '3' && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
