package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/fungistor/fungistor/fungi"
)

// The fragment exchange (protocol /fungi/fragments/1.0.0, wire version 1).
//
// A client keeps a few long-lived streams to a peer (opened lazily, at most
// four) and pipelines requests on them: each request carries an id chosen
// by the client, the server answers each request once with the same id, in
// any order. Integers are big-endian; uvarint is encoding/binary's.
//
//	stream   = preamble frame*                   (in each direction)
//	preamble = "FGF" version:u8                  (version 1; the server sends its
//	                                              own after reading the client's)
//	frame    = size:u32 kind:u8 id:u32 body      (size = 5 + len(body),
//	                                              len(body) <= maxFrameBody)
//
// Requests, client to server, by kind:
//
//	1 get      key                               (the key is the rest of the body)
//	2 has      key
//	3 put      klen:uvarint key value            (the value is the rest)
//	4 delete   key
//	5 getmany  n:uvarint (klen:uvarint key)*n
//	6 hasmany  n:uvarint (klen:uvarint key)*n
//	7 putmany  n:uvarint (klen:uvarint key vlen:uvarint value)*n
//
// A reply has its request's kind with the high bit set (0x81 answers 1) and
// its id. Its body starts with a status:
//
//	status = 0 ok | 1 not found | 2 not a cluster member | 3 unsupported |
//	         4 too large | 5 invalid | 6 store error | 7 skipped
//	reply  = status msg              (status != 0; msg is UTF-8, one line, <= 256 bytes)
//	       | 0 value                 (get)
//	       | 0 found:u8              (has)
//	       | 0                       (put, delete, putmany)
//	       | 0 n:uvarint item*n      (getmany, hasmany: one item per key, in order)
//	item   = 0 vlen:uvarint value    (getmany)
//	       | 0 found:u8              (hasmany)
//	       | status mlen:uvarint msg (status != 0; msg <= 128 bytes)
//
// The server stops filling a getmany reply once its values reach
// MaxFragmentBatchBytes: the items after that are "skipped" and the client
// asks for them again. The first value of a reply is never skipped, so each
// round makes progress.
//
// Server rules. put, delete and putmany need the membership gate
// (Host.Allowed) to let the remote in, else "not a cluster member" and
// nothing is written; get and has are open to every peer. A request over
// the limits (MaxFragmentKey, MaxFragmentSize, MaxFragmentBatch,
// MaxFragmentBatchBytes) is answered "too large" and the stream goes on; an
// unknown request kind is answered "unsupported". Anything malformed — a
// bad preamble, a frame size out of bounds (checked before anything is
// allocated), a reply kind from the client, a body that does not parse, a
// frame cut short — resets the stream. An empty key is "invalid".
//
// Flow control (defaultFragLimits): the server reads no further frame while
// 32 requests of a stream are being served, so libp2p's per-stream flow
// control pushes back on the client (which keeps at most 32 in flight per
// stream anyway). Per peer it serves at most 8 streams (more are reset) and
// holds at most 32 MiB of request bodies and 32 MiB of reply values. A
// frame must arrive within a minute of its first byte, a reply must be
// written within a minute, and a stream with no request for 5 minutes is
// closed; the client closes streams it has not used for a minute first.

// FragmentProtocol is the protocol ID of the fragment exchange.
const FragmentProtocol = protocol.ID("/fungi/fragments/1.0.0")

// Limits of the fragment exchange. The server enforces them; the client
// checks them before sending.
const (
	// MaxFragmentKey is the longest key, in bytes.
	MaxFragmentKey = 1 << 10
	// MaxFragmentSize is the largest fragment, in bytes. (A fragment of a
	// 1 MiB block with K=1 is about 1.1 MiB.)
	MaxFragmentSize = 4 << 20
	// MaxFragmentBatch is the most keys in one batched request.
	MaxFragmentBatch = 1024
	// MaxFragmentBatchBytes bounds the keys and values of one batched
	// request, and the values of one batched reply.
	MaxFragmentBatchBytes = 16 << 20
)

// Sentinel errors of the fragment exchange; the client's errors wrap them.
// Not-found is fungi.ErrFragmentNotFound, and a delete on a peer whose
// store cannot delete is errors.ErrUnsupported.
var (
	// ErrNotMember: the peer refused a write because the membership gate
	// does not let this host in.
	ErrNotMember = errors.New("not a cluster member")
	// ErrFragmentTooLarge: a key, value or batch over the limits.
	ErrFragmentTooLarge = errors.New("over the fragment exchange limits")
)

const (
	fragPreamble    = "FGF\x01"
	frameHeaderSize = 9
	// maxFrameBody bounds a frame's body in both directions: a full batch
	// plus its framing (per item at most a status, two uvarints and a
	// message).
	maxFrameBody = MaxFragmentBatchBytes + 256<<10
	maxMsg       = 256
	maxItemMsg   = 128
	// refMin: byte slices at least this long are referenced by an
	// outgoing frame rather than copied into it.
	refMin = 4 << 10
	ioBuf  = 64 << 10
	// replyBuf: the client's read buffer (see readLoop)
	replyBuf = 4 << 10
)

// fragLimits are the exchange's tunables; tests shrink the timeouts.
type fragLimits struct {
	inFlight     int           // requests in flight per stream, both sides
	peerStreams  int           // server: concurrent streams per peer
	peerBytes    int           // server: request bytes, and reply bytes, held per peer
	idle         time.Duration // server: a stream with no request for this long is closed
	frame        time.Duration // the rest of a frame once it started; each write
	streams      int           // client: streams per peer
	openAt       int           // client: open another stream when the least loaded has this many in flight
	clientIdle   time.Duration // client: close a stream unused for this long
	replyTimeout time.Duration // client: fail a stream whose peer sent nothing for this long while requests wait
}

func defaultFragLimits() fragLimits {
	return fragLimits{
		inFlight:     32,
		peerStreams:  8,
		peerBytes:    32 << 20,
		idle:         5 * time.Minute,
		frame:        time.Minute,
		streams:      4,
		openAt:       8,
		clientIdle:   time.Minute,
		replyTimeout: 2 * time.Minute,
	}
}

// poll is how often a client stream's reader wakes up to check its
// timeouts.
func (l fragLimits) poll() time.Duration {
	return max(min(l.clientIdle, l.replyTimeout)/4, 10*time.Millisecond)
}

// fragOp is a request kind.
type fragOp uint8

const (
	opGet fragOp = 1 + iota
	opHas
	opPut
	opDelete
	opGetMany
	opHasMany
	opPutMany

	replyBit = 0x80
)

var opNames = [...]string{opGet: "get", opHas: "has", opPut: "put", opDelete: "delete",
	opGetMany: "get-many", opHasMany: "has-many", opPutMany: "put-many"}

func (op fragOp) String() string {
	if int(op) < len(opNames) && opNames[op] != "" {
		return opNames[op]
	}
	return fmt.Sprintf("op%d", uint8(op))
}

// fragStatus is a reply's or an item's status.
type fragStatus uint8

const (
	stOK fragStatus = iota
	stNotFound
	stNotMember
	stUnsupported
	stTooLarge
	stInvalid
	stStoreError
	stSkipped
)

