package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// bulkCmd encodes args as a RESP array of bulk strings, by hand, so that the
// Reader tests do not depend on the Writer.
func bulkCmd(args ...string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&sb, "$%d\r\n%s\r\n", len(a), a)
	}
	return sb.String()
}

// errKind names the class of a ReadCommand/ReadReply error.
func errKind(err error) string {
	var pe *ProtocolError
	switch {
	case err == nil:
		return ""
	case err == io.EOF: // exactly io.EOF, never wrapped
		return "EOF"
	case err == io.ErrUnexpectedEOF:
		return "unexpected EOF"
	case err == ErrTooLarge:
		return "too large"
	case errors.As(err, &pe):
		return "protocol"
	default:
		return "other: " + err.Error()
	}
}

// readSteps reads commands from r until an error other than ErrTooLarge and
// renders each result: a command as its quoted args, an error as "!kind".
func readSteps(t testing.TB, r *Reader) []string {
	t.Helper()
	var steps []string
	for i := 0; ; i++ {
		if i > 10000 {
			t.Fatalf("ReadCommand does not stop; steps so far %q", steps)
		}
		cmd, err := r.ReadCommand()
		if err != nil {
			if cmd.Args != nil {
				t.Errorf("ReadCommand returned args %q with error %v", cmd.Args, err)
			}
			steps = append(steps, "!"+errKind(err))
			if err == ErrTooLarge {
				continue
			}
			return steps
		}
		if len(cmd.Args) == 0 {
			t.Fatalf("ReadCommand returned a command with no args and no error")
		}
		steps = append(steps, fmt.Sprintf("%q", cmd.Args))
	}
}

// cmdStep renders a command as readSteps does.
func cmdStep(args ...string) string {
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	return fmt.Sprintf("%q", b)
}

func newTestReader(t testing.TB, input string, l Limits) *Reader {
	t.Helper()
	return NewReader(bufio.NewReader(strings.NewReader(input)), l)
}

type readerCase struct {
	name   string
	input  string
	limits Limits
	want   []string // cmdStep(...) or "!kind"; the last one ends the stream
}

// runReaderCases checks each case both with the input available at once and
// delivered one byte per Read, which must not change any result.
func runReaderCases(t *testing.T, cases []readerCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := readSteps(t, newTestReader(t, tc.input, tc.limits))
			if !slicesEqual(got, tc.want) {
				t.Errorf("input %q\n got %q\nwant %q", tc.input, got, tc.want)
			}
			br := bufio.NewReader(iotest.OneByteReader(strings.NewReader(tc.input)))
			got = readSteps(t, NewReader(br, tc.limits))
			if !slicesEqual(got, tc.want) {
				t.Errorf("one byte at a time: input %q\n got %q\nwant %q", tc.input, got, tc.want)
			}
		})
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReaderArrays(t *testing.T) {
	runReaderCases(t, []readerCase{
		{name: "ping", input: bulkCmd("PING"), want: []string{cmdStep("PING"), "!EOF"}},
		{name: "set", input: bulkCmd("SET", "key", "value"), want: []string{cmdStep("SET", "key", "value"), "!EOF"}},
		{name: "empty bulk", input: bulkCmd("SET", "", ""), want: []string{cmdStep("SET", "", ""), "!EOF"}},
		{name: "binary CR LF NUL", input: bulkCmd("SET", "a\r\nb", "\x00\r\n\x00\n\r*1\r\n$4\r\n\xff"),
			want: []string{cmdStep("SET", "a\r\nb", "\x00\r\n\x00\n\r*1\r\n$4\r\n\xff"), "!EOF"}},
		{name: "bulk of CRLF only", input: bulkCmd("\r\n", "\r\n\r\n"), want: []string{cmdStep("\r\n", "\r\n\r\n"), "!EOF"}},
		{name: "pipelined", input: bulkCmd("SET", "a", "1") + bulkCmd("GET", "a") + bulkCmd("DEL", "a", "b", "c"),
			want: []string{cmdStep("SET", "a", "1"), cmdStep("GET", "a"), cmdStep("DEL", "a", "b", "c"), "!EOF"}},
		// 0-db refuses empty and null arrays at once (redis skips them, and
		// a client that sent one waited for a reply that never came)
		{name: "empty array refused", input: "*0\r\n" + bulkCmd("PING"), want: []string{"!protocol"}},
		{name: "null array refused", input: "*-1\r\n" + bulkCmd("PING"), want: []string{"!protocol"}},
		{name: "empty array after a command", input: bulkCmd("PING") + "*0\r\n", want: []string{cmdStep("PING"), "!protocol"}},
		{name: "stray line ends between commands", input: "\r\n\n" + bulkCmd("A") + "\r\n\r\n" + bulkCmd("B") + "\n",
			want: []string{cmdStep("A"), cmdStep("B"), "!EOF"}},
		{name: "LF only line ends on lengths", input: "*1\n$4\nPING\r\n", want: []string{cmdStep("PING"), "!EOF"}},
		{name: "many args", input: bulkCmd(strings.Split(strings.Repeat("x ", 1000), " ")[:1000]...),
			want: []string{cmdStep(strings.Split(strings.Repeat("x ", 1000), " ")[:1000]...), "!EOF"}},
	})
}

