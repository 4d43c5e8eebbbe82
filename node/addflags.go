package node

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fungistor/fungistor/fungi"
)

// Kubo's `ipfs add` flags, mapped onto fungi's import profiles.

// ImportFlags are Kubo's `ipfs add` flags that decide a DAG's shape; nil
// and "" mean not given.
type ImportFlags struct {
	Profile    string // --profile
	CIDVersion *int   // --cid-version
	RawLeaves  *bool  // --raw-leaves
	Chunker    string // --chunker, Kubo's syntax (size-N)
}

// ProfileFor returns the profile that flags select. Without --profile,
// Kubo's flags mean what they mean to `ipfs add`: those not given take
// Kubo's defaults (CIDv0, raw leaves only with CIDv1, chunker
// size-262144), so the CID printed is always the one Kubo prints for the
// same flags, or the flags are refused (`--cid-version 1` alone gives
// kubo-v1-default, `--chunker size-1048576` alone is CIDv0 and refused).
// With --profile, the flags given must agree with it. With no flag at all
// it returns "": the default profile (the repo's, or fungi's for
// --only-hash). Any other combination is an ErrBadSetting naming what is
// supported.
func ProfileFor(f ImportFlags) (string, error) {
	if f.Profile == "" && (f.CIDVersion != nil || f.RawLeaves != nil || f.Chunker != "") {
		k := f
		if k.CIDVersion == nil {
			v := 0
			k.CIDVersion = &v
		}
		if k.RawLeaves == nil {
			raw := *k.CIDVersion == 1
			k.RawLeaves = &raw
		}
		if k.Chunker == "" {
			k.Chunker = kuboDefaultChunker
		}
		if name, err := matchProfile(k); err != nil || name != "" {
			if err != nil {
				return "", badSetting("%s (as Kubo reads them: %s): no profile matches; supported: %s", f.given(), k.given(), supported())
			}
			return name, nil
		}
	}
	return matchProfile(f)
}

// matchProfile is the one profile that agrees with every flag given.
func matchProfile(f ImportFlags) (string, error) {
	var match []string
	for _, p := range fungi.Profiles {
		if f.Profile != "" && p.Name != f.Profile {
			continue
		}
		if f.CIDVersion != nil && *f.CIDVersion != p.CIDVersion {
			continue
		}
		if f.RawLeaves != nil && *f.RawLeaves != p.RawLeaves {
			continue
		}
		if f.Chunker != "" && chunkSize(f.Chunker) != p.ChunkSize {
			continue
		}
		match = append(match, p.Name)
	}
	switch {
	case len(match) == 0:
	case f.Profile != "":
		return f.Profile, nil
	case len(match) == len(fungi.Profiles):
		return "", nil
	case len(match) == 1:
		return match[0], nil
	default:
		return "", badSetting("%s match profiles %s: choose one with --profile", f.given(), strings.Join(match, " and "))
	}
	return "", badSetting("%s: no profile matches; supported: %s", f.given(), supported())
}

// supported lists the profiles as Kubo's flags.
func supported() string {
	var known []string
	for _, p := range fungi.Profiles {
		known = append(known, fmt.Sprintf("%s (--cid-version %d --raw-leaves=%t --chunker size-%d)", p.Name, p.CIDVersion, p.RawLeaves, p.ChunkSize))
	}
	return strings.Join(known, ", ")
}

// kuboDefaultChunker is `ipfs add`'s chunker when none is given.
const kuboDefaultChunker = "size-262144"

// chunkSize is the size of a Kubo chunker size-N, or -1 for any other.
func chunkSize(chunker string) int64 {
	n, ok := strings.CutPrefix(chunker, "size-")
	if !ok {
		return -1
	}
	size, err := strconv.ParseInt(n, 10, 64)
	if err != nil || size <= 0 {
		return -1
	}
	return size
}

// given writes the flags that were given, as a user typed them.
func (f ImportFlags) given() string {
	var out []string
	if f.Profile != "" {
		out = append(out, "--profile "+f.Profile)
	}
	if f.CIDVersion != nil {
		out = append(out, "--cid-version "+strconv.Itoa(*f.CIDVersion))
	}
	if f.RawLeaves != nil {
		out = append(out, "--raw-leaves="+strconv.FormatBool(*f.RawLeaves))
	}
	if f.Chunker != "" {
		out = append(out, "--chunker "+f.Chunker)
	}
	return strings.Join(out, " ")
}
