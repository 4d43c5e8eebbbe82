package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// fuzzLimits are small so that the fuzzer reaches every limit quickly.
var fuzzLimits = Limits{MaxArgs: 64, MaxBulk: 4096, MaxSkip: 1 << 20, MaxInline: 1024}

// fuzzReplyLimits are the limits of the reply fuzzer.
var fuzzReplyLimits = Limits{MaxArgs: 64, MaxBulk: 4096, MaxInline: 256}

var commandSeeds = []string{
	"",
	"PING\r\n",
	"SET a b\n",
	"  SET \t a\t\t b \r\n\r\n\n   \r\nGET a\r\n",
	"a\rb c\r\r\n",
	"PING",
	"*1\r\n$4\r\nPING\r\n",
	"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n",
	"*3\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n$3\r\n\x00\r\n\r\n",
	"*2\r\n$3\r\nSET\r\n$0\r\n\r\n",
	"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n",
	"*0\r\n*0\r\n*0\r\n",
	"\r\n\n*1\n$4\nPING\r\n",
	"*-2\r\n",
	"*abc\r\n",
	"*99999999999999999999\r\n",
	"*9223372036854775807\r\n",
	"*65\r\n",
	"*1\r\n$-1\r\n",
	"*1\r\n$-2\r\n",
	"*1\r\n$1048577\r\n",
	"*1\r\n$1048576\r\n",
	"*1\r\n$4097\r\n" + strings.Repeat("x", 4097) + "\r\n*1\r\n$4\r\nPING\r\n",
	"*3\r\n$4096\r\n" + strings.Repeat("a", 4096) + "\r\n$4096\r\n" + strings.Repeat("b", 4096) + "\r\n$1\r\nc\r\nPING\r\n",
	"*2\r\n$4096\r\n" + strings.Repeat("a", 4096) + "\r\n$4096\r\n" + strings.Repeat("b", 4096) + "\r\n",
	"*2\r\n$4097\r\n",
	"*3\r\n$4097\r\n" + strings.Repeat("x", 4097) + "\r\n$1\r\na\r\n$2\r\nbc\r\nPING\r\n",
	"*3\r\n$4097\r\n" + strings.Repeat("x", 4097) + "\r\n$-5\r\n",
	"*2\r\n$4097\r\n" + strings.Repeat("x", 4097) + "\r\n:1\r\n",
	"*1\r\n$-5\r\n",
	"*1025\r\n",
	"*1\r\n$4\r\nPINGxx",
	"*1\r\n$4\r\nPING\n*1\r\n$4\r\nPING\r\n",
	"*1\r\n+PING\r\n",
	"*1\r\n*1\r\n$4\r\nPING\r\n",
	"*2\r\n$3\r\nGE",
	"*2\r\n$3\r\nGET\r\n",
	"*",
	"*2",
	strings.Repeat("x", 1024) + "\n",
	strings.Repeat("x", 1024) + "\r\n",
	strings.Repeat("x", 1025) + "\r\n",
	strings.Repeat("a ", 64) + "\r\n",
	strings.Repeat("a ", 65) + "\r\n",
	"*64\r\n" + strings.Repeat("$1\r\nx\r\n", 64),
	"*" + strings.Repeat("0", 40) + "1\r\n",
	"$4\r\nPING\r\n",
}

// fuzzStep is one result of ReadCommand, with the args copied.
type fuzzStep struct {
	args [][]byte
	err  error
}

func (s fuzzStep) String() string {
	if s.err != nil {
		return "!" + errKind(s.err)
	}
	return fmt.Sprintf("%q", s.args)
}

// fuzzReadCommands reads commands until an error other than ErrTooLarge,
// checking the Reader's invariants after every call.
func fuzzReadCommands(t testing.TB, br *bufio.Reader, inputLen int) []fuzzStep {
	t.Helper()
	l := fuzzLimits
	r := NewReader(br, l)
	maxArg := max(l.MaxBulk, l.MaxInline)
	maxTotal := max(2*l.MaxBulk, l.MaxInline)
	var steps []fuzzStep
	seen := 0
	for i := 0; ; i++ {
		if i > inputLen+1 {
			t.Fatalf("ReadCommand does not stop after %d calls on %d bytes", i, inputLen)
		}
		cmd, err := r.ReadCommand()
		if c := cap(r.buf); c > 5*l.MaxBulk+2*l.MaxInline {
			t.Fatalf("argument buffer grew to %d bytes", c)
		}
		if c := cap(r.args); c > l.MaxArgs {
			t.Fatalf("args buffer grew to %d", c)
		}
		if c := cap(r.endBuf); c > 2*l.MaxArgs+16 {
			t.Fatalf("ends buffer grew to %d", c)
		}
		if err != nil {
			if cmd.Args != nil {
				t.Fatalf("args %q returned with error %v", cmd.Args, err)
			}
			if k := errKind(err); strings.HasPrefix(k, "other") {
				t.Fatalf("unexpected error %v", err)
			}
			steps = append(steps, fuzzStep{err: err})
			if err == ErrTooLarge {
				continue
			}
			return steps
		}
		if len(cmd.Args) == 0 {
			t.Fatal("command with no args and no error")
		}
		if len(cmd.Args) > l.MaxArgs {
			t.Fatalf("%d args, over MaxArgs", len(cmd.Args))
		}
		total := 0
		args := make([][]byte, len(cmd.Args))
		for j, a := range cmd.Args {
			if len(a) > maxArg {
				t.Fatalf("arg of %d bytes", len(a))
			}
			if cap(a) != len(a) {
				t.Fatalf("arg %d has spare capacity: appending to it would clobber the next", j)
			}
			total += len(a)
			args[j] = bytes.Clone(a)
		}
		if total > maxTotal {
			t.Fatalf("command of %d bytes", total)
		}
		seen += total
		if seen > inputLen {
			t.Fatalf("%d bytes of args from %d bytes of input", seen, inputLen)
		}
		steps = append(steps, fuzzStep{args: args})
	}
}

