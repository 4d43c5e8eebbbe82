package gateway

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
)

// boxo's gateway answers a multi-range request with its first range only.
// multiRange answers it in full (RFC 9110 multipart/byteranges): each range
// is served by the gateway as a single-range request and the parts are
// joined. Parts are buffered, so the ranges of one request are capped
// (maxMultiRangeBytes); beyond it, and for anything but a plain 206
// answer, the first range's answer is what the client gets, as before.
const (
	maxMultiRanges     = 64
	maxMultiRangeBytes = 64 << 20
)

func multiRange(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spec, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes=")
		if r.Method != http.MethodGet || !ok || !strings.Contains(spec, ",") {
			next.ServeHTTP(w, r)
			return
		}
		ranges := strings.Split(spec, ",")
		if len(ranges) > maxMultiRanges {
			next.ServeHTTP(w, r)
			return
		}
		type part struct {
			header http.Header
			body   []byte
		}
		var parts []part
		total := 0
		for _, ra := range ranges {
			sub := r.Clone(r.Context())
			sub.Header.Set("Range", "bytes="+strings.TrimSpace(ra))
			rec := &bufferedResponse{header: http.Header{}, limit: maxMultiRangeBytes - total}
			next.ServeHTTP(rec, sub)
			if rec.status != http.StatusPartialContent || rec.over {
				if len(parts) == 0 && !rec.over {
					rec.replay(w)
					return
				}
				next.ServeHTTP(w, r) // first range only, as boxo does
				return
			}
			total += rec.body.Len()
			parts = append(parts, part{rec.header, rec.body.Bytes()})
		}
		if len(parts) == 1 {
			for k, v := range parts[0].header {
				w.Header()[k] = v
			}
			w.WriteHeader(http.StatusPartialContent)
			w.Write(parts[0].body)
			return
		}
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		for _, p := range parts {
			h := textproto.MIMEHeader{}
			if ct := p.header.Get("Content-Type"); ct != "" {
				h.Set("Content-Type", ct)
			}
			h.Set("Content-Range", p.header.Get("Content-Range"))
			pw, _ := mw.CreatePart(h)
			pw.Write(p.body)
		}
		mw.Close()
		for k, v := range parts[0].header {
			switch k {
			case "Content-Type", "Content-Range", "Content-Length":
			default:
				w.Header()[k] = v
			}
		}
		w.Header().Set("Content-Type", "multipart/byteranges; boundary="+mw.Boundary())
		w.Header().Set("Content-Length", fmt.Sprint(body.Len()))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body.Bytes())
	})
}

// bufferedResponse records a response up to limit body bytes.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
	limit  int
	over   bool
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if b.body.Len()+len(p) > b.limit {
		b.over = true
		return 0, fmt.Errorf("multi-range answer over %d bytes", maxMultiRangeBytes)
	}
	return b.body.Write(p)
}

// replay sends a recorded response.
func (b *bufferedResponse) replay(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(max(b.status, http.StatusOK))
	w.Write(b.body.Bytes())
}