func TestReaderInline(t *testing.T) {
	runReaderCases(t, []readerCase{
		{name: "ping CRLF", input: "PING\r\n", want: []string{cmdStep("PING"), "!EOF"}},
		{name: "set LF", input: "SET a b\n", want: []string{cmdStep("SET", "a", "b"), "!EOF"}},
		{name: "spaces and tabs", input: "  SET \t a\t\t  b  \t\r\n", want: []string{cmdStep("SET", "a", "b"), "!EOF"}},
		{name: "empty lines ignored", input: "\r\n\n\r\nPING\r\n\r\n", want: []string{cmdStep("PING"), "!EOF"}},
		{name: "blank lines ignored", input: "   \r\n\t\t\n \t \r\nPING\r\n", want: []string{cmdStep("PING"), "!EOF"}},
		{name: "inner CR kept", input: "a\rb c\r\r\n", want: []string{cmdStep("a\rb", "c\r"), "!EOF"}},
		{name: "binary word", input: "SET \x00\x01 \xff\n", want: []string{cmdStep("SET", "\x00\x01", "\xff"), "!EOF"}},
		{name: "mixed with arrays", input: "PING\r\n" + bulkCmd("SET", "k v", "x\r\ny") + "GET k\n" + bulkCmd("QUIT"),
			want: []string{cmdStep("PING"), cmdStep("SET", "k v", "x\r\ny"), cmdStep("GET", "k"), cmdStep("QUIT"), "!EOF"}},
		{name: "dollar starts an inline command", input: "$4\r\n", want: []string{cmdStep("$4"), "!EOF"}},
		{name: "many words", input: strings.Repeat("w ", 200) + "\n", want: []string{cmdStep(strings.Split(strings.Repeat("w ", 200), " ")[:200]...), "!EOF"}},
	})
}

func TestReaderEOF(t *testing.T) {
	runReaderCases(t, []readerCase{
		{name: "empty stream", input: "", want: []string{"!EOF"}},
		{name: "only line ends", input: "\r\n\n\r", want: []string{"!EOF"}},
		{name: "EOF after command", input: bulkCmd("PING"), want: []string{cmdStep("PING"), "!EOF"}},
		{name: "star only", input: "*", want: []string{"!unexpected EOF"}},
		{name: "after command, star only", input: "PING\r\n*", want: []string{cmdStep("PING"), "!unexpected EOF"}},
		{name: "array length unterminated", input: "*2", want: []string{"!unexpected EOF"}},
		{name: "array length without args", input: "*2\r\n", want: []string{"!unexpected EOF"}},
		{name: "dollar only", input: "*2\r\n$", want: []string{"!unexpected EOF"}},
		{name: "bulk length unterminated", input: "*2\r\n$3", want: []string{"!unexpected EOF"}},
		{name: "bulk truncated", input: "*2\r\n$3\r\nGE", want: []string{"!unexpected EOF"}},
		{name: "bulk without CRLF", input: "*2\r\n$3\r\nGET", want: []string{"!unexpected EOF"}},
		{name: "bulk with CR only", input: "*2\r\n$3\r\nGET\r", want: []string{"!unexpected EOF"}},
		{name: "second arg missing", input: "*2\r\n$3\r\nGET\r\n", want: []string{"!unexpected EOF"}},
		{name: "second arg truncated", input: bulkCmd("PING") + "*2\r\n$3\r\nGET\r\n$1\r\n", want: []string{cmdStep("PING"), "!unexpected EOF"}},
		{name: "inline without line end", input: "PING", want: []string{"!unexpected EOF"}},
		{name: "skipped bulk truncated", input: "*1\r\n$100\r\nabc", limits: Limits{MaxBulk: 8, MaxSkip: 1000}, want: []string{"!too large", "!unexpected EOF"}},
		{name: "skipped args missing", input: "*3\r\n$100\r\n" + strings.Repeat("x", 100) + "\r\n$1\r\n", limits: Limits{MaxBulk: 8, MaxSkip: 1000},
			want: []string{"!too large", "!unexpected EOF"}},
	})
}