func sameSteps(a, b []fuzzStep) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].String() != b[i].String() {
			return false
		}
	}
	return true
}

func FuzzReadCommand(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		steps := fuzzReadCommands(t, bufio.NewReader(bytes.NewReader(data)), len(data))

		// how the bytes arrive must not matter
		bytewise := fuzzReadCommands(t, bufio.NewReader(iotest.OneByteReader(bytes.NewReader(data))), len(data))
		if !sameSteps(steps, bytewise) {
			t.Fatalf("whole: %v\none byte at a time: %v", steps, bytewise)
		}

		// the commands read, written back as arrays of bulk strings, read the same
		var want []fuzzStep
		var buf bytes.Buffer
		w := NewWriter(bufio.NewWriter(&buf))
		for _, s := range steps {
			if s.err == nil {
				w.Command(s.args...)
				want = append(want, s)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		want = append(want, fuzzStep{err: io.EOF})
		again := fuzzReadCommands(t, bufio.NewReader(bytes.NewReader(buf.Bytes())), buf.Len())
		if !sameSteps(again, want) {
			t.Fatalf("re-encoded %q\n read %v\nwant %v", buf.Bytes(), again, want)
		}
	})
}

var replySeeds = []string{
	"",
	"+OK\r\n",
	"-ERR unknown command\r\n",
	":0\r\n:-9223372036854775808\r\n:+5\r\n",
	"$5\r\nhello\r\n$0\r\n\r\n$-1\r\n",
	"$6\r\n\r\n\x00\r\n\r\n\r\n",
	"*0\r\n*-1\r\n",
	"*3\r\n+a\r\n:1\r\n*2\r\n$1\r\nb\r\n$-1\r\n",
	"+OK\n-E\n:1\n$1\nx\n",
	"+a\rb\r\r\n-a\rb\r\n",
	strings.Repeat("*1\r\n", 8) + ":1\r\n",
	strings.Repeat("*1\r\n", 9) + ":1\r\n",
	strings.Repeat("*1\r\n", 8) + "*0\r\n",
	"*64\r\n" + strings.Repeat(":1\r\n", 64),
	"*65\r\n",
	"$4096\r\n" + strings.Repeat("v", 4096) + "\r\n",
	"$4097\r\n",
	"+" + strings.Repeat("s", 256) + "\r\n",
	"+" + strings.Repeat("s", 256) + "\n",
	"+" + strings.Repeat("s", 257) + "\r\n",
	"$2\r\nabcd",
	"$5\r\nab",
	"*2\r\n:1\r\n",
	"!oops\r\n",
	"%1\r\n+a\r\n+b\r\n",
	"_\r\n",
	"\r\n",
	":x\r\n",
	":99999999999999999999\r\n",
	"*-2\r\n",
	"$-2\r\n",
}

// encodeReply writes r as RESP2, byte for byte as a server would have sent
// it (error strings are written raw, unlike Writer.Error).
func encodeReply(b []byte, r Reply) []byte {
	switch r.Kind {
	case KindSimple, KindError:
		b = append(b, byte(r.Kind))
		b = append(b, r.Str...)
		return append(b, "\r\n"...)
	case KindInt:
		b = append(b, ':')
		b = strconv.AppendInt(b, r.Int, 10)
		return append(b, "\r\n"...)
	case KindBulk:
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(r.Str)), 10)
		b = append(b, "\r\n"...)
		b = append(b, r.Str...)
		return append(b, "\r\n"...)
	case KindNil:
		return append(b, "$-1\r\n"...)
	case KindArray:
		b = append(b, '*')
		b = strconv.AppendInt(b, int64(len(r.Elems)), 10)
		b = append(b, "\r\n"...)
		for _, e := range r.Elems {
			b = encodeReply(b, e)
		}
		return b
	}
	panic(fmt.Sprintf("unknown kind %q", r.Kind))
}

// writeReply writes r with a Writer.
func writeReply(w *Writer, r Reply) {
	switch r.Kind {
	case KindSimple:
		w.Simple(string(r.Str))
	case KindError:
		w.Error(string(r.Str))
	case KindInt:
		w.Int(r.Int)
	case KindBulk:
		w.Bulk(r.Str)
	case KindNil:
		w.Nil()
	case KindArray:
		w.Array(len(r.Elems))
		for _, e := range r.Elems {
			writeReply(w, e)
		}
	}
}

