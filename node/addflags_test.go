package node

import (
	"errors"
	"strings"
	"testing"
)

func TestProfileFor(t *testing.T) {
	one, zero := 1, 0
	yes, no := true, false
	for _, tc := range []struct {
		flags ImportFlags
		want  string // "!": an error
	}{
		{ImportFlags{}, ""},
		{ImportFlags{CIDVersion: &one}, "kubo-v1-default"}, // as ipfs add --cid-version 1
		{ImportFlags{RawLeaves: &yes, CIDVersion: &one}, "kubo-v1-default"},
		{ImportFlags{Profile: "kubo-v1-default"}, "kubo-v1-default"},
		{ImportFlags{Chunker: "size-1048576"}, "!"}, // CIDv0 to Kubo
		{ImportFlags{Chunker: "size-1048576", CIDVersion: &one}, "unixfs-v1-2025"},
		{ImportFlags{RawLeaves: &yes}, "!"}, // CIDv0 to Kubo
		{ImportFlags{Chunker: "size-262144", CIDVersion: &one, RawLeaves: &yes}, "kubo-v1-default"},
		{ImportFlags{Profile: "kubo-v1-default", CIDVersion: &one}, "kubo-v1-default"},
		{ImportFlags{Profile: "unixfs-v1-2025", Chunker: "size-1048576"}, "unixfs-v1-2025"},
		{ImportFlags{Profile: "unixfs-v1-2025", Chunker: "size-262144"}, "!"},
		{ImportFlags{CIDVersion: &zero}, "!"},
		{ImportFlags{RawLeaves: &no}, "!"},
		{ImportFlags{Chunker: "rabin"}, "!"},
		{ImportFlags{Chunker: "size-4096"}, "!"},
		{ImportFlags{Chunker: "size-"}, "!"},
		{ImportFlags{Chunker: "buzhash"}, "!"},
	} {
		got, err := ProfileFor(tc.flags)
		if tc.want == "!" {
			if err == nil || !errors.Is(err, ErrBadSetting) || !strings.Contains(err.Error(), "supported: unixfs-v1-2025 (--cid-version 1 --raw-leaves=true --chunker size-1048576)") {
				t.Errorf("ProfileFor(%s) = %q, %v; want an error naming the profiles", tc.flags.given(), got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ProfileFor(%s) = %q, %v; want %q", tc.flags.given(), got, err, tc.want)
		}
	}
}