// statusError is the error a non-ok status stands for.
func statusError(st fragStatus, msg string) error {
	switch st {
	case stOK:
		return nil
	case stNotFound:
		return fungi.ErrFragmentNotFound
	case stNotMember:
		return ErrNotMember
	case stUnsupported:
		return fmt.Errorf("%w: %s", errors.ErrUnsupported, msg)
	case stTooLarge:
		return fmt.Errorf("%w: %s", ErrFragmentTooLarge, msg)
	case stInvalid:
		return fmt.Errorf("invalid request: %s", msg)
	case stStoreError:
		return fmt.Errorf("remote store: %s", msg)
	case stSkipped:
		return errors.New("skipped by the peer")
	}
	return fmt.Errorf("remote error %d: %s", st, msg)
}

// errMalformed is wrapped by the decoders' errors for bytes that break the
// wire format: the stream they came on is reset.
var errMalformed = errors.New("malformed fragment frame")

// errUnknownOp: a well-formed request of a kind this version does not know.
var errUnknownOp = errors.New("unknown operation")

// --- encoding ---

// frameBuf is an outgoing frame body: small fields are copied into it,
// large byte slices (values) only referenced, so a 4 MiB value is never
// copied on its way out.
type frameBuf struct {
	parts [][]byte
	cur   []byte
	n     int
}

func (f *frameBuf) byte(b byte) {
	f.cur = append(f.cur, b)
	f.n++
}

func (f *frameBuf) uvarint(v int) {
	before := len(f.cur)
	f.cur = binary.AppendUvarint(f.cur, uint64(v))
	f.n += len(f.cur) - before
}

func (f *frameBuf) bytes(b []byte) {
	if len(b) < refMin {
		f.cur = append(f.cur, b...)
	} else {
		f.flush()
		f.parts = append(f.parts, b)
	}
	f.n += len(b)
}

func (f *frameBuf) flush() {
	if len(f.cur) > 0 {
		f.parts = append(f.parts, f.cur)
		f.cur = nil // the next bytes go to a new array: parts are never written again
	}
}

// body returns the body's parts; f takes no more bytes after.
func (f *frameBuf) body() [][]byte {
	f.flush()
	return f.parts
}

// flat returns the body as one slice (tests).
func (f *frameBuf) flat() []byte {
	out := make([]byte, 0, f.n)
	for _, p := range f.body() {
		out = append(out, p...)
	}
	return out
}

// writeFrame writes one frame to w (buffered: the caller flushes).
func writeFrame(w *bufio.Writer, kind byte, id uint32, parts [][]byte, n int) error {
	var hdr [frameHeaderSize]byte
	binary.BigEndian.PutUint32(hdr[0:], uint32(5+n))
	hdr[4] = kind
	binary.BigEndian.PutUint32(hdr[5:], id)
	w.Write(hdr[:])
	for _, p := range parts {
		w.Write(p)
	}
	_, err := w.Write(nil) // bufio.Writer's errors are sticky
	return err
}

// fragRequest is a decoded request. Its slices alias the frame body.
type fragRequest struct {
	op     fragOp
	keys   [][]byte
	values [][]byte // put, putmany
}

func encodeRequest(req fragRequest) *frameBuf {
	f := &frameBuf{}
	switch req.op {
	case opGet, opHas, opDelete:
		f.bytes(req.keys[0])
	case opPut:
		f.uvarint(len(req.keys[0]))
		f.bytes(req.keys[0])
		f.bytes(req.values[0])
	case opGetMany, opHasMany:
		f.uvarint(len(req.keys))
		for _, k := range req.keys {
			f.uvarint(len(k))
			f.bytes(k)
		}
	case opPutMany:
		f.uvarint(len(req.keys))
		for i, k := range req.keys {
			f.uvarint(len(k))
			f.bytes(k)
			f.uvarint(len(req.values[i]))
			f.bytes(req.values[i])
		}
	default:
		panic(fmt.Sprintf("p2p: encode fragment request of unknown kind %d", req.op))
	}
	return f
}

// fragReply is a decoded reply; for a non-ok status only msg is set.
type fragReply struct {
	status fragStatus
	msg    string
	value  []byte     // get
	found  bool       // has
	items  []fragItem // getmany, hasmany
}

type fragItem struct {
	status fragStatus
	msg    string
	value  []byte // getmany
	found  bool   // hasmany
}

func failReply(st fragStatus, msg string) fragReply {
	return fragReply{status: st, msg: clip(msg, maxMsg)}
}

func encodeReply(op fragOp, rep fragReply) *frameBuf {
	f := &frameBuf{}
	f.byte(byte(rep.status))
	if rep.status != stOK {
		f.bytes([]byte(rep.msg))
		return f
	}
	switch op {
	case opGet:
		f.bytes(rep.value)
	case opHas:
		f.byte(boolByte(rep.found))
	case opGetMany, opHasMany:
		f.uvarint(len(rep.items))
		for _, it := range rep.items {
			f.byte(byte(it.status))
			switch {
			case it.status != stOK:
				f.uvarint(len(it.msg))
				f.bytes([]byte(it.msg))
			case op == opGetMany:
				f.uvarint(len(it.value))
				f.bytes(it.value)
			default:
				f.byte(boolByte(it.found))
			}
		}
	}
	return f
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// --- decoding ---

type frameHeader struct {
	kind byte
	id   uint32
	n    int // body bytes
}

// readFrameHeader reads a frame header and checks its size against
// maxBody before anyone allocates the body.
func readFrameHeader(r io.Reader, maxBody int) (frameHeader, error) {
	var b [frameHeaderSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return frameHeader{}, fmt.Errorf("%w: header cut short", errMalformed)
		}
		return frameHeader{}, err
	}
	size := binary.BigEndian.Uint32(b[0:])
	if size < 5 || size-5 > uint32(maxBody) {
		return frameHeader{}, fmt.Errorf("%w: frame size %d out of range [5, %d]", errMalformed, size, 5+maxBody)
	}
	return frameHeader{kind: b[4], id: binary.BigEndian.Uint32(b[5:]), n: int(size - 5)}, nil
}

// readReply reads one reply frame and decodes it: err is a frame that
// could not be read, bad one that does not decode. The value of a get's
// reply (a fragment) is read into a buffer of fungi.FragmentBuffer, which
// becomes the caller's (FragmentClient.GetFragmentPooled).
func readReply(r io.Reader) (h frameHeader, rep fragReply, bad, err error) {
	if h, err = readFrameHeader(r, maxFrameBody); err != nil {
		return h, rep, nil, err
	}
	var status [1]byte
	get := h.kind == byte(opGet)|replyBit && h.n >= 2 && h.n-1 <= MaxFragmentSize
	pooled := false
	if get {
		if err := readBody(r, status[:]); err != nil {
			return h, rep, nil, err
		}
		pooled = fragStatus(status[0]) == stOK
	}
	if pooled {
		v := fungi.FragmentBuffer(h.n - 1)
		if err := readBody(r, v); err != nil {
			fungi.ReleaseFragment(v)
			return h, rep, nil, err
		}
		return h, fragReply{status: stOK, value: v}, nil, nil // its full capacity: ReleaseFragment needs it
	}
	body := make([]byte, h.n)
	rest := body
	if get { // the status is read already
		body[0], rest = status[0], body[1:]
	}
	if err := readBody(r, rest); err != nil {
		return h, rep, nil, err
	}
	rep, bad = decodeReply(h.kind, body)
	return h, rep, bad, nil
}

