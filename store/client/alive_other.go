//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package client

// alive cannot probe the socket on this platform; a connection the server
// closed fails its next call and is discarded then.
func (cn *conn) alive() bool { return cn.br.Buffered() == 0 }