func TestReaderProtocolErrors(t *testing.T) {
	runReaderCases(t, []readerCase{
		{name: "negative array length", input: "*-2\r\n", want: []string{"!protocol"}},
		{name: "very negative array length", input: "*-9223372036854775808\r\n", want: []string{"!protocol"}},
		{name: "garbage array length", input: "*abc\r\n", want: []string{"!protocol"}},
		{name: "empty array length", input: "*\r\n", want: []string{"!protocol"}},
		{name: "array length with space", input: "*1 \r\n$4\r\nPING\r\n", want: []string{"!protocol"}},
		{name: "array length overflow", input: "*99999999999999999999\r\n", want: []string{"!protocol"}},
		{name: "array length line too long", input: "*" + strings.Repeat("0", 40) + "1\r\n", want: []string{"!protocol"}},
		{name: "huge array length", input: "*9223372036854775807\r\n", want: []string{"!protocol"}},
		{name: "not a bulk", input: "*1\r\n+PING\r\n", want: []string{"!protocol"}},
		{name: "nested array", input: "*1\r\n*1\r\n$4\r\nPING\r\n", want: []string{"!protocol"}},
		{name: "null bulk", input: "*1\r\n$-1\r\n", want: []string{"!protocol"}},
		{name: "negative bulk", input: "*1\r\n$-5\r\n", want: []string{"!protocol"}},
		{name: "garbage bulk length", input: "*1\r\n$x\r\nPING\r\n", want: []string{"!protocol"}},
		{name: "bulk length overflow", input: "*1\r\n$99999999999999999999\r\n", want: []string{"!protocol"}},
		{name: "huge bulk length", input: "*1\r\n$9223372036854775807\r\n", want: []string{"!protocol"}},
		{name: "bulk beyond MaxSkip", input: "*1\r\n$65\r\n" + strings.Repeat("x", 65) + "\r\n" + bulkCmd("PING"),
			limits: Limits{MaxBulk: 8, MaxSkip: 64}, want: []string{"!protocol"}},
		{name: "bulk beyond default MaxSkip", input: "*1\r\n$1073741825\r\n", want: []string{"!protocol"}},
		{name: "bulk too long", input: "*1\r\n$4\r\nPINGG\r\n", want: []string{"!protocol"}},
		{name: "bulk too short", input: "*1\r\n$4\r\nPIN\r\nPING\r\n", want: []string{"!protocol"}},
		{name: "bulk followed by LF only", input: "*1\r\n$4\r\nPING\n*1\r\n$4\r\nPING\r\n", want: []string{"!protocol"}},
		{name: "bulk followed by LF CR", input: "*1\r\n$4\r\nPING\n\r", want: []string{"!protocol"}},
		{name: "skipped bulk without CRLF", input: "*1\r\n$10\r\n0123456789xx", limits: Limits{MaxBulk: 4, MaxSkip: 100}, want: []string{"!too large", "!protocol"}},
		{name: "skipped arg not a bulk", input: "*2\r\n$10\r\n0123456789\r\n:1\r\n", limits: Limits{MaxBulk: 4, MaxSkip: 100}, want: []string{"!too large", "!protocol"}},
		{name: "skipped arg negative", input: "*2\r\n$10\r\n0123456789\r\n$-5\r\n", limits: Limits{MaxBulk: 4, MaxSkip: 100}, want: []string{"!too large", "!protocol"}},
		{name: "skipped arg beyond MaxSkip", input: "*2\r\n$10\r\n0123456789\r\n$101\r\n", limits: Limits{MaxBulk: 4, MaxSkip: 100}, want: []string{"!too large", "!protocol"}},
		{name: "too many args", input: "*1025\r\n", limits: Limits{MaxArgs: 1024}, want: []string{"!protocol"}},
		{name: "protocol error after good command", input: bulkCmd("PING") + "*x\r\n", want: []string{cmdStep("PING"), "!protocol"}},
	})
}

func TestReaderLimits(t *testing.T) {
	small := Limits{MaxArgs: 3, MaxBulk: 8, MaxSkip: 64, MaxInline: 8}
	runReaderCases(t, []readerCase{
		{name: "MaxArgs array ok", input: bulkCmd("a", "b", "c"), limits: small, want: []string{cmdStep("a", "b", "c"), "!EOF"}},
		{name: "MaxArgs array exceeded", input: bulkCmd("a", "b", "c", "d"), limits: small, want: []string{"!protocol"}},
		{name: "MaxArgs inline ok", input: "a b c\r\n", limits: small, want: []string{cmdStep("a", "b", "c"), "!EOF"}},
		{name: "MaxArgs inline exceeded", input: "a b c d\r\n", limits: small, want: []string{"!protocol"}},
		{name: "MaxInline ok CRLF", input: "12345678\r\n", limits: small, want: []string{cmdStep("12345678"), "!EOF"}},
		{name: "MaxInline ok LF", input: "12345678\n", limits: small, want: []string{cmdStep("12345678"), "!EOF"}},
		{name: "MaxInline exceeded CRLF", input: "123456789\r\nPING\r\n", limits: small, want: []string{"!protocol"}},
		{name: "MaxInline exceeded LF", input: "123456789\nPING\r\n", limits: small, want: []string{"!protocol"}},
		{name: "MaxInline exceeded by blanks", input: "a        \r\n", limits: small, want: []string{"!protocol"}},
		{name: "MaxInline exceeded without line end", input: "123456789", limits: small, want: []string{"!protocol"}},
		{name: "MaxInline default", input: strings.Repeat("x", 3000) + "\r\n", want: []string{cmdStep(strings.Repeat("x", 3000)), "!EOF"}},
		{name: "MaxBulk ok", input: bulkCmd("SET", "12345678"), limits: small, want: []string{cmdStep("SET", "12345678"), "!EOF"}},
		{name: "too large then resync", input: bulkCmd("SET", "123456789") + bulkCmd("PING"), limits: small,
			want: []string{"!too large", cmdStep("PING"), "!EOF"}},
		{name: "too large first arg, later args skipped", input: bulkCmd("123456789", "a", "b") + "GET k\r\n", limits: small,
			want: []string{"!too large", cmdStep("GET", "k"), "!EOF"}},
		{name: "too large at MaxSkip", input: bulkCmd("SET", strings.Repeat("\r\n", 32)) + bulkCmd("PING"), limits: small,
			want: []string{"!too large", cmdStep("PING"), "!EOF"}},
		{name: "too large binary body looks like commands", input: bulkCmd("SET", bulkCmd("EVIL")+"*1\r\n") + bulkCmd("PING"), limits: small,
			want: []string{"!too large", cmdStep("PING"), "!EOF"}},
		{name: "total over twice MaxBulk", input: bulkCmd("12345678", "12345678", "1") + bulkCmd("PING"), limits: small,
			want: []string{"!too large", cmdStep("PING"), "!EOF"}},
		{name: "total at twice MaxBulk", input: bulkCmd("12345678", "12345678", "") + bulkCmd("PING"), limits: small,
			want: []string{cmdStep("12345678", "12345678", ""), cmdStep("PING"), "!EOF"}},
		{name: "several too large in a row", input: bulkCmd("123456789") + bulkCmd("123456789") + bulkCmd("PING"), limits: small,
			want: []string{"!too large", "!too large", cmdStep("PING"), "!EOF"}},
		{name: "too large then protocol error", input: bulkCmd("123456789") + "*-3\r\n", limits: small,
			want: []string{"!too large", "!protocol"}},
	})
}

