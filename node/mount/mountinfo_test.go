//go:build linux

package mount

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var mountinfoSeeds = []string{
	"36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
	"47 27 0:42 / /tmp/qt/mnt ro,nosuid,nodev,relatime - fuse.fungi fungi ro,user_id=0,group_id=0,default_permissions,max_read=1048576",
	`52 27 0:45 / /tmp/with\040space\134and\011tab rw shared:5 - fuse.fungi my\040fs rw`,
	"22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw",
	"1 2 3:4 / /x rw -",
	"",
}

func TestParseMountinfo(t *testing.T) {
	for _, tc := range []struct {
		line string
		want mountInfo
		ok   bool
	}{
		{mountinfoSeeds[0], mountInfo{unix.Mkdev(98, 0), "/mnt/parent", "ext3", "/dev/root"}, true},
		{mountinfoSeeds[1], mountInfo{unix.Mkdev(0, 42), "/tmp/qt/mnt", "fuse.fungi", "fungi"}, true},
		{mountinfoSeeds[2], mountInfo{unix.Mkdev(0, 45), "/tmp/with space\\and\ttab", "fuse.fungi", "my fs"}, true},
		{"36 35 98:0 /mnt1 /mnt/a\u00a0b rw - ext3 /dev/root rw", mountInfo{unix.Mkdev(98, 0), "/mnt/a\u00a0b", "ext3", "/dev/root"}, true},
		{mountinfoSeeds[4], mountInfo{}, false}, // no type nor source
		{"36 35 98 /mnt1 /m rw - ext3 /dev/root rw", mountInfo{}, false},
		{"", mountInfo{}, false},
	} {
		got, ok := parseMountinfo(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseMountinfo(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

// escapeMountinfo escapes as the kernel does (mangle_path " \t\n\\").
func escapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FuzzParseMountinfo: any line parses without panicking, and what parses
// survives the kernel's escaping.
func FuzzParseMountinfo(f *testing.F) {
	for _, s := range mountinfoSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, ok := parseMountinfo(line)
		if !ok {
			return
		}
		again := fmt.Sprintf("1 2 %d:%d / %s rw - %s %s rw", unix.Major(m.dev), unix.Minor(m.dev),
			escapeMountinfo(m.mountPoint), escapeMountinfo(m.fsType), escapeMountinfo(m.source))
		if m2, ok := parseMountinfo(again); !ok || m2 != m {
			t.Fatalf("%q parsed as %+v; escaped again (%q), as %+v, %v", line, m, again, m2, ok)
		}
	})
}
