package fungi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// CodingMode says which shards of a Reed-Solomon codeword are stored.
type CodingMode uint8

const (
	// Equations is the default, the seeds' QSS: the block is encoded into
	// K data shards and N parity shards and only the N parity shards (the
	// "equations") are stored; any K of them rebuild the block and no
	// stored fragment is a piece of the (encrypted) block.
	Equations CodingMode = 0
	// Systematic stores the K data shards and N-K parity shards; reading
	// the K data shards needs no decoding.
	Systematic CodingMode = 1
)

func (m CodingMode) String() string {
	switch m {
	case Equations:
		return "equations"
	case Systematic:
		return "systematic"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// ErrInvalidCoding is wrapped by every error about a coding's parameters.
var ErrInvalidCoding = errors.New("invalid coding")

// Coding is the erasure code of a block: N fragments are stored and any K
// of them rebuild it. It is a value type (usable as a map key); its text
// form is "K/M" with M = N-K extra fragments, and a ":sys" suffix for
// the systematic mode ("16/4" is K 16, N 20, equations).
type Coding struct {
	K    int        // fragments needed to rebuild a block
	N    int        // fragments stored per block
	Mode CodingMode // Equations (default) or Systematic
}

// MaxShards bounds the shards of one Reed-Solomon codeword over GF(2^8).
// An Equations coding uses K+N shards (only N are stored), a Systematic one N.
const MaxShards = 256

// DefaultCoding is 16/4 in equations mode: 20 fragments, any 16 rebuild the
// block, 25% raw overhead, any 4 may be lost.
func DefaultCoding() Coding { return Coding{K: 16, N: 20, Mode: Equations} }

// ParseCoding parses "K/M" (K data, M extra; N = K+M) with an optional
// ":sys" (systematic) or ":eq" (equations, the default) suffix.
func ParseCoding(s string) (Coding, error) {
	c := Coding{Mode: Equations}
	body := s
	if i := strings.IndexByte(s, ':'); i >= 0 {
		body = s[:i]
		switch s[i+1:] {
		case "sys":
			c.Mode = Systematic
		case "eq":
		default:
			return Coding{}, fmt.Errorf("%w %q: unknown mode %q (want \"sys\" or \"eq\")", ErrInvalidCoding, s, s[i+1:])
		}
	}
	ks, ms, ok := strings.Cut(body, "/")
	if !ok {
		return Coding{}, fmt.Errorf("%w %q: want K/M, e.g. 16/4", ErrInvalidCoding, s)
	}
	k, err1 := parseSmall(ks)
	m, err2 := parseSmall(ms)
	if err1 != nil || err2 != nil {
		return Coding{}, fmt.Errorf("%w %q: want K/M with decimal K and M, e.g. 16/4", ErrInvalidCoding, s)
	}
	c.K, c.N = k, k+m
	if err := c.Validate(); err != nil {
		return Coding{}, err
	}
	return c, nil
}

// parseSmall accepts 1 to 4 decimal digits, nothing else (no sign, no space).
func parseSmall(s string) (int, error) {
	if len(s) == 0 || len(s) > 4 {
		return 0, strconv.ErrSyntax
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, nil
}

// String gives the form ParseCoding reads: "16/4", "10/4:sys".
func (c Coding) String() string {
	s := strconv.Itoa(c.K) + "/" + strconv.Itoa(c.N-c.K)
	if c.Mode == Systematic {
		s += ":sys"
	}
	return s
}

// MarshalText and UnmarshalText let a Coding sit in JSON or TOML config as
// its string form.
func (c Coding) MarshalText() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return []byte(c.String()), nil
}

func (c *Coding) UnmarshalText(b []byte) error {
	v, err := ParseCoding(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Validate checks 1 <= K, at least one extra fragment (N > K), and that the
// codeword fits GF(2^8): K+N <= 256 in equations mode, N <= 256 in
// systematic mode.
func (c Coding) Validate() error {
	switch {
	case c.Mode != Equations && c.Mode != Systematic:
		return fmt.Errorf("%w: unknown mode %d", ErrInvalidCoding, c.Mode)
	case c.K < 1:
		return fmt.Errorf("%w %d/%d: K must be at least 1", ErrInvalidCoding, c.K, c.N-c.K)
	case c.N <= c.K:
		return fmt.Errorf("%w %d/%d: need at least one extra fragment (M >= 1)", ErrInvalidCoding, c.K, c.N-c.K)
	case c.Mode == Equations && c.K+c.N > MaxShards:
		return fmt.Errorf("%w %s: equations mode needs K+N <= %d (K data + N stored parity shards), have %d",
			ErrInvalidCoding, c, MaxShards, c.K+c.N)
	case c.N > MaxShards:
		return fmt.Errorf("%w %s: at most %d fragments, have %d", ErrInvalidCoding, c, MaxShards, c.N)
	}
	return nil
}

// Tolerance is how many fragments of a block may be lost: N-K.
func (c Coding) Tolerance() int { return c.N - c.K }

// Overhead is the raw storage factor N/K (1.25 at 16/4), before the
// per-fragment header, tag and shard padding.
func (c Coding) Overhead() float64 { return float64(c.N) / float64(c.K) }

// rsShards is the (data, parity) shape of the Reed-Solomon code behind c.
func (c Coding) rsShards() (data, parity int) {
	if c.Mode == Equations {
		return c.K, c.N
	}
	return c.K, c.N - c.K
}