// readBody reads a frame's body (or the rest of it).
func readBody(r io.Reader, body []byte) error {
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: body cut short", errMalformed)
		}
		return err
	}
	return nil
}

// readFrame reads one whole frame.
func readFrame(r io.Reader, maxBody int) (frameHeader, []byte, error) {
	h, err := readFrameHeader(r, maxBody)
	if err != nil {
		return h, nil, err
	}
	body := make([]byte, h.n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: body cut short", errMalformed)
		}
		return h, nil, err
	}
	return h, body, nil
}

func takeUvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: bad uvarint", errMalformed)
	}
	return v, b[n:], nil
}

// takeBytes takes a uvarint length and that many bytes, capped so that an
// append to them cannot overwrite what follows.
func takeBytes(b []byte) ([]byte, []byte, error) {
	n, rest, err := takeUvarint(b)
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(len(rest)) {
		return nil, nil, fmt.Errorf("%w: length %d past the end of the frame", errMalformed, n)
	}
	return rest[:n:n], rest[n:], nil
}

// takeCount takes a batch's item count: at most MaxFragmentBatch (else an
// error wrapping ErrFragmentTooLarge), and at most one per remaining byte,
// so the slices it sizes stay small.
func takeCount(b []byte) (int, []byte, error) {
	n, rest, err := takeUvarint(b)
	if err != nil {
		return 0, nil, err
	}
	if n > MaxFragmentBatch {
		return 0, nil, fmt.Errorf("%w: batch of %d items, max %d", ErrFragmentTooLarge, n, MaxFragmentBatch)
	}
	if n > uint64(len(rest)) {
		return 0, nil, fmt.Errorf("%w: %d items in %d bytes", errMalformed, n, len(rest))
	}
	return int(n), rest, nil
}

// decodeRequest parses a request body. It checks the structure only
// (checkRequest checks the limits), except that a batch count over
// MaxFragmentBatch gives an error wrapping ErrFragmentTooLarge and an
// unknown kind one wrapping errUnknownOp; other errors wrap errMalformed.
func decodeRequest(kind byte, body []byte) (fragRequest, error) {
	op := fragOp(kind)
	req := fragRequest{op: op}
	switch op {
	case opGet, opHas, opDelete:
		req.keys = [][]byte{body[:len(body):len(body)]}
		return req, nil
	case opPut:
		k, v, err := takeBytes(body)
		if err != nil {
			return req, err
		}
		req.keys, req.values = [][]byte{k}, [][]byte{v}
		return req, nil
	case opGetMany, opHasMany, opPutMany:
	default:
		if kind&replyBit != 0 {
			return req, fmt.Errorf("%w: reply kind %#x in a request", errMalformed, kind)
		}
		return req, fmt.Errorf("%w %d", errUnknownOp, kind)
	}
	n, rest, err := takeCount(body)
	if err != nil {
		return req, err
	}
	req.keys = make([][]byte, n)
	if op == opPutMany {
		req.values = make([][]byte, n)
	}
	for i := range n {
		if req.keys[i], rest, err = takeBytes(rest); err != nil {
			return req, err
		}
		if op == opPutMany {
			if req.values[i], rest, err = takeBytes(rest); err != nil {
				return req, err
			}
		}
	}
	if len(rest) != 0 {
		return req, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(rest))
	}
	return req, nil
}

// checkRequest checks a decoded request against the limits.
func checkRequest(req fragRequest) (fragStatus, string) {
	total := 0
	for i, k := range req.keys {
		if err := checkKey(k); err != nil {
			if errors.Is(err, ErrFragmentTooLarge) {
				return stTooLarge, itemPrefix(req, i) + "key of " + fmt.Sprint(len(k)) + " bytes, max " + fmt.Sprint(MaxFragmentKey)
			}
			return stInvalid, itemPrefix(req, i) + "empty key"
		}
		total += len(k)
		if req.values != nil {
			v := req.values[i]
			if len(v) > MaxFragmentSize {
				return stTooLarge, fmt.Sprintf("%svalue of %d bytes, max %d", itemPrefix(req, i), len(v), MaxFragmentSize)
			}
			total += len(v)
		}
	}
	if itemPrefix(req, 0) != "" && total > MaxFragmentBatchBytes {
		return stTooLarge, fmt.Sprintf("batch of %d bytes, max %d", total, MaxFragmentBatchBytes)
	}
	return stOK, ""
}

func itemPrefix(req fragRequest, i int) string {
	switch req.op {
	case opGetMany, opHasMany, opPutMany:
		return fmt.Sprintf("item %d: ", i)
	}
	return ""
}

// checkKey checks one key against the limits; over them, the error wraps
// ErrFragmentTooLarge.
func checkKey(k []byte) error {
	switch {
	case len(k) == 0:
		return errors.New("empty key")
	case len(k) > MaxFragmentKey:
		return fmt.Errorf("key of %d bytes: %w (max %d)", len(k), ErrFragmentTooLarge, MaxFragmentKey)
	}
	return nil
}

// decodeReply parses a reply body; errors wrap errMalformed. Messages are
// made one line of valid UTF-8 (the peer may be hostile).
func decodeReply(kind byte, body []byte) (fragReply, error) {
	var rep fragReply
	if kind&replyBit == 0 {
		return rep, fmt.Errorf("%w: request kind %d in a reply", errMalformed, kind)
	}
	op := fragOp(kind &^ replyBit)
	if len(body) == 0 {
		return rep, fmt.Errorf("%w: empty reply", errMalformed)
	}
	rep.status, body = fragStatus(body[0]), body[1:]
	if rep.status != stOK {
		if len(body) > maxMsg {
			return rep, fmt.Errorf("%w: message of %d bytes", errMalformed, len(body))
		}
		rep.msg = sanitize(string(body))
		return rep, nil
	}
	switch op {
	case opGet:
		if len(body) > MaxFragmentSize {
			return rep, fmt.Errorf("%w: value of %d bytes", errMalformed, len(body))
		}
		rep.value = body[:len(body):len(body)]
	case opHas:
		if len(body) != 1 || body[0] > 1 {
			return rep, fmt.Errorf("%w: bad has reply", errMalformed)
		}
		rep.found = body[0] == 1
	case opPut, opDelete, opPutMany:
		if len(body) != 0 {
			return rep, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(body))
		}
	case opGetMany, opHasMany:
		n, rest, err := takeCount(body)
		if err != nil {
			return rep, fmt.Errorf("%w: %w", errMalformed, err)
		}
		rep.items = make([]fragItem, n)
		for i := range rep.items {
			it := &rep.items[i]
			if len(rest) == 0 {
				return rep, fmt.Errorf("%w: item %d cut short", errMalformed, i)
			}
			it.status, rest = fragStatus(rest[0]), rest[1:]
			switch {
			case it.status != stOK:
				var msg []byte
				if msg, rest, err = takeBytes(rest); err != nil {
					return rep, err
				}
				if len(msg) > maxItemMsg {
					return rep, fmt.Errorf("%w: item message of %d bytes", errMalformed, len(msg))
				}
				it.msg = sanitize(string(msg))
			case op == opGetMany:
				if it.value, rest, err = takeBytes(rest); err != nil {
					return rep, err
				}
				if len(it.value) > MaxFragmentSize {
					return rep, fmt.Errorf("%w: value of %d bytes", errMalformed, len(it.value))
				}
			default:
				if len(rest) == 0 || rest[0] > 1 {
					return rep, fmt.Errorf("%w: bad has item", errMalformed)
				}
				it.found, rest = rest[0] == 1, rest[1:]
			}
		}
		if len(rest) != 0 {
			return rep, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(rest))
		}
	default:
		return rep, fmt.Errorf("%w: reply to unknown kind %d", errMalformed, op)
	}
	return rep, nil
}

