package resp

import (
	"bufio"
	"strconv"
)

// Writer writes RESP replies (or, for a client, requests) into a buffered
// writer; the caller decides when to Flush. It is owned by one goroutine.
type Writer struct {
	bw  *bufio.Writer
	num [24]byte
}

// NewWriter returns a Writer over bw.
func NewWriter(bw *bufio.Writer) *Writer { return &Writer{bw: bw} }

// Flush sends what is buffered.
func (w *Writer) Flush() error { return w.bw.Flush() }

// Buffered reports the bytes not yet flushed.
func (w *Writer) Buffered() int { return w.bw.Buffered() }

// Simple writes a simple string, "+OK\r\n". s must not hold CR or LF.
func (w *Writer) Simple(s string) {
	w.bw.WriteByte('+')
	w.bw.WriteString(s)
	w.bw.WriteString("\r\n")
}

// Error writes an error reply. Line breaks in msg are replaced by spaces so
// the stream stays well formed.
func (w *Writer) Error(msg string) {
	w.bw.WriteByte('-')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		w.bw.WriteByte(c)
	}
	w.bw.WriteString("\r\n")
}

// Int writes an integer reply.
func (w *Writer) Int(n int64) {
	w.bw.WriteByte(':')
	w.bw.Write(strconv.AppendInt(w.num[:0], n, 10))
	w.bw.WriteString("\r\n")
}

// Bulk writes a bulk string.
func (w *Writer) Bulk(b []byte) {
	w.bw.WriteByte('$')
	w.bw.Write(strconv.AppendInt(w.num[:0], int64(len(b)), 10))
	w.bw.WriteString("\r\n")
	w.bw.Write(b)
	w.bw.WriteString("\r\n")
}

// BulkString writes s as a bulk string.
func (w *Writer) BulkString(s string) {
	w.bw.WriteByte('$')
	w.bw.Write(strconv.AppendInt(w.num[:0], int64(len(s)), 10))
	w.bw.WriteString("\r\n")
	w.bw.WriteString(s)
	w.bw.WriteString("\r\n")
}

// Nil writes the null bulk string.
func (w *Writer) Nil() { w.bw.WriteString("$-1\r\n") }

// Array writes the header of an array of n elements; the caller writes them.
func (w *Writer) Array(n int) {
	w.bw.WriteByte('*')
	w.bw.Write(strconv.AppendInt(w.num[:0], int64(n), 10))
	w.bw.WriteString("\r\n")
}

// Command writes a request as an array of bulk strings.
func (w *Writer) Command(args ...[]byte) {
	w.Array(len(args))
	for _, a := range args {
		w.Bulk(a)
	}
}
