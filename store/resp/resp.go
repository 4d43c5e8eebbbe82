// Package resp reads and writes the Redis serialization protocol (RESP2) as
// 0-db speaks it: requests are arrays of bulk strings (or inline commands typed
// by a human), replies are simple strings, errors, integers, bulk strings and
// arrays.
//
// The Reader never trusts a length it reads: bulk strings and arrays are
// bounded by Limits and refused as soon as their header is read, never after
// waiting for the data they announce. A bulk string larger than allowed makes
// ReadCommand return ErrTooLarge at once; the rest of that command is skipped
// on the wire by the next call, so the connection stays usable. A stream that
// cannot be resynchronised yields a *ProtocolError and must be closed.
//
// A Reader is owned by one goroutine; the slices in a Command it returns are
// valid only until the next call to ReadCommand.
package resp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Limits bounds what a Reader accepts.
type Limits struct {
	// MaxArgs is the largest number of arguments in one command.
	MaxArgs int
	// MaxBulk is the largest bulk string kept; a larger one (up to MaxSkip)
	// makes ReadCommand return ErrTooLarge and is dropped.
	MaxBulk int
	// MaxSkip is the largest bulk string the Reader will skip over to stay in
	// sync; anything larger is a protocol error.
	MaxSkip int64
	// MaxInline is the longest inline command line.
	MaxInline int
}

// DefaultLimits fits 0-db: 8 MiB values and 255-byte keys, with room for the
// command name and other arguments.
func DefaultLimits() Limits {
	return Limits{
		MaxArgs:   1 << 20,
		MaxBulk:   8<<20 + 1024,
		MaxSkip:   1 << 30,
		MaxInline: 64 << 10,
	}
}

// ErrTooLarge reports a command with an argument over Limits.MaxBulk, as
// soon as that argument's header is read. The next ReadCommand skips the rest
// of the command on the wire before reading the next one (see Skipping); the
// connection may go on.
var ErrTooLarge = errors.New("argument too large")

// ProtocolError is a malformed stream. The connection cannot be trusted to be
// in sync any more and should be closed after replying.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

func protoErr(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// keepBuf is the largest argument buffer a Reader keeps between commands.
const keepBuf = 1 << 20

// Command is one request: Args[0] is the command name.
type Command struct {
	Args [][]byte
}

// Reader reads commands from a client stream.
type Reader struct {
	br     *bufio.Reader
	limits Limits
	buf    []byte   // backing store for args of the current command
	args   [][]byte // reused between commands
	endBuf []int    // reused between commands

	// the rest of a command refused with ErrTooLarge, still on the wire
	skipping  bool
	skipBytes int64 // payload left in the refused bulk string (its CRLF follows)
	skipArgs  int64 // bulk strings after it
}

// NewReader returns a Reader over br with the given limits (zero fields take
// DefaultLimits' values).
func NewReader(br *bufio.Reader, l Limits) *Reader {
	d := DefaultLimits()
	if l.MaxArgs <= 0 {
		l.MaxArgs = d.MaxArgs
	}
	if l.MaxBulk <= 0 {
		l.MaxBulk = d.MaxBulk
	}
	if l.MaxSkip <= 0 {
		l.MaxSkip = d.MaxSkip
	}
	if l.MaxInline <= 0 {
		l.MaxInline = d.MaxInline
	}
	return &Reader{br: br, limits: l}
}

// Buffered reports how many bytes are already read from the connection but
// not yet parsed: zero means the next ReadCommand will block on the network,
// so a server should flush its replies first.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// Skipping reports whether the rest of a command refused with ErrTooLarge
// is still to come: the next ReadCommand will wait for it, so a server should
// treat the connection as in the middle of a command.
func (r *Reader) Skipping() bool { return r.skipping }

// ReadCommand reads the next command. It returns io.EOF on a clean end of
// stream between commands, io.ErrUnexpectedEOF inside one, ErrTooLarge (the
// rest of the command will be skipped) or a *ProtocolError.
func (r *Reader) ReadCommand() (Command, error) {
	if cap(r.buf) > keepBuf {
		r.buf = nil // don't pin a large value's buffer to an idle connection
	}
	if r.skipping {
		if err := r.skipRest(); err != nil {
			return Command{}, err
		}
	}
	for {
		b, err := r.br.ReadByte()
		if err != nil {
			return Command{}, err
		}
		switch b {
		case '*':
			return r.readArray()
		case '\r', '\n':
			continue // stray line ends between commands, as redis tolerates
		default:
			if err := r.br.UnreadByte(); err != nil {
				return Command{}, err
			}
			cmd, err := r.readInline()
			if err != nil || len(cmd.Args) > 0 {
				return cmd, err
			}
		}
	}
}

func (r *Reader) readArray() (Command, error) {
	n, err := r.readInt()
	if err != nil {
		return Command{}, unexpected(err)
	}
	if n < 1 {
		// refused at once, as 0-db does (redis skips empty and null
		// arrays: a client that sent one would wait for a reply that never
		// comes). 0-db answers *0 with "Missing arguments" and then, its
		// parser never moving past the line, the same error to everything
		// the client sends after; a negative count fails its allocation
		// ("Internal memory error") and closes. Either way the connection
		// is done, so the caller closes it.
		return Command{}, protoErr("invalid multibulk length")
	}
	if n > int64(r.limits.MaxArgs) {
		// refused before any argument arrives (0-db refuses more than 8
		// with "Too many arguments" and, as for *0, serves nothing after);
		// the arguments that follow cannot be told from commands
		return Command{}, protoErr("too many arguments (%d, at most %d)", n, r.limits.MaxArgs)
	}
	r.buf = r.buf[:0]
	ends := r.endBuf[:0]
	for i := int64(0); i < n; i++ {
		size, err := r.bulkHeader()
		if err != nil {
			return Command{}, err
		}
		if size > int64(r.limits.MaxBulk) || int64(len(r.buf))+size > int64(r.limits.MaxBulk)*2 {
			// refused now, not after the payload arrives; the next call
			// skips the rest of the command
			r.skipping, r.skipBytes, r.skipArgs = true, size, n-i-1
			r.endBuf = ends
			return Command{}, ErrTooLarge
		}
		start := len(r.buf)
		r.buf = grow(r.buf, int(size))
		if _, err := io.ReadFull(r.br, r.buf[start:start+int(size)]); err != nil {
			return Command{}, unexpected(err)
		}
		ends = append(ends, len(r.buf))
		if err := r.crlf(); err != nil {
			return Command{}, err
		}
	}
	r.endBuf = ends
	return Command{Args: r.split(ends)}, nil
}

// bulkHeader reads "$<size>\r\n" and checks size against MaxSkip.
func (r *Reader) bulkHeader() (int64, error) {
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, unexpected(err)
	}
	if b != '$' {
		return 0, protoErr("expected '$', got '%s'", printable(b))
	}
	size, err := r.readInt()
	if err != nil {
		return 0, unexpected(err)
	}
	if size < 0 || size > r.limits.MaxSkip {
		// a null or negative bulk string is never a valid argument (0-db
		// answers $-5 with "Internal memory error", its allocation of the
		// negative size failing, and closes)
		return 0, protoErr("invalid bulk length")
	}
	return size, nil
}