// sanitize makes s one line of valid UTF-8 without control characters. It
// never makes s longer and is idempotent.
func sanitize(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// clip sanitizes s and cuts it to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	s = sanitize(s)
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return strings.TrimRight(s, " ")
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// track counts n goroutines serving streams in h.handlers, so that Close
// waits for them; false once the host is closing.
func (h *Host) track(n int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.handlers.Add(n)
	return true
}

// --- server ---

// ServeFragments serves store over FragmentProtocol to the peers the
// membership gate (SetAllowed) lets in: get, has, put (single and
// batched) and delete; any other peer gets ErrNotMember for every
// request. delete needs store to be
// a fungi.FragmentDeleter, else it is answered "unsupported". store is
// called concurrently, with a context that ends with the stream. Calling
// ServeFragments again replaces the store for new streams; RemoveHandler
// (FragmentProtocol) stops serving new ones.
func (h *Host) ServeFragments(store fungi.FragmentStore) {
	h.serveFragments(store, defaultFragLimits())
}

func (h *Host) serveFragments(store fungi.FragmentStore, lim fragLimits) *fragmentServer {
	srv := &fragmentServer{h: h, store: store, lim: lim, peers: map[peer.ID]*fragPeer{}}
	h.Handle(FragmentProtocol, srv.handle)
	return srv
}

type fragmentServer struct {
	h     *Host
	store fungi.FragmentStore
	lim   fragLimits

	mu    sync.Mutex
	peers map[peer.ID]*fragPeer
}

// fragPeer is what one peer's streams share.
type fragPeer struct {
	streams    int     // guarded by fragmentServer.mu
	reqBytes   *budget // request bodies read and not yet served
	replyBytes *budget // values held for replies not yet written
}

func (srv *fragmentServer) join(id peer.ID) *fragPeer {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	p := srv.peers[id]
	if p == nil {
		p = &fragPeer{reqBytes: newBudget(srv.lim.peerBytes), replyBytes: newBudget(srv.lim.peerBytes)}
		srv.peers[id] = p
	}
	if p.streams >= srv.lim.peerStreams {
		return nil
	}
	p.streams++
	return p
}

func (srv *fragmentServer) leave(id peer.ID) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if p := srv.peers[id]; p != nil {
		if p.streams--; p.streams <= 0 {
			delete(srv.peers, id)
		}
	}
}

// peerStreams returns how many streams of id are being served (tests).
func (srv *fragmentServer) peerStreams(id peer.ID) int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if p := srv.peers[id]; p != nil {
		return p.streams
	}
	return 0
}

// serverStream is one stream being served: one reader (handle's
// goroutine) and one goroutine per request in flight, which write their
// replies under wmu.
type serverStream struct {
	srv    *fragmentServer
	s      network.Stream
	remote peer.ID
	peer   *fragPeer
	cancel context.CancelFunc
	wg     sync.WaitGroup

	queued atomic.Int32 // replies waiting for wmu
	wmu    sync.Mutex
	bw     *bufio.Writer
	werr   error
}

var errIdle = errors.New("idle")

func (srv *fragmentServer) handle(s network.Stream) {
	remote := s.Conn().RemotePeer()
	p := srv.join(remote)
	if p == nil {
		srv.h.log.Debug("p2p fragment stream over the per-peer cap reset", "peer", remote)
		s.Reset()
		return
	}
	defer srv.leave(remote)
	ctx, cancel := context.WithCancel(srv.h.ctx)
	defer cancel()
	ss := &serverStream{srv: srv, s: s, remote: remote, peer: p, cancel: cancel, bw: bufio.NewWriterSize(s, ioBuf)}
	err := ss.readLoop(ctx)
	if err != nil && err != io.EOF && err != errIdle {
		if ctx.Err() == nil {
			srv.h.log.Debug("p2p fragment stream reset", "peer", remote, "err", oneLine(err))
		}
		s.Reset() // the replies still being served fail at once
		cancel()
		ss.wg.Wait()
		return
	}
	ss.wg.Wait() // their replies go out before the stream closes
	s.Close()
}

// readLoop reads and dispatches requests until the client closes its side
// (io.EOF), the stream idles (errIdle) or fails.
func (ss *serverStream) readLoop(ctx context.Context) error {
	lim := ss.srv.lim
	br := bufio.NewReaderSize(ss.s, ioBuf)
	ss.s.SetReadDeadline(time.Now().Add(lim.frame))
	var pre [len(fragPreamble)]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil {
		return err
	}
	if string(pre[:]) != fragPreamble {
		return fmt.Errorf("%w: preamble %q, want %q", errMalformed, pre[:], fragPreamble)
	}
	ss.wmu.Lock()
	ss.bw.WriteString(fragPreamble)
	err := ss.bw.Flush()
	ss.wmu.Unlock()
	if err != nil {
		return err
	}

	slots := make(chan struct{}, lim.inFlight)
	for {
		// While inFlight requests are served, read nothing more: the
		// stream's flow control then stops the client.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := ss.waitRequest(br, slots); err != nil {
			return err
		}
		ss.s.SetReadDeadline(time.Now().Add(lim.frame))
		hdr, err := readFrameHeader(br, maxFrameBody)
		if err != nil {
			return err
		}
		if hdr.kind&replyBit != 0 {
			return fmt.Errorf("%w: reply kind %#x from the client", errMalformed, hdr.kind)
		}
		if err := ss.peer.reqBytes.acquire(ctx, hdr.n); err != nil {
			return err
		}
		ss.s.SetReadDeadline(time.Now().Add(lim.frame))
		// a put's fragments go from the stream into a pooled buffer, given
		// back once served: the store copies what it keeps (FragmentStore
		// retains nothing after a put returns), and the reply refers to
		// nothing of the request
		body := fungi.FragmentBuffer(hdr.n)
		if err := readBody(br, body); err != nil {
			ss.peer.reqBytes.release(hdr.n)
			fungi.ReleaseFragment(body)
			return err
		}
		req, err := decodeRequest(hdr.kind, body)
		if err != nil && !errors.Is(err, ErrFragmentTooLarge) && !errors.Is(err, errUnknownOp) {
			ss.peer.reqBytes.release(hdr.n)
			fungi.ReleaseFragment(body)
			return err
		}
		ss.wg.Go(func() {
			defer func() {
				ss.peer.reqBytes.release(hdr.n)
				fungi.ReleaseFragment(body)
				<-slots
			}()
			ss.serve(ctx, hdr, req, err)
		})
	}
}

