package p2p

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzFragmentFrame feeds arbitrary bytes to the frame reader and the
// request and reply decoders: they must not panic, must refuse sizes over
// the limit before allocating, and what they accept must encode back to
// something that decodes the same.
func FuzzFragmentFrame(f *testing.F) {
	seed := func(kind byte, body []byte) {
		var b []byte
		b = binary.BigEndian.AppendUint32(b, uint32(5+len(body)))
		b = append(b, kind, 0, 0, 0, 42)
		f.Add(append(b, body...))
	}
	for _, req := range []fragRequest{
		{op: opGet, keys: [][]byte{[]byte("key")}},
		{op: opHas, keys: [][]byte{[]byte("key")}},
		{op: opDelete, keys: [][]byte{[]byte("key")}},
		{op: opPut, keys: [][]byte{[]byte("key")}, values: [][]byte{[]byte("value")}},
		{op: opGetMany, keys: [][]byte{[]byte("a"), []byte("b")}},
		{op: opHasMany, keys: [][]byte{[]byte("a"), {}}},
		{op: opPutMany, keys: [][]byte{[]byte("a"), []byte("b")}, values: [][]byte{[]byte("1"), []byte("22")}},
	} {
		seed(byte(req.op), encodeRequest(req).flat())
	}
	for _, tc := range []struct {
		op  fragOp
		rep fragReply
	}{
		{opGet, fragReply{value: []byte("value")}},
		{opGet, fragReply{status: stStoreError, msg: "disk full"}},
		{opHas, fragReply{found: true}},
		{opPut, fragReply{}},
		{opGetMany, fragReply{items: []fragItem{{value: []byte("v")}, {status: stNotFound}, {status: stSkipped}}}},
		{opHasMany, fragReply{items: []fragItem{{found: true}, {status: stStoreError, msg: "x"}}}},
	} {
		seed(byte(tc.op)|replyBit, encodeReply(tc.op, tc.rep).flat())
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 1})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))

	const maxBody = 1 << 16 // keeps the fuzzer fast; the server uses maxFrameBody
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			before := r.Len()
			hdr, body, err := readFrame(r, maxBody)
			if err != nil {
				if hdr.n > maxBody {
					t.Fatalf("frame of %d bytes accepted", hdr.n)
				}
				return
			}
			if len(body) != hdr.n || before-r.Len() != frameHeaderSize+hdr.n {
				t.Fatalf("frame of %d bytes read as %d, consumed %d", hdr.n, len(body), before-r.Len())
			}
			if hdr.kind&replyBit == 0 {
				checkRequestRoundTrip(t, hdr.kind, body)
			} else {
				checkReplyRoundTrip(t, hdr.kind, body)
			}
		}
	})
}

func checkRequestRoundTrip(t *testing.T, kind byte, body []byte) {
	req, err := decodeRequest(kind, body)
	if err != nil {
		if !errors.Is(err, errMalformed) && !errors.Is(err, ErrFragmentTooLarge) && !errors.Is(err, errUnknownOp) {
			t.Fatalf("request error of no known kind: %v", err)
		}
		return
	}
	checkRequest(req)
	again, err := decodeRequest(kind, encodeRequest(req).flat())
	if err != nil || !equalRequests(req, again) {
		t.Fatalf("request %+v re-decoded as %+v, %v", req, again, err)
	}
}

func checkReplyRoundTrip(t *testing.T, kind byte, body []byte) {
	rep, err := decodeReply(kind, body)
	if err != nil {
		if !errors.Is(err, errMalformed) {
			t.Fatalf("reply error not wrapping errMalformed: %v", err)
		}
		return
	}
	if rep.msg != sanitize(rep.msg) {
		t.Fatalf("message %q not sanitized", rep.msg)
	}
	again, err := decodeReply(kind, encodeReply(fragOp(kind&^replyBit), rep).flat())
	if err != nil || !equalReplies(rep, again) {
		t.Fatalf("reply %+v re-decoded as %+v, %v", rep, again, err)
	}
}
