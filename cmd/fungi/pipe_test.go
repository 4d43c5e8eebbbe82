package main

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// fungi cat into a pipe widens it to 1 MiB; a file is left alone.
func TestWidenPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	widenPipe(w)
	n, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil || n != 1<<20 {
		t.Fatalf("pipe size after widenPipe: %d, %v; want 1 MiB", n, err)
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	widenPipe(f) // not a pipe: nothing to do, nothing fails
}