// waitRequest waits for the first byte of the next request: for lim.idle,
// or longer while requests are in flight (their replies count as
// activity).
func (ss *serverStream) waitRequest(br *bufio.Reader, slots chan struct{}) error {
	for {
		ss.s.SetReadDeadline(time.Now().Add(ss.srv.lim.idle))
		_, err := br.Peek(1)
		if err == nil {
			return nil
		}
		if !isTimeout(err) {
			return err
		}
		if len(slots) <= 1 { // only the slot taken for the next request
			return errIdle
		}
	}
}

// serve answers one request. err is decodeRequest's, if any.
func (ss *serverStream) serve(ctx context.Context, hdr frameHeader, req fragRequest, err error) {
	op := fragOp(hdr.kind)
	rep, held, release := ss.answer(ctx, req, err)
	defer ss.peer.replyBytes.release(held)
	if release != nil {
		defer release() // once written: send returns when the frame is out or buffered
	}
	if ctx.Err() != nil {
		return // the stream is going away
	}
	f := encodeReply(op, rep)
	ss.send(hdr.kind|replyBit, hdr.id, f.body(), f.n)
}

// answer runs a request against the store. held is the reply bytes
// acquired from the peer's budget, to release once the reply is written;
// release (nil: none) gives a pooled fragment's buffer back after that.
func (ss *serverStream) answer(ctx context.Context, req fragRequest, derr error) (rep fragReply, held int, release func()) {
	switch {
	case errors.Is(derr, errUnknownOp):
		return failReply(stUnsupported, derr.Error()), 0, nil
	case derr != nil:
		return failReply(stTooLarge, strings.TrimPrefix(derr.Error(), ErrFragmentTooLarge.Error()+": ")), 0, nil
	}
	// members only, reads included: the node is open to IPFS peers, who
	// fetch blocks over bitswap, never fragments
	if !ss.srv.h.Allowed(ss.remote) {
		return failReply(stNotMember, ErrNotMember.Error()), 0, nil
	}
	if st, msg := checkRequest(req); st != stOK {
		return failReply(st, msg), 0, nil
	}
	store := ss.srv.store
	switch req.op {
	case opGet:
		var it fragItem
		if pg, ok := store.(fungi.PooledFragmentGetter); ok {
			var v []byte
			var err error
			v, release, err = pg.GetFragmentPooled(ctx, req.keys[0])
			it = getItem(v, err)
		} else {
			it = getItem(store.GetFragment(ctx, req.keys[0]))
		}
		if it.status != stOK {
			if release != nil {
				release()
			}
			return failReply(it.status, it.msg), 0, nil
		}
		if ss.peer.replyBytes.acquire(ctx, len(it.value)) != nil {
			if release != nil {
				release()
			}
			return rep, 0, nil
		}
		return fragReply{value: it.value}, len(it.value), release
	case opHas:
		ok, err := store.HasFragment(ctx, req.keys[0])
		if err != nil {
			return failReply(stStoreError, oneLine(err)), 0, nil
		}
		return fragReply{found: ok}, 0, nil
	case opPut:
		if err := store.PutFragment(ctx, req.keys[0], req.values[0]); err != nil {
			return failReply(stStoreError, oneLine(err)), 0, nil
		}
		return rep, 0, nil
	case opDelete:
		d, ok := store.(fungi.FragmentDeleter)
		if !ok {
			return failReply(stUnsupported, "the peer's store cannot delete"), 0, nil
		}
		if err := d.DeleteFragment(ctx, req.keys[0]); err != nil {
			return failReply(stStoreError, oneLine(err)), 0, nil
		}
		return rep, 0, nil
	case opGetMany:
		rep, held := ss.getMany(ctx, req.keys)
		return rep, held, nil
	case opHasMany:
		rep.items = make([]fragItem, len(req.keys))
		for i, k := range req.keys {
			ok, err := store.HasFragment(ctx, k)
			if err != nil {
				rep.items[i] = fragItem{status: stStoreError, msg: clip(err.Error(), maxItemMsg)}
			} else {
				rep.items[i].found = ok
			}
		}
		return rep, 0, nil
	case opPutMany:
		if b, ok := store.(fungi.FragmentBatchPutter); ok {
			if err := b.PutFragments(ctx, req.keys, req.values); err != nil {
				return failReply(stStoreError, err.Error()), 0, nil
			}
			return rep, 0, nil
		}
		for i, k := range req.keys {
			if err := store.PutFragment(ctx, k, req.values[i]); err != nil {
				return failReply(stStoreError, fmt.Sprintf("item %d: %s", i, err)), 0, nil
			}
		}
		return rep, 0, nil
	}
	panic(fmt.Sprintf("p2p: fragment request of kind %d decoded", req.op)) // decodeRequest knows no other
}

// getMany fetches the values for a getmany reply, up to
// MaxFragmentBatchBytes of them and what the peer's reply budget allows;
// the rest are skipped, but never the first value.
func (ss *serverStream) getMany(ctx context.Context, keys [][]byte) (rep fragReply, held int) {
	rep.items = make([]fragItem, len(keys))
	skipping := false
	for i, k := range keys {
		if skipping {
			rep.items[i].status = stSkipped
			continue
		}
		it := getItem(ss.srv.store.GetFragment(ctx, k))
		if it.status == stOK {
			n := len(it.value)
			if held == 0 {
				if ss.peer.replyBytes.acquire(ctx, n) != nil {
					return rep, held
				}
			} else if held+n > MaxFragmentBatchBytes || !ss.peer.replyBytes.tryAcquire(n) {
				skipping = true
				rep.items[i].status = stSkipped
				continue
			}
			held += n
		}
		rep.items[i] = it
	}
	return rep, held
}

// getItem turns a store's answer into an item.
func getItem(v []byte, err error) fragItem {
	switch {
	case errors.Is(err, fungi.ErrFragmentNotFound):
		return fragItem{status: stNotFound}
	case err != nil:
		return fragItem{status: stStoreError, msg: clip(err.Error(), maxItemMsg)}
	case len(v) > MaxFragmentSize:
		return fragItem{status: stTooLarge, msg: fmt.Sprintf("stored fragment of %d bytes, max %d", len(v), MaxFragmentSize)}
	}
	return fragItem{value: v}
}

// send writes one reply. Replies queued behind it are written before the
// buffer is flushed, so a burst of small replies goes out together. A
// write error or timeout resets the stream.
func (ss *serverStream) send(kind byte, id uint32, parts [][]byte, n int) {
	ss.queued.Add(1)
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	last := ss.queued.Add(-1) == 0
	if ss.werr != nil {
		return
	}
	ss.s.SetWriteDeadline(time.Now().Add(ss.srv.lim.frame))
	err := writeFrame(ss.bw, kind, id, parts, n)
	if err == nil && last {
		err = ss.bw.Flush()
	}
	if err != nil {
		ss.werr = err
		ss.s.Reset()
		ss.cancel()
	}
}

// budget is a counting semaphore of bytes.
type budget struct {
	mu   sync.Mutex
	cap  int
	free int
	wake chan struct{} // closed, and replaced, when bytes come back
}

func newBudget(n int) *budget { return &budget{cap: n, free: n} }