// errorsWithoutCR is r with CRs in error strings turned into spaces, as
// Writer.Error writes them.
func errorsWithoutCR(r Reply) Reply {
	switch r.Kind {
	case KindError:
		r.Str = bytes.ReplaceAll(r.Str, []byte("\r"), []byte(" "))
	case KindArray:
		elems := make([]Reply, len(r.Elems))
		for i, e := range r.Elems {
			elems[i] = errorsWithoutCR(e)
		}
		r.Elems = elems
	}
	return r
}

// checkReply checks a reply against the limits; depth is its nesting.
func checkReply(t testing.TB, r Reply, l Limits, depth int) {
	t.Helper()
	if depth > maxDepth {
		t.Fatalf("reply nested %d deep", depth)
	}
	switch r.Kind {
	case KindSimple, KindError:
		if len(r.Str) > l.MaxInline {
			t.Fatalf("line of %d bytes", len(r.Str))
		}
		if bytes.IndexByte(r.Str, '\n') >= 0 {
			t.Fatalf("line %q holds LF", r.Str)
		}
	case KindBulk:
		if len(r.Str) > l.MaxBulk {
			t.Fatalf("bulk of %d bytes", len(r.Str))
		}
	case KindArray:
		if len(r.Elems) > l.MaxArgs {
			t.Fatalf("array of %d", len(r.Elems))
		}
		for _, e := range r.Elems {
			checkReply(t, e, l, depth+1)
		}
	case KindInt, KindNil:
	default:
		t.Fatalf("unknown kind %q", r.Kind)
	}
	if r.Kind != KindArray && r.Elems != nil || r.Kind != KindInt && r.Int != 0 ||
		(r.Kind == KindInt || r.Kind == KindNil || r.Kind == KindArray) && r.Str != nil {
		t.Fatalf("reply %s has fields of another kind", fmtReply(r))
	}
}

// fuzzReadReplies reads replies until an error.
func fuzzReadReplies(t testing.TB, br *bufio.Reader, inputLen int) ([]Reply, error) {
	t.Helper()
	rr := NewReplyReader(br, fuzzReplyLimits)
	var out []Reply
	for i := 0; ; i++ {
		if i > inputLen+1 {
			t.Fatalf("ReadReply does not stop after %d calls on %d bytes", i, inputLen)
		}
		r, err := rr.ReadReply()
		if err != nil {
			if k := errKind(err); strings.HasPrefix(k, "other") || k == "too large" {
				t.Fatalf("unexpected error %v", err)
			}
			return out, err
		}
		checkReply(t, r, fuzzReplyLimits, 0)
		_ = r.String()
		out = append(out, r)
	}
}

func sameReplies(a, b []Reply) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !replyEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

func fmtReplies(rs []Reply) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = fmtReply(r)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func FuzzReadReply(f *testing.F) {
	for _, s := range replySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		replies, err := fuzzReadReplies(t, bufio.NewReader(bytes.NewReader(data)), len(data))

		bytewise, err2 := fuzzReadReplies(t, bufio.NewReader(iotest.OneByteReader(bytes.NewReader(data))), len(data))
		if !sameReplies(replies, bytewise) || errKind(err) != errKind(err2) {
			t.Fatalf("whole: %s %v\none byte at a time: %s %v", fmtReplies(replies), err, fmtReplies(bytewise), err2)
		}

		// re-encoded, the replies read the same
		var enc []byte
		for _, r := range replies {
			enc = encodeReply(enc, r)
		}
		again, err := fuzzReadReplies(t, bufio.NewReader(bytes.NewReader(enc)), len(enc))
		if err != io.EOF || !sameReplies(again, replies) {
			t.Fatalf("re-encoded %q\n read %s %v\nwant %s", enc, fmtReplies(again), err, fmtReplies(replies))
		}

		// the Writer encodes them the same way, but for CRs in errors
		var buf bytes.Buffer
		w := NewWriter(bufio.NewWriter(&buf))
		var normalized []byte
		for _, r := range replies {
			writeReply(w, r)
			normalized = encodeReply(normalized, errorsWithoutCR(r))
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), normalized) {
			t.Fatalf("Writer wrote %q\nwant %q", buf.Bytes(), normalized)
		}
	})
}

// The fuzz helpers themselves must accept what the unit tests accept.
func TestFuzzSeedsSane(t *testing.T) {
	steps := fuzzReadCommands(t, bufio.NewReader(strings.NewReader(commandSeeds[7])), len(commandSeeds[7]))
	if len(steps) != 3 || steps[0].String() != cmdStep("SET", "key", "value") || !errors.Is(steps[2].err, io.EOF) {
		t.Errorf("steps %v", steps)
	}
	replies, err := fuzzReadReplies(t, bufio.NewReader(strings.NewReader(replySeeds[7])), len(replySeeds[7]))
	if err != io.EOF || len(replies) != 1 || string(encodeReply(nil, replies[0])) != replySeeds[7] {
		t.Errorf("replies %s %v", fmtReplies(replies), err)
	}
}