func TestReaderDefaultLimits(t *testing.T) {
	r := NewReader(bufio.NewReader(strings.NewReader("")), Limits{})
	if r.limits != DefaultLimits() {
		t.Errorf("zero limits = %+v, want %+v", r.limits, DefaultLimits())
	}
	r = NewReader(bufio.NewReader(strings.NewReader("")), Limits{MaxArgs: -1, MaxBulk: 5, MaxSkip: -1, MaxInline: 7})
	want := DefaultLimits()
	want.MaxBulk, want.MaxInline = 5, 7
	if r.limits != want {
		t.Errorf("partial limits = %+v, want %+v", r.limits, want)
	}
}

// A value of about 8 MiB (0-db's largest) under the default limits.
func TestReaderLargeValue(t *testing.T) {
	val := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16)
	input := bulkCmd("SET", "k", string(val)) + bulkCmd("GET", "k")
	r := newTestReader(t, input, Limits{})
	cmd, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	if len(cmd.Args) != 3 || string(cmd.Args[0]) != "SET" || !bytes.Equal(cmd.Args[2], val) {
		t.Fatalf("large SET misread")
	}
	if got := readSteps(t, r); !slicesEqual(got, []string{cmdStep("GET", "k"), "!EOF"}) {
		t.Errorf("after large value: %q", got)
	}
}

// Stray line ends must not consume stack: a client sending millions of
// them must not crash the server with a stack overflow (which is fatal, not
// a recoverable panic).
func TestReaderManyLineEnds(t *testing.T) {
	defer debug.SetMaxStack(debug.SetMaxStack(8 << 20))
	const n = 1 << 20
	input := io.MultiReader(&repeatReader{unit: []byte("\r\n\n"), n: n}, strings.NewReader(bulkCmd("PING")))
	r := NewReader(bufio.NewReader(input), Limits{})
	if got := readSteps(t, r); !slicesEqual(got, []string{cmdStep("PING"), "!EOF"}) {
		t.Errorf("got %q", got)
	}
}

// repeatReader yields unit n times.
type repeatReader struct {
	unit []byte
	n    int
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	total := 0
	for len(p) > 0 && r.n > 0 {
		c := copy(p, r.unit[r.off:])
		p, total, r.off = p[c:], total+c, r.off+c
		if r.off == len(r.unit) {
			r.off = 0
			r.n--
		}
	}
	if total == 0 && r.n == 0 {
		return 0, io.EOF
	}
	return total, nil
}

// The args of a command are only valid until the next ReadCommand; right
// after the call they are correct, independent slices.
func TestReaderArgsValidUntilNextCall(t *testing.T) {
	input := bulkCmd("SET", "key", "value") + "MSET  k1 v1\tk2 v2\r\n" + bulkCmd("XXXXXXXX", "YYYYYYYYYYYY", "ZZZZ")
	r := newTestReader(t, input, Limits{})
	want := [][]string{{"SET", "key", "value"}, {"MSET", "k1", "v1", "k2", "v2"}, {"XXXXXXXX", "YYYYYYYYYYYY", "ZZZZ"}}
	for i, w := range want {
		cmd, err := r.ReadCommand()
		if err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		checkArgs(t, cmd, w)
		// appending to one arg must not clobber the next one
		for j := range cmd.Args {
			_ = append(cmd.Args[j], "!!!!!!!!!!!!!!!!"...)
		}
		checkArgs(t, cmd, w)
	}
	if _, err := r.ReadCommand(); err != io.EOF {
		t.Errorf("end: %v, want io.EOF", err)
	}
}

func checkArgs(t testing.TB, cmd Command, want []string) {
	t.Helper()
	if len(cmd.Args) != len(want) {
		t.Fatalf("args %q, want %q", cmd.Args, want)
	}
	for i := range want {
		if string(cmd.Args[i]) != want[i] {
			t.Fatalf("args %q, want %q", cmd.Args, want)
		}
	}
}

// A Reader must not keep a large argument buffer across calls: once the
// caller is done with a big command, an idle connection must not pin it.
func TestReaderReleasesLargeBuffer(t *testing.T) {
	big := strings.Repeat("v", 3*keepBuf/2)
	for _, next := range []string{"", "PING\r\n", bulkCmd("PING")} {
		t.Run(fmt.Sprintf("next=%q", next), func(t *testing.T) {
			r := newTestReader(t, bulkCmd("SET", "k", big)+next, Limits{MaxBulk: 2 * keepBuf})
			cmd, err := r.ReadCommand()
			if err != nil {
				t.Fatal(err)
			}
			if string(cmd.Args[2]) != big {
				t.Fatal("big value misread")
			}
			_, err = r.ReadCommand()
			if next == "" && err != io.EOF || next != "" && err != nil {
				t.Fatalf("next command: %v", err)
			}
			if c := cap(r.buf); c > keepBuf {
				t.Errorf("after the next call the Reader still holds a %d-byte buffer", c)
			}
		})
	}
}