// acquire takes n bytes (at most the whole budget), waiting for them.
func (b *budget) acquire(ctx context.Context, n int) error {
	n = min(n, b.cap)
	for {
		b.mu.Lock()
		if b.free >= n {
			b.free -= n
			b.mu.Unlock()
			return nil
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *budget) tryAcquire(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.free < n {
		return false
	}
	b.free -= n
	return true
}

// release returns what acquire took (the same n).
func (b *budget) release(n int) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.free = min(b.free+min(n, b.cap), b.cap)
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	b.mu.Unlock()
}

// --- client ---

// FragmentClient is a fungi.FragmentStore and fungi.FragmentDeleter backed
// by one remote peer's ServeFragments. It keeps up to four streams to the
// peer, opened when needed through Host.NewStream (so Config.ExtraLatency
// applies) and reopened after a failure, and pipelines requests on them.
// Its methods are safe for concurrent use.
//
// Errors are one line naming the peer. A missing fragment gives an error
// wrapping fungi.ErrFragmentNotFound; a write refused by the peer's
// membership gate wraps ErrNotMember; a key, value or batch over the limits
// wraps ErrFragmentTooLarge (checked before sending); a delete on a peer
// whose store cannot delete wraps errors.ErrUnsupported; after Host.Close,
// ErrClosed. A cancelled context ends a waiting call at once, with an
// error wrapping ctx.Err(), without disturbing the stream (the peer's late
// answer is dropped). A request whose stream fails is retried on another
// stream (every operation is idempotent), up to three attempts.
type FragmentClient struct {
	h    *Host
	peer peer.ID
	lim  fragLimits

	mu      sync.Mutex
	streams []*fragStream // open or being opened
}

var (
	_ fungi.FragmentStore   = (*FragmentClient)(nil)
	_ fungi.FragmentDeleter = (*FragmentClient)(nil)
)

// FragmentPeer returns the client of peer p's fragment store, the same one
// for every call with the same p. The host must be able to reach p (a
// connection or addresses in the peerstore, e.g. after Connect or
// FindPeer). p must not be the host itself. After Close, the returned
// client's calls fail with ErrClosed.
func (h *Host) FragmentPeer(p peer.ID) *FragmentClient {
	h.fragMu.Lock()
	defer h.fragMu.Unlock()
	if c := h.fragClients[p]; c != nil {
		return c
	}
	c := newFragmentClient(h, p, defaultFragLimits())
	if h.fragClients == nil {
		h.fragClients = map[peer.ID]*FragmentClient{}
	}
	h.fragClients[p] = c
	return c
}

func newFragmentClient(h *Host, p peer.ID, lim fragLimits) *FragmentClient {
	return &FragmentClient{h: h, peer: p, lim: lim}
}

// Peer returns the ID of the peer c talks to.
func (c *FragmentClient) Peer() peer.ID { return c.peer }

// GetFragmentPooled is GetFragment, whose fragment is read into a buffer
// of fungi.FragmentBuffer: release gives it back (fungi.PooledFragmentGetter).
func (c *FragmentClient) GetFragmentPooled(ctx context.Context, key []byte) ([]byte, func(), error) {
	v, err := c.GetFragment(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	return v, func() { fungi.ReleaseFragment(v) }, nil
}

// GetFragment fetches the fragment stored under key.
func (c *FragmentClient) GetFragment(ctx context.Context, key []byte) ([]byte, error) {
	rep, err := c.single(ctx, fragRequest{op: opGet, keys: [][]byte{key}})
	if err != nil {
		return nil, err
	}
	return rep.value, nil
}

// HasFragment reports whether the peer holds a fragment under key.
func (c *FragmentClient) HasFragment(ctx context.Context, key []byte) (bool, error) {
	rep, err := c.single(ctx, fragRequest{op: opHas, keys: [][]byte{key}})
	return rep.found, err
}

// PutFragment stores data under key on the peer.
func (c *FragmentClient) PutFragment(ctx context.Context, key, data []byte) error {
	if len(data) > MaxFragmentSize {
		return c.opErr(opPut, key, fmt.Errorf("value of %d bytes: %w (max %d)", len(data), ErrFragmentTooLarge, MaxFragmentSize))
	}
	_, err := c.single(ctx, fragRequest{op: opPut, keys: [][]byte{key}, values: [][]byte{data}})
	return err
}

// DeleteFragment drops the fragment stored under key on the peer; a
// missing fragment is not an error.
func (c *FragmentClient) DeleteFragment(ctx context.Context, key []byte) error {
	_, err := c.single(ctx, fragRequest{op: opDelete, keys: [][]byte{key}})
	return err
}

func (c *FragmentClient) single(ctx context.Context, req fragRequest) (fragReply, error) {
	key := req.keys[0]
	if err := checkKey(key); err != nil {
		return fragReply{}, c.opErr(req.op, key, err)
	}
	rep, err := c.roundTrip(ctx, req.op, encodeRequest(req))
	if err == nil {
		err = statusError(rep.status, rep.msg)
	}
	if err != nil {
		return fragReply{}, c.opErr(req.op, key, err)
	}
	return rep, nil
}

func (c *FragmentClient) opErr(op fragOp, key []byte, err error) error {
	return fmt.Errorf("p2p: fragment %s key %s on %s: %w", op, shortKey(key), c.peer, err)
}

func (c *FragmentClient) batchErr(op fragOp, n int, err error) error {
	return fmt.Errorf("p2p: fragment %s of %d items on %s: %w", op, n, c.peer, err)
}

func shortKey(k []byte) string {
	if len(k) > 16 {
		return fmt.Sprintf("%x…", k[:16])
	}
	return fmt.Sprintf("%x", k)
}

// GetFragments fetches many fragments, in batches of at most
// MaxFragmentBatch keys sent at once (pipelined). vals[i] is the fragment
// of keys[i] when errs[i] is nil; errs[i] wraps fungi.ErrFragmentNotFound
// for a fragment the peer does not hold. A failure of the whole call (a
// cancelled context, an unreachable peer) is in the errs of every key it
// concerned.
func (c *FragmentClient) GetFragments(ctx context.Context, keys [][]byte) (vals [][]byte, errs []error) {
	vals, errs = make([][]byte, len(keys)), make([]error, len(keys))
	todo := c.checkKeys(opGet, keys, errs)
	for len(todo) > 0 {
		var mu sync.Mutex
		var again []int
		c.batches(ctx, opGetMany, keys, nil, todo, func(idx []int, rep fragReply, err error) {
			if err == nil && len(rep.items) != len(idx) {
				err = fmt.Errorf("%w: %d items for %d keys", errMalformed, len(rep.items), len(idx))
			}
			skipped := 0
			for j, i := range idx {
				switch {
				case err != nil:
					errs[i] = c.opErr(opGet, keys[i], err)
				case rep.items[j].status == stOK:
					vals[i] = rep.items[j].value
				case rep.items[j].status == stSkipped:
					skipped++
				default:
					errs[i] = c.opErr(opGet, keys[i], statusError(rep.items[j].status, rep.items[j].msg))
				}
			}
			if skipped == 0 {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for j, i := range idx {
				if skipped == len(idx) { // no progress: a broken peer
					errs[i] = c.opErr(opGet, keys[i], errors.New("the peer skipped every key of a batch"))
				} else if rep.items[j].status == stSkipped {
					again = append(again, i)
				}
			}
		})
		todo = again
	}
	return vals, errs
}

// HasFragments reports for each key whether the peer holds it; errs as in
// GetFragments.
func (c *FragmentClient) HasFragments(ctx context.Context, keys [][]byte) (found []bool, errs []error) {
	found, errs = make([]bool, len(keys)), make([]error, len(keys))
	todo := c.checkKeys(opHas, keys, errs)
	c.batches(ctx, opHasMany, keys, nil, todo, func(idx []int, rep fragReply, err error) {
		if err == nil && len(rep.items) != len(idx) {
			err = fmt.Errorf("%w: %d items for %d keys", errMalformed, len(rep.items), len(idx))
		}
		for j, i := range idx {
			switch {
			case err != nil:
				errs[i] = c.opErr(opHas, keys[i], err)
			case rep.items[j].status == stOK:
				found[i] = rep.items[j].found
			default:
				errs[i] = c.opErr(opHas, keys[i], statusError(rep.items[j].status, rep.items[j].msg))
			}
		}
	})
	return found, errs
}

// PutFragments stores values[i] under keys[i] on the peer, in batches of
// at most MaxFragmentBatch items and MaxFragmentBatchBytes sent at once.
// Nothing is sent if an item is over the limits. On error some batches may
// have been stored; putting them again is harmless.
func (c *FragmentClient) PutFragments(ctx context.Context, keys, values [][]byte) error {
	if len(keys) != len(values) {
		return c.batchErr(opPutMany, len(keys), fmt.Errorf("%d keys for %d values", len(keys), len(values)))
	}
	idx := make([]int, len(keys))
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return c.batchErr(opPutMany, len(keys), fmt.Errorf("item %d: %w", i, err))
		}
		if n := len(values[i]); n > MaxFragmentSize {
			return c.batchErr(opPutMany, len(keys), fmt.Errorf("item %d: value of %d bytes: %w (max %d)", i, n, ErrFragmentTooLarge, MaxFragmentSize))
		}
		idx[i] = i
	}
	var mu sync.Mutex
	first, firstAt := error(nil), len(keys)
	c.batches(ctx, opPutMany, keys, values, idx, func(idx []int, rep fragReply, err error) {
		if err == nil {
			err = statusError(rep.status, rep.msg)
		}
		if err == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if idx[0] < firstAt {
			first, firstAt = err, idx[0]
		}
	})
	if first != nil {
		return c.batchErr(opPutMany, len(keys), first)
	}
	return nil
}

// checkKeys records the errors of keys over the limits and returns the
// indices of the others.
func (c *FragmentClient) checkKeys(op fragOp, keys [][]byte, errs []error) []int {
	todo := make([]int, 0, len(keys))
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			errs[i] = c.opErr(op, k, err)
		} else {
			todo = append(todo, i)
		}
	}
	return todo
}

