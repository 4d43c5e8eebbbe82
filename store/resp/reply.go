package resp

import (
	"bufio"
	"errors"
	"io"
	"strconv"
)

// Kind is the type of a reply.
type Kind byte

// Reply kinds, named by their RESP2 type byte.
const (
	KindSimple Kind = '+'
	KindError  Kind = '-'
	KindInt    Kind = ':'
	KindBulk   Kind = '$'
	KindArray  Kind = '*'
	KindNil    Kind = '_' // null bulk string or null array
)

// Reply is one decoded server reply.
type Reply struct {
	Kind  Kind
	Str   []byte  // simple, error and bulk payloads
	Int   int64   // integers
	Elems []Reply // arrays
}

// Err returns the reply as an error when it is an error reply, else nil.
func (r Reply) Err() error {
	if r.Kind == KindError {
		return ServerError(r.Str)
	}
	return nil
}

// ServerError is an error reply from the server, without the leading '-'.
type ServerError string

func (e ServerError) Error() string { return string(e) }

// ReplyReader reads replies from a server stream. Unlike Reader, the slices in
// a Reply are freshly allocated and owned by the caller.
type ReplyReader struct {
	br     *bufio.Reader
	limits Limits
}

// NewReplyReader returns a ReplyReader over br; zero limits take defaults.
func NewReplyReader(br *bufio.Reader, l Limits) *ReplyReader {
	r := NewReader(br, l)
	return &ReplyReader{br: br, limits: r.limits}
}

// ReadReply reads one reply, nesting arrays up to a small depth.
func (r *ReplyReader) ReadReply() (Reply, error) { return r.read(0) }

const maxDepth = 8

func (r *ReplyReader) read(depth int) (Reply, error) {
	if depth > maxDepth {
		return Reply{}, protoErr("reply nested too deep")
	}
	kind, err := r.br.ReadByte()
	if err != nil {
		return Reply{}, err
	}
	rr := Reader{br: r.br, limits: r.limits}
	switch kind {
	case '+', '-':
		line, err := rr.readLine(r.limits.MaxInline)
		if err != nil {
			return Reply{}, lineErr(err)
		}
		return Reply{Kind: Kind(kind), Str: append([]byte(nil), line...)}, nil
	case ':':
		n, err := rr.readInt()
		if err != nil {
			return Reply{}, unexpected(err)
		}
		return Reply{Kind: KindInt, Int: n}, nil
	case '$':
		n, err := rr.readInt()
		if err != nil {
			return Reply{}, unexpected(err)
		}
		if n == -1 {
			return Reply{Kind: KindNil}, nil
		}
		if n < 0 || n > int64(r.limits.MaxBulk) {
			return Reply{}, protoErr("invalid bulk length")
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r.br, b); err != nil {
			return Reply{}, unexpected(err)
		}
		if err := rr.crlf(); err != nil {
			return Reply{}, err
		}
		return Reply{Kind: KindBulk, Str: b}, nil
	case '*':
		n, err := rr.readInt()
		if err != nil {
			return Reply{}, unexpected(err)
		}
		if n == -1 {
			return Reply{Kind: KindNil}, nil
		}
		if n < 0 || n > int64(r.limits.MaxArgs) {
			return Reply{}, protoErr("invalid multibulk length")
		}
		elems := make([]Reply, 0, min(n, 1024))
		for i := int64(0); i < n; i++ {
			e, err := r.read(depth + 1)
			if err != nil {
				return Reply{}, unexpected(err)
			}
			elems = append(elems, e)
		}
		return Reply{Kind: KindArray, Elems: elems}, nil
	default:
		return Reply{}, protoErr("unknown reply type '%s'", printable(kind))
	}
}

func lineErr(err error) error {
	if errors.Is(err, errLineTooLong) {
		return protoErr("reply line too long")
	}
	return unexpected(err)
}

// String renders a reply for humans, as redis-cli does.
func (r Reply) String() string {
	switch r.Kind {
	case KindSimple, KindBulk:
		return string(r.Str)
	case KindError:
		return "(error) " + string(r.Str)
	case KindInt:
		return "(integer) " + strconv.FormatInt(r.Int, 10)
	case KindNil:
		return "(nil)"
	case KindArray:
		s := "["
		for i, e := range r.Elems {
			if i > 0 {
				s += " "
			}
			s += e.String()
		}
		return s + "]"
	}
	return "?"
}