func TestReaderBuffered(t *testing.T) {
	input := bulkCmd("PING") + "PING\r\n"
	r := newTestReader(t, input, Limits{})
	if n := r.Buffered(); n != 0 {
		t.Errorf("Buffered before reading = %d, want 0", n)
	}
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if n := r.Buffered(); n != len("PING\r\n") {
		t.Errorf("Buffered = %d, want %d", n, len("PING\r\n"))
	}
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if n := r.Buffered(); n != 0 {
		t.Errorf("Buffered at end = %d, want 0", n)
	}
}

// errPastHeader is what a Reader gets if it reads beyond the bytes a test
// gave it: a Reader that waits for more than the header it refuses.
var errPastHeader = errors.New("read past the refused header")

type pastHeader struct{}

func (pastHeader) Read([]byte) (int, error) { return 0, errPastHeader }

// A malformed or oversized header is refused from the header alone: the
// Reader never waits for the arguments or the payload it announces (on a
// connection, that wait would last until the client's timeout).
func TestReaderRefusesAtOnce(t *testing.T) {
	l := Limits{MaxArgs: 1024, MaxBulk: 8 << 20}
	cases := []struct{ name, input, want string }{
		{"empty array", "*0\r\n", "Protocol error: invalid multibulk length"},
		{"null array", "*-1\r\n", "Protocol error: invalid multibulk length"},
		{"negative array", "*-5\r\n", "Protocol error: invalid multibulk length"},
		{"too many args", "*1025\r\n", "Protocol error: too many arguments (1025, at most 1024)"},
		{"far too many args", "*99999999\r\n", "Protocol error: too many arguments (99999999, at most 1024)"},
		{"null bulk", "*2\r\n$-1\r\n", "Protocol error: invalid bulk length"},
		{"negative bulk", "*2\r\n$-5\r\n", "Protocol error: invalid bulk length"},
		{"negative later bulk", "*2\r\n$3\r\nGET\r\n$-5\r\n", "Protocol error: invalid bulk length"},
		{"bulk beyond MaxSkip", "*1\r\n$1073741825\r\n", "Protocol error: invalid bulk length"},
		{"bulk over MaxBulk", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8388609\r\n", ErrTooLarge.Error()},
		{"bulks over twice MaxBulk", "*3\r\n$8388608\r\n" + strings.Repeat("x", 8<<20) + "\r\n$8388608\r\n" + strings.Repeat("y", 8<<20) + "\r\n$1\r\n",
			ErrTooLarge.Error()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(io.MultiReader(strings.NewReader(tc.input), pastHeader{}))
			r := NewReader(br, l)
			_, err := r.ReadCommand()
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if tooLarge := err == ErrTooLarge; r.Skipping() != tooLarge {
				t.Errorf("Skipping() = %v after %v", r.Skipping(), err)
			}
		})
	}
	// the largest legitimate command: MaxArgs arguments, a value of MaxBulk
	args := make([]string, 1024)
	args[0], args[1], args[2] = "SET", "k", strings.Repeat("v", 8<<20)
	r := newTestReader(t, bulkCmd(args...), l)
	if cmd, err := r.ReadCommand(); err != nil || len(cmd.Args) != 1024 || len(cmd.Args[2]) != 8<<20 {
		t.Fatalf("largest command: %d args, %v", len(cmd.Args), err)
	}
}

// After ErrTooLarge the rest of the command is skipped by the next call,
// however it arrives, and the Reader is in step again.
func TestReaderSkipsRefusedCommand(t *testing.T) {
	l := Limits{MaxBulk: 8, MaxSkip: 1 << 20}
	input := bulkCmd("SET", "k", strings.Repeat("v", 100000), "extra") + bulkCmd("GET", "k")
	for _, chunked := range []bool{false, true} {
		var src io.Reader = strings.NewReader(input)
		if chunked {
			src = iotest.HalfReader(src)
		}
		r := NewReader(bufio.NewReaderSize(src, 16), l)
		if _, err := r.ReadCommand(); err != ErrTooLarge {
			t.Fatalf("first: %v, want ErrTooLarge", err)
		}
		if !r.Skipping() {
			t.Fatal("Skipping() = false after ErrTooLarge")
		}
		cmd, err := r.ReadCommand()
		if err != nil {
			t.Fatal(err)
		}
		checkArgs(t, cmd, []string{"GET", "k"})
		if r.Skipping() {
			t.Error("Skipping() = true after the next command")
		}
		if _, err := r.ReadCommand(); err != io.EOF {
			t.Errorf("end: %v, want io.EOF", err)
		}
	}
}