// batches sends the items idx of keys (and values) as batched requests of
// kind op, all at once, and calls done for each with its indices and the
// reply, or the error that ended it; done may run concurrently.
func (c *FragmentClient) batches(ctx context.Context, op fragOp, keys, values [][]byte, idx []int, done func([]int, fragReply, error)) {
	var wg sync.WaitGroup
	for _, part := range splitBatch(idx, func(i int) int {
		if values != nil {
			return len(keys[i]) + len(values[i])
		}
		return len(keys[i])
	}) {
		wg.Go(func() {
			req := fragRequest{op: op, keys: make([][]byte, len(part))}
			if values != nil {
				req.values = make([][]byte, len(part))
			}
			for j, i := range part {
				req.keys[j] = keys[i]
				if values != nil {
					req.values[j] = values[i]
				}
			}
			rep, err := c.roundTrip(ctx, op, encodeRequest(req))
			if err == nil && rep.status != stOK && op != opPutMany {
				err = statusError(rep.status, rep.msg)
			}
			done(part, rep, err)
		})
	}
	wg.Wait()
}

// splitBatch cuts idx into runs of at most MaxFragmentBatch items and
// MaxFragmentBatchBytes (by size).
func splitBatch(idx []int, size func(int) int) [][]int {
	var out [][]int
	start, bytes := 0, 0
	for j, i := range idx {
		n := size(i)
		if j > start && (j-start == MaxFragmentBatch || bytes+n > MaxFragmentBatchBytes) {
			out = append(out, idx[start:j:j])
			start, bytes = j, 0
		}
		bytes += n
	}
	if start < len(idx) {
		out = append(out, idx[start:])
	}
	return out
}

// streamError is the failure of the stream a request was on, not an
// answer of the peer: the request may be sent again on another stream.
type streamError struct{ err error }

func (e *streamError) Error() string { return oneLine(e.err) }
func (e *streamError) Unwrap() error { return e.err }

// roundTrip sends one request and waits for its reply, retrying on a new
// stream when the stream fails.
func (c *FragmentClient) roundTrip(ctx context.Context, op fragOp, f *frameBuf) (fragReply, error) {
	parts := f.body()
	var err error
	for range 3 {
		if c.h.ctx.Err() != nil {
			return fragReply{}, ErrClosed
		}
		if ctx.Err() != nil {
			return fragReply{}, ctx.Err()
		}
		var st *fragStream
		if st, err = c.pick(ctx); err != nil {
			return fragReply{}, err
		}
		var rep fragReply
		rep, err = st.do(ctx, op, parts, f.n)
		var se *streamError
		if !errors.As(err, &se) {
			return rep, err
		}
	}
	if c.h.ctx.Err() != nil {
		return fragReply{}, ErrClosed
	}
	return fragReply{}, err
}

