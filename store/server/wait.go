package server

import (
	"errors"
	"os"
	"strconv"
	"time"
)

// waiter is a session blocked in WAIT.
type waiter struct {
	sess *session
	ns   string
	cmd  string // upper-case name, or "*"
	ch   chan string
}

// cmdWait blocks until another client runs cmd (or any command, "*") in the
// same namespace, as 0-db's WAIT does, or until the timeout (ms).
func cmdWait(x *session, args [][]byte) bool {
	if len(args) > 3 {
		x.fail("Invalid arguments")
		return true
	}
	name := upper(args[1])
	if _, ok := commands[name]; !ok && name != "*" {
		x.fail("Unknown command to watch")
		return true
	}
	timeout := 5000 * time.Millisecond
	if len(args) == 3 {
		ms, err := strconv.Atoi(string(args[2]))
		if err != nil || len(args[2]) > 16 || ms < 100 || ms > 1800000 {
			x.fail("Invalid timeout")
			return true
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	w := &waiter{sess: x, ns: x.nsName, cmd: name, ch: make(chan string, 1)}
	s := x.s
	s.waitMu.Lock()
	s.waits[w] = struct{}{}
	s.waiters.Add(1)
	s.waitMu.Unlock()
	defer func() {
		s.waitMu.Lock()
		if _, ok := s.waits[w]; ok {
			delete(s.waits, w)
			s.waiters.Add(-1)
		}
		s.waitMu.Unlock()
	}()
	// everything before the WAIT is answered before we block
	if err := x.c.bw.Flush(); err != nil {
		return false
	}
	// notice a client that hangs up while it waits: Peek blocks until the
	// client sends more (kept buffered for after the WAIT) or goes away
	gone := make(chan struct{})
	peekDone := make(chan struct{})
	go func() {
		defer close(peekDone)
		if _, err := x.c.br.Peek(1); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			close(gone)
		}
	}()
	stopPeek := func() {
		x.c.nc.SetReadDeadline(time.Now())
		<-peekDone
		x.c.nc.SetReadDeadline(time.Time{})
		x.c.deadline = false
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case got := <-w.ch:
		stopPeek()
		if got == "" { // server shutting down
			x.fail("Timeout")
			return false
		}
		x.c.w.Simple(got)
	case <-t.C:
		stopPeek()
		x.fail("Timeout")
	case <-gone:
		<-peekDone
		return false
	}
	return true
}

// notify wakes the waiters of other sessions on x's namespace for cmd.
func (s *Server) notify(x *session, cmd string) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	for w := range s.waits {
		if w.sess != x && w.ns == x.nsName && (w.cmd == "*" || w.cmd == cmd) {
			w.ch <- cmd
			delete(s.waits, w)
			s.waiters.Add(-1)
		}
	}
}

func (s *Server) wakeWaiters() {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	for w := range s.waits {
		w.ch <- ""
		delete(s.waits, w)
		s.waiters.Add(-1)
	}
}

func upper(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	return string(out)
}