func TestProtocolErrorMessage(t *testing.T) {
	cases := []struct{ input, want string }{
		{"*1\r\n+PING\r\n", "Protocol error: expected '$', got '+'"},
		{"*1\r\n\x00", "Protocol error: expected '$', got '\\x00'"},
		{"*-2\r\n", "Protocol error: invalid multibulk length"},
		{"*0\r\n", "Protocol error: invalid multibulk length"},
		{"*-1\r\n", "Protocol error: invalid multibulk length"},
		{"*1\r\n$-2\r\n", "Protocol error: invalid bulk length"},
		{"*1\r\n$4\r\nPINGxx", "Protocol error: expected CRLF after bulk string"},
		{"*abc\r\n", `Protocol error: invalid length "abc"`},
		{"*" + strings.Repeat("x", 20) + "\r\n", `Protocol error: invalid length "xxxxxxxxxxxxxxxx"`},
		{strings.Repeat("x", 201) + "\r\n", "Protocol error: too big inline request"},
		{"*65\r\n", "Protocol error: too many arguments (65, at most 64)"},
		{strings.Repeat("a ", 65) + "\r\n", "Protocol error: too many arguments (at most 64)"},
		{"*9223372036854775807\r\n", "Protocol error: too many arguments (9223372036854775807, at most 64)"},
	}
	for _, tc := range cases {
		t.Run(tc.input, func(t *testing.T) {
			_, err := newTestReader(t, tc.input, Limits{MaxInline: 200, MaxArgs: 64}).ReadCommand()
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *ProtocolError", err)
			}
			if err.Error() != tc.want {
				t.Errorf("err = %q, want %q", err.Error(), tc.want)
			}
		})
	}
}

// --- Writer and ReplyReader ---

// writeTo runs f on a Writer and returns what it wrote.
func writeTo(t testing.TB, f func(w *Writer)) string {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(bufio.NewWriter(&buf))
	f(w)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Buffered() != 0 {
		t.Fatalf("Buffered after Flush = %d", w.Buffered())
	}
	return buf.String()
}