// pick returns a stream with a request slot taken for the caller: the least
// loaded one, or a new one while fewer than lim.streams are open and the
// least loaded has lim.openAt requests in flight.
func (c *FragmentClient) pick(ctx context.Context) (*fragStream, error) {
	for {
		c.mu.Lock()
		var best, opening *fragStream
		for _, st := range c.streams {
			select {
			case <-st.ready:
			default:
				opening = st
				continue
			}
			if best == nil || len(st.slots) < len(best.slots) {
				best = st
			}
		}
		switch {
		case (best == nil || len(best.slots) >= c.lim.openAt) && len(c.streams) < c.lim.streams:
			st := &fragStream{c: c, ready: make(chan struct{}), slots: make(chan struct{}, c.lim.inFlight),
				queue: make(chan *fragCall, c.lim.inFlight), done: make(chan struct{}), pending: map[uint32]*fragCall{}}
			c.streams = append(c.streams, st)
			c.mu.Unlock()
			if err := c.open(ctx, st); err != nil {
				return nil, err
			}
			best = st
		case best == nil:
			c.mu.Unlock()
			select {
			case <-opening.ready:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		default:
			c.mu.Unlock()
		}
		select {
		case best.slots <- struct{}{}:
			return best, nil
		case <-best.done: // it ended: pick another
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// open opens st's stream and starts its reader and writer.
func (c *FragmentClient) open(ctx context.Context, st *fragStream) error {
	s, err := c.h.NewStream(ctx, c.peer, FragmentProtocol)
	switch {
	case err != nil && ctx.Err() != nil:
		err = ctx.Err() // NewStream's error does not wrap it
	case err != nil && !errors.Is(err, ErrClosed):
		// Drop NewStream's "p2p: open [proto] to peer: ": the caller's
		// error names both.
		_, cause, _ := strings.Cut(err.Error(), fmt.Sprintf(" to %s: ", c.peer))
		err = fmt.Errorf("open stream: %s", cause)
	}
	if err == nil && !c.h.track(2) {
		s.Reset()
		err = ErrClosed
	}
	if err != nil {
		c.drop(st)
		close(st.ready)
		return err
	}
	st.s = s
	st.since = time.Now()
	stop := context.AfterFunc(c.h.ctx, func() { st.finish(ErrClosed, true) })
	st.mu.Lock()
	st.stopWatch = stop // unless finish ran already: then stop is a no-op
	st.mu.Unlock()
	close(st.ready)
	go st.readLoop()
	go st.writeLoop()
	return nil
}

// drop removes st from the streams to pick from.
func (c *FragmentClient) drop(st *fragStream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, o := range c.streams {
		if o == st {
			c.streams = append(c.streams[:i], c.streams[i+1:]...)
			return
		}
	}
}

// openStreams returns how many streams c has open or opening (tests).
func (c *FragmentClient) openStreams() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams)
}

// fragStream is one client stream: callers register requests and hand
// them to the writer goroutine; the reader goroutine matches replies to
// them by id. Both goroutines are counted in the host's handlers and end
// with the stream.
type fragStream struct {
	c     *FragmentClient
	ready chan struct{}  // closed once s is set, or opening failed
	s     network.Stream // set before ready is closed
	slots chan struct{}  // requests in flight, at most lim.inFlight
	queue chan *fragCall // to the writer; as large as slots, never blocks
	done  chan struct{}  // closed when the stream ends

	mu        sync.Mutex
	err       error // why the stream ended
	nextID    uint32
	pending   map[uint32]*fragCall
	since     time.Time   // last reply, or when pending last became empty or non-empty
	stopWatch func() bool // stops the watch on the host's context
}

type fragCall struct {
	kind  byte
	id    uint32
	parts [][]byte
	n     int
	reply chan fragResult // buffered: the reader never waits for an abandoned call
}

type fragResult struct {
	rep fragReply
	err error
}

// do sends a request on st, whose slot the caller holds, and waits for its
// reply or ctx. The slot is given back when the reply arrives.
func (st *fragStream) do(ctx context.Context, op fragOp, parts [][]byte, n int) (fragReply, error) {
	call := &fragCall{kind: byte(op), parts: parts, n: n, reply: make(chan fragResult, 1)}
	st.mu.Lock()
	if st.err != nil {
		err := st.err
		st.mu.Unlock()
		return fragReply{}, &streamError{err}
	}
	st.nextID++
	call.id = st.nextID
	if len(st.pending) == 0 {
		st.since = time.Now()
	}
	st.pending[call.id] = call
	st.mu.Unlock()
	st.queue <- call
	select {
	case r := <-call.reply:
		return r.rep, r.err
	case <-ctx.Done():
		return fragReply{}, ctx.Err()
	}
}

func (st *fragStream) writeLoop() {
	defer st.c.h.handlers.Done()
	bw := bufio.NewWriterSize(st.s, ioBuf)
	bw.WriteString(fragPreamble) // goes out with the first request
	write := func(call *fragCall) error {
		st.s.SetWriteDeadline(time.Now().Add(st.c.lim.frame))
		return writeFrame(bw, call.kind, call.id, call.parts, call.n)
	}
	for {
		var err error
		select {
		case call := <-st.queue:
			err = write(call)
		case <-st.done:
			return
		}
	drain: // requests queued meanwhile go out in the same flush
		for err == nil {
			select {
			case call := <-st.queue:
				err = write(call)
			default:
				break drain
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			st.finish(err, true)
			return
		}
	}
}

func (st *fragStream) readLoop() {
	defer st.c.h.handlers.Done()
	// a small buffer: a fragment's bytes then go from the stream straight
	// into their own buffer (bufio reads directly into a destination at
	// least its size) instead of through this one
	br := bufio.NewReaderSize(st.s, replyBuf)
	if err := st.readPreamble(br); err != nil {
		st.finish(err, !errors.Is(err, errIdle))
		return
	}
	for {
		if err := st.waitReply(br); err != nil {
			st.finish(err, !errors.Is(err, errIdle))
			return
		}
		st.s.SetReadDeadline(time.Now().Add(st.c.lim.frame))
		hdr, rep, err, rerr := readReply(br)
		if rerr != nil {
			st.finish(rerr, true)
			return
		}
		st.mu.Lock()
		call := st.pending[hdr.id]
		delete(st.pending, hdr.id)
		st.since = time.Now()
		st.mu.Unlock()
		if err == nil && (call == nil || call.kind|replyBit != hdr.kind) {
			err = fmt.Errorf("%w: reply kind %#x id %d matches no request", errMalformed, hdr.kind, hdr.id)
		}
		if err != nil {
			if call != nil {
				call.reply <- fragResult{err: &streamError{err}}
			}
			st.finish(err, true)
			return
		}
		call.reply <- fragResult{rep: rep}
		<-st.slots
	}
}

func (st *fragStream) readPreamble(br *bufio.Reader) error {
	if err := st.waitReply(br); err != nil {
		return err
	}
	st.s.SetReadDeadline(time.Now().Add(st.c.lim.frame))
	var pre [len(fragPreamble)]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil {
		return err
	}
	if string(pre[:]) != fragPreamble {
		return fmt.Errorf("%w: preamble %q, want %q", errMalformed, pre[:], fragPreamble)
	}
	return nil
}

// waitReply waits for the next byte from the peer. It gives up with
// errIdle once no request was pending for lim.clientIdle, and with an
// error when requests are pending and the peer sent nothing for
// lim.replyTimeout.
func (st *fragStream) waitReply(br *bufio.Reader) error {
	lim := st.c.lim
	for {
		deadline := time.Now().Add(lim.poll())
		st.s.SetReadDeadline(deadline)
		_, err := br.Peek(1)
		if err == nil {
			return nil
		}
		// only our own deadline means "poll again": a timeout before it
		// (a failed lazy handshake, QUIC's idle timeout) is the stream's
		// end, and is returned again at once by every later read
		if !isTimeout(err) || time.Now().Before(deadline) {
			return err
		}
		st.mu.Lock()
		waiting, quiet := len(st.pending) > 0, time.Since(st.since)
		st.mu.Unlock()
		switch {
		case !waiting && quiet >= lim.clientIdle:
			return errIdle
		case waiting && quiet >= lim.replyTimeout:
			return fmt.Errorf("no reply for %s", quiet.Round(time.Second))
		}
	}
}

// finish ends st once: later calls on it, and the requests pending, fail
// with err (as a streamError, so they are retried elsewhere). reset
// resets the stream; otherwise it is closed (an idle stream).
func (st *fragStream) finish(err error, reset bool) {
	st.c.drop(st)
	st.mu.Lock()
	if st.err != nil {
		st.mu.Unlock()
		return
	}
	st.err = err
	pending, stop := st.pending, st.stopWatch
	st.pending = nil
	close(st.done)
	st.mu.Unlock()
	for _, call := range pending {
		call.reply <- fragResult{err: &streamError{err}}
	}
	if stop != nil {
		stop()
	}
	if reset {
		st.s.Reset()
	} else {
		st.s.Close()
	}
}
