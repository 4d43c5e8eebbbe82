package client

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Config configures a Client. Zero values take the defaults below.
type Config struct {
	// Addr is the server: "host:port" for TCP or "unix:/path/to/socket".
	Addr string
	// Namespace is selected on every connection (default "default").
	Namespace string
	// Password is the namespace password, sent with SELECT. Without it a
	// public namespace that has a password is read-only, a private one
	// cannot be selected.
	Password string
	// Admin is the server's admin password, sent with AUTH on every
	// connection when set (needed for NSNEW, NSSET, ... through Do). A
	// server without an admin password makes everyone admin; AUTH is then
	// refused with "Authentication disabled", which is not an error.
	Admin string
	// PoolSize is the most connections open at once (default 8).
	PoolSize int
	// DialTimeout bounds connecting and the AUTH/SELECT handshake
	// (default 5 s; negative: no limit but the context's).
	DialTimeout time.Duration
	// ReadTimeout bounds each wait for data from the server (default 30 s,
	// which leaves room for an fsync under --sync; negative: no limit but
	// the context's).
	ReadTimeout time.Duration
	// WriteTimeout bounds each write to the server (default 30 s; negative:
	// no limit but the context's).
	WriteTimeout time.Duration
}

// Defaults.
const (
	DefaultNamespace    = "default"
	DefaultPoolSize     = 8
	DefaultDialTimeout  = 5 * time.Second
	DefaultReadTimeout  = 30 * time.Second
	DefaultWriteTimeout = 30 * time.Second
)

// Validate checks the config; zero fields are valid (they take defaults).
func (c Config) Validate() error {
	if _, _, err := splitAddr(c.Addr); err != nil {
		return err
	}
	if len(c.Namespace) > 128 {
		return fmt.Errorf("zdb client: namespace name longer than 128 bytes")
	}
	if strings.ContainsAny(c.Namespace, "\r\n") {
		return fmt.Errorf("zdb client: namespace name %q holds a line break", c.Namespace)
	}
	if len(c.Password) >= 256 {
		return errors.New("zdb client: namespace password longer than 255 bytes")
	}
	if len(c.Admin) > 128 {
		return errors.New("zdb client: admin password longer than 128 bytes")
	}
	if c.PoolSize < 0 {
		return fmt.Errorf("zdb client: pool size %d is negative", c.PoolSize)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	return c
}

// splitAddr turns Addr into a network and an address for net.Dial.
func splitAddr(addr string) (network, address string, err error) {
	if addr == "" {
		return "", "", errors.New("zdb client: no server address")
	}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return "", "", fmt.Errorf("zdb client: address %q has no socket path", addr)
		}
		return "unix", path, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", fmt.Errorf("zdb client: address %q: want host:port or unix:/path (%v)", addr, err)
	}
	return "tcp", addr, nil
}
