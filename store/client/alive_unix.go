//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package client

import (
	"errors"
	"syscall"
	"time"
)

// alive probes an idle connection without blocking: a peer that closed it
// (a server restart, QUIT, a fatal error) shows as end of stream, and bytes
// nobody asked for mean the stream is out of step. Either way it must not
// be used.
func (cn *conn) alive() bool {
	if cn.br.Buffered() > 0 {
		return false
	}
	sc, ok := cn.nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	// a past deadline would make rc.Read fail before probing
	if cn.nc.SetReadDeadline(time.Time{}) != nil {
		return false
	}
	ok = false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0: // unsolicited data
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
			ok = true // nothing to read: still open
		}
		return true // never wait
	})
	return err == nil && ok
}