func readReplies(t testing.TB, input string, l Limits) ([]Reply, error) {
	t.Helper()
	rr := NewReplyReader(bufio.NewReader(strings.NewReader(input)), l)
	var out []Reply
	for {
		r, err := rr.ReadReply()
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}

func replyEqual(a, b Reply) bool {
	if a.Kind != b.Kind || a.Int != b.Int || !bytes.Equal(a.Str, b.Str) || len(a.Elems) != len(b.Elems) {
		return false
	}
	for i := range a.Elems {
		if !replyEqual(a.Elems[i], b.Elems[i]) {
			return false
		}
	}
	return true
}

// fmtReply renders a reply unambiguously for test failures.
func fmtReply(r Reply) string {
	switch r.Kind {
	case KindInt:
		return fmt.Sprintf(":%d", r.Int)
	case KindNil:
		return "nil"
	case KindArray:
		s := make([]string, len(r.Elems))
		for i, e := range r.Elems {
			s[i] = fmtReply(e)
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	return fmt.Sprintf("%c%q", r.Kind, r.Str)
}

func simple(s string) Reply   { return Reply{Kind: KindSimple, Str: []byte(s)} }
func errReply(s string) Reply { return Reply{Kind: KindError, Str: []byte(s)} }
func bulk(s string) Reply     { return Reply{Kind: KindBulk, Str: []byte(s)} }
func integer(n int64) Reply   { return Reply{Kind: KindInt, Int: n} }
func array(e ...Reply) Reply  { return Reply{Kind: KindArray, Elems: append([]Reply{}, e...)} }

var nilReply = Reply{Kind: KindNil}

func TestWriterRoundTrip(t *testing.T) {
	cases := []struct {
		name  string
		write func(w *Writer)
		wire  string
		want  Reply
	}{
		{"simple", func(w *Writer) { w.Simple("OK") }, "+OK\r\n", simple("OK")},
		{"simple empty", func(w *Writer) { w.Simple("") }, "+\r\n", simple("")},
		{"error", func(w *Writer) { w.Error("ERR boom") }, "-ERR boom\r\n", errReply("ERR boom")},
		{"error with line breaks", func(w *Writer) { w.Error("ERR a\r\nb\nc\rd\r\n") }, "-ERR a  b c d  \r\n", errReply("ERR a  b c d  ")},
		{"int", func(w *Writer) { w.Int(42) }, ":42\r\n", integer(42)},
		{"int zero", func(w *Writer) { w.Int(0) }, ":0\r\n", integer(0)},
		{"int negative", func(w *Writer) { w.Int(-7) }, ":-7\r\n", integer(-7)},
		{"int min", func(w *Writer) { w.Int(math.MinInt64) }, ":-9223372036854775808\r\n", integer(math.MinInt64)},
		{"int max", func(w *Writer) { w.Int(math.MaxInt64) }, ":9223372036854775807\r\n", integer(math.MaxInt64)},
		{"bulk", func(w *Writer) { w.Bulk([]byte("hello")) }, "$5\r\nhello\r\n", bulk("hello")},
		{"bulk empty", func(w *Writer) { w.Bulk(nil) }, "$0\r\n\r\n", bulk("")},
		{"bulk binary", func(w *Writer) { w.Bulk([]byte("\r\n\x00$-1\r\n")) }, "$8\r\n\r\n\x00$-1\r\n\r\n", bulk("\r\n\x00$-1\r\n")},
		{"bulk string", func(w *Writer) { w.BulkString("a\nb") }, "$3\r\na\nb\r\n", bulk("a\nb")},
		{"nil", func(w *Writer) { w.Nil() }, "$-1\r\n", nilReply},
		{"empty array", func(w *Writer) { w.Array(0) }, "*0\r\n", array()},
		{"array", func(w *Writer) {
			w.Array(5)
			w.Simple("OK")
			w.Int(1)
			w.Nil()
			w.BulkString("x")
			w.Error("E")
		}, "*5\r\n+OK\r\n:1\r\n$-1\r\n$1\r\nx\r\n-E\r\n", array(simple("OK"), integer(1), nilReply, bulk("x"), errReply("E"))},
		{"nested arrays", func(w *Writer) {
			w.Array(3)
			w.Array(2)
			w.Int(1)
			w.Array(1)
			w.BulkString("deep")
			w.Array(0)
			w.Int(2)
		}, "*3\r\n*2\r\n:1\r\n*1\r\n$4\r\ndeep\r\n*0\r\n:2\r\n",
			array(array(integer(1), array(bulk("deep"))), array(), integer(2))},
		{"command", func(w *Writer) { w.Command([]byte("SET"), []byte("k"), []byte("v\r\n")) },
			"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n", array(bulk("SET"), bulk("k"), bulk("v\r\n"))},
		{"command no args", func(w *Writer) { w.Command() }, "*0\r\n", array()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wire := writeTo(t, tc.write)
			if wire != tc.wire {
				t.Fatalf("wrote %q, want %q", wire, tc.wire)
			}
			got, err := readReplies(t, wire, Limits{})
			if err != io.EOF {
				t.Fatalf("ReadReply error %v after %d replies", err, len(got))
			}
			if len(got) != 1 || !replyEqual(got[0], tc.want) {
				var s []string
				for _, r := range got {
					s = append(s, fmtReply(r))
				}
				t.Errorf("read %v, want %s", s, fmtReply(tc.want))
			}
		})
	}
}

// Commands written by Writer.Command are read back by Reader.
func TestWriterCommandToReader(t *testing.T) {
	cmds := [][]string{
		{"PING"},
		{"SET", "key", "a\r\nb\x00c"},
		{"SET", "", ""},
		{"MSET", "k1", "v1", "k2", "v2"},
		{"SET", "k", strings.Repeat("\r\n", 5000)},
	}
	wire := writeTo(t, func(w *Writer) {
		for _, c := range cmds {
			args := make([][]byte, len(c))
			for i, a := range c {
				args[i] = []byte(a)
			}
			w.Command(args...)
		}
	})
	var want []string
	for _, c := range cmds {
		want = append(want, cmdStep(c...))
	}
	want = append(want, "!EOF")
	if got := readSteps(t, newTestReader(t, wire, Limits{})); !slicesEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestReplyReaderValid(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  []Reply
	}{
		{"null array", "*-1\r\n", []Reply{nilReply}},
		{"LF only", "+OK\n:5\n$2\nab\r\n", []Reply{simple("OK"), integer(5), bulk("ab")}},
		{"simple with inner CR", "+a\rb\r\r\n", []Reply{simple("a\rb\r")}},
		{"error raw CR", "-ERR a\rb\r\n", []Reply{errReply("ERR a\rb")}},
		{"int plus sign", ":+5\r\n", []Reply{integer(5)}},
		{"pipelined", "+OK\r\n-ERR x\r\n:1\r\n$1\r\na\r\n$-1\r\n*1\r\n:2\r\n",
			[]Reply{simple("OK"), errReply("ERR x"), integer(1), bulk("a"), nilReply, array(integer(2))}},
		{"nesting 8 deep", strings.Repeat("*1\r\n", 8) + ":1\r\n", []Reply{nest(8, integer(1))}},
		{"empty array at depth 8", strings.Repeat("*1\r\n", 8) + "*0\r\n", []Reply{nest(8, array())}},
		{"null array at depth 8", strings.Repeat("*1\r\n", 8) + "*-1\r\n", []Reply{nest(8, nilReply)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readReplies(t, tc.input, Limits{})
			if err != io.EOF {
				t.Errorf("error %v, want io.EOF", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d replies, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !replyEqual(got[i], tc.want[i]) {
					t.Errorf("reply %d = %s, want %s", i, fmtReply(got[i]), fmtReply(tc.want[i]))
				}
			}
		})
	}
}

func nest(depth int, inner Reply) Reply {
	for range depth {
		inner = array(inner)
	}
	return inner
}

func TestReplyReaderErrors(t *testing.T) {
	small := Limits{MaxArgs: 4, MaxBulk: 8, MaxInline: 8}
	cases := []struct {
		name   string
		input  string
		limits Limits
		want   string // errKind
	}{
		{"empty", "", Limits{}, "EOF"},
		{"unknown type", "!oops\r\n", Limits{}, "protocol"},
		{"unknown type NUL", "\x00", Limits{}, "protocol"},
		{"RESP3 map", "%1\r\n+a\r\n+b\r\n", Limits{}, "protocol"},
		{"RESP3 null", "_\r\n", Limits{}, "protocol"},
		{"stray CRLF", "\r\n+OK\r\n", Limits{}, "protocol"},
		{"nesting 9 deep", strings.Repeat("*1\r\n", 9) + ":1\r\n", Limits{}, "protocol"},
		{"nesting 10 deep empty", strings.Repeat("*1\r\n", 9) + "*0\r\n", Limits{}, "protocol"},
		{"nesting very deep", strings.Repeat("*1\r\n", 100000), Limits{}, "protocol"},
		{"unknown type nested", "*2\r\n:1\r\n?\r\n", Limits{}, "protocol"},
		{"simple truncated", "+OK", Limits{}, "unexpected EOF"},
		{"simple type only", "+", Limits{}, "unexpected EOF"},
		{"error truncated", "-ERR", Limits{}, "unexpected EOF"},
		{"int type only", ":", Limits{}, "unexpected EOF"},
		{"int truncated", ":12", Limits{}, "unexpected EOF"},
		{"bulk type only", "$", Limits{}, "unexpected EOF"},
		{"bulk truncated", "$5\r\nab", Limits{}, "unexpected EOF"},
		{"bulk without CRLF", "$2\r\nab", Limits{}, "unexpected EOF"},
		{"array type only", "*", Limits{}, "unexpected EOF"},
		{"array truncated", "*2\r\n:1\r\n", Limits{}, "unexpected EOF"},
		{"nested array truncated", "*1\r\n*1\r\n", Limits{}, "unexpected EOF"},
		{"int garbage", ":x\r\n", Limits{}, "protocol"},
		{"int overflow", ":9223372036854775808\r\n", Limits{}, "protocol"},
		{"bulk garbage length", "$x\r\n", Limits{}, "protocol"},
		{"bulk negative length", "$-2\r\n", Limits{}, "protocol"},
		{"bulk over MaxBulk", "$9\r\n123456789\r\n", small, "protocol"},
		{"bulk huge", "$9223372036854775807\r\n", Limits{}, "protocol"},
		{"bulk missing CRLF", "$2\r\nabcd", Limits{}, "protocol"},
		{"array negative length", "*-2\r\n", Limits{}, "protocol"},
		{"array over MaxArgs", "*5\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n", small, "protocol"},
		{"array huge", "*9223372036854775807\r\n", Limits{}, "protocol"},
		{"simple too long", "+123456789\r\n", small, "protocol"},
		{"error too long", "-123456789\r\n", small, "protocol"},
		{"nested error too long", "*1\r\n-123456789\r\n", small, "protocol"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readReplies(t, tc.input, tc.limits)
			if len(got) != 0 {
				t.Errorf("read %d replies before the error", len(got))
			}
			if k := errKind(err); k != tc.want {
				t.Errorf("error %v (%s), want %s", err, k, tc.want)
			}
		})
	}
}

func TestReplyReaderLimitsAtBoundary(t *testing.T) {
	small := Limits{MaxArgs: 4, MaxBulk: 8, MaxInline: 8}
	input := "+12345678\r\n-12345678\n$8\r\n12345678\r\n*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n"
	got, err := readReplies(t, input, small)
	if err != io.EOF {
		t.Fatalf("error %v after %d replies", err, len(got))
	}
	want := []Reply{simple("12345678"), errReply("12345678"), bulk("12345678"), array(integer(1), integer(2), integer(3), integer(4))}
	if len(got) != len(want) {
		t.Fatalf("got %d replies", len(got))
	}
	for i := range want {
		if !replyEqual(got[i], want[i]) {
			t.Errorf("reply %d = %s, want %s", i, fmtReply(got[i]), fmtReply(want[i]))
		}
	}
}

// Replies own their bytes: reading more does not change earlier replies.
func TestReplyOwnsItsBytes(t *testing.T) {
	input := "+first\r\n$6\r\nsecond\r\n" + strings.Repeat("+xxxxxxxxxxxx\r\n", 1000) // lines fit the 16-byte buffer
	rr := NewReplyReader(bufio.NewReaderSize(strings.NewReader(input), 16), Limits{})
	a, err := rr.ReadReply()
	if err != nil {
		t.Fatal(err)
	}
	b, err := rr.ReadReply()
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if _, err := rr.ReadReply(); err != nil {
			t.Fatal(err)
		}
	}
	if string(a.Str) != "first" || string(b.Str) != "second" {
		t.Errorf("replies changed: %q %q", a.Str, b.Str)
	}
}

func TestReplyString(t *testing.T) {
	cases := []struct {
		r    Reply
		want string
	}{
		{simple("OK"), "OK"},
		{errReply("ERR nope"), "(error) ERR nope"},
		{integer(-12), "(integer) -12"},
		{bulk("value"), "value"},
		{bulk(""), ""},
		{nilReply, "(nil)"},
		{array(), "[]"},
		{array(bulk("a"), integer(1), nilReply, array(simple("x"), errReply("E"))), "[a (integer) 1 (nil) [x (error) E]]"},
		{Reply{}, "?"},
		{Reply{Kind: 'Z'}, "?"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.r.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReplyErr(t *testing.T) {
	if err := errReply("ERR x").Err(); err == nil || err.Error() != "ERR x" {
		t.Errorf("Err() = %v", err)
	} else {
		var se ServerError
		if !errors.As(err, &se) || se != "ERR x" {
			t.Errorf("Err() = %#v, want ServerError", err)
		}
	}
	for _, r := range []Reply{simple("ERR x"), bulk("ERR x"), integer(1), nilReply, array(errReply("E"))} {
		if err := r.Err(); err != nil {
			t.Errorf("%s.Err() = %v, want nil", fmtReply(r), err)
		}
	}
}

func BenchmarkReadCommand(b *testing.B) {
	unit := []byte(bulkCmd("SET", "some:key:"+strconv.Itoa(42), strings.Repeat("v", 100)))
	r := NewReader(bufio.NewReader(&repeatReader{unit: unit, n: math.MaxInt}), Limits{})
	b.SetBytes(int64(len(unit)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadCommand(); err != nil {
			b.Fatal(err)
		}
	}
}