// skipRest drops what is left of a command refused with ErrTooLarge: the rest
// of the refused bulk string and the arguments after it.
func (r *Reader) skipRest() error {
	size, args := r.skipBytes, r.skipArgs
	r.skipping, r.skipBytes, r.skipArgs = false, 0, 0
	for {
		if _, err := r.br.Discard(int(size)); err != nil {
			return unexpected(err)
		}
		if err := r.crlf(); err != nil {
			return err
		}
		if args == 0 {
			return nil
		}
		args--
		var err error
		if size, err = r.bulkHeader(); err != nil {
			return err
		}
	}
}

func (r *Reader) split(ends []int) [][]byte {
	if cap(r.args) < len(ends) {
		r.args = make([][]byte, len(ends))
	}
	args := r.args[:len(ends)]
	start := 0
	for i, end := range ends {
		args[i] = r.buf[start:end:end]
		start = end
	}
	return args
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

func (r *Reader) readInline() (Command, error) {
	line, err := r.readLine(r.limits.MaxInline)
	if err != nil {
		if errors.Is(err, errLineTooLong) {
			return Command{}, protoErr("too big inline request")
		}
		return Command{}, err
	}
	r.buf = append(r.buf[:0], line...)
	var ends []int
	i := 0
	for i < len(r.buf) {
		for i < len(r.buf) && (r.buf[i] == ' ' || r.buf[i] == '\t') {
			i++
		}
		if i == len(r.buf) {
			break
		}
		j := i
		for j < len(r.buf) && r.buf[j] != ' ' && r.buf[j] != '\t' {
			j++
		}
		// compact the word to the front so split's contiguous layout holds
		start := 0
		if len(ends) > 0 {
			start = ends[len(ends)-1]
		}
		copy(r.buf[start:], r.buf[i:j])
		ends = append(ends, start+j-i)
		if len(ends) > r.limits.MaxArgs {
			return Command{}, protoErr("too many arguments (at most %d)", r.limits.MaxArgs)
		}
		i = j
	}
	if len(ends) == 0 {
		return Command{}, nil
	}
	return Command{Args: r.split(ends)}, nil
}

var errLineTooLong = errors.New("line too long")

// readLine reads up to '\n' and strips an optional '\r'; max bounds the
// line without its line end.
func (r *Reader) readLine(max int) ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, errLineTooLong
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			if len(line) > max {
				return nil, errLineTooLong
			}
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > max {
		return nil, errLineTooLong
	}
	return line, nil
}

// readInt reads a decimal integer terminated by CRLF.
func (r *Reader) readInt() (int64, error) {
	line, err := r.readLine(32)
	if err != nil {
		if errors.Is(err, errLineTooLong) {
			return 0, protoErr("invalid length")
		}
		return 0, err
	}
	n, err := strconv.ParseInt(string(line), 10, 64)
	if err != nil {
		return 0, protoErr("invalid length %q", printableBytes(line))
	}
	return n, nil
}

func (r *Reader) crlf() error {
	a, err := r.br.ReadByte()
	if err != nil {
		return unexpected(err)
	}
	b, err := r.br.ReadByte()
	if err != nil {
		return unexpected(err)
	}
	if a != '\r' || b != '\n' {
		return protoErr("expected CRLF after bulk string")
	}
	return nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func printable(b byte) string {
	if b >= 0x20 && b < 0x7f {
		return string(rune(b))
	}
	return fmt.Sprintf("\\x%02x", b)
}

func printableBytes(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return string(b)
}
