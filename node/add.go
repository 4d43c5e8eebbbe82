package node

import (
	"context"
	"fmt"
	"os"

	"github.com/fungistor/fungistor/fungi"
)

// HashOptions configure HashPath.
type HashOptions struct {
	Profile  string // "" for fungi.DefaultProfile
	Hidden   bool   // include dotfiles in directories, as `ipfs add --hidden`
	Progress func(done int64)
}

// CheckProfile reports whether name is a known UnixFS profile ("" is the
// default).
func CheckProfile(name string) error {
	if name == "" {
		return nil
	}
	_, err := fungi.ParseProfile(name)
	return err
}

// CheckCoding reports whether s is a valid K/M coding.
func CheckCoding(s string) error {
	_, err := fungi.ParseCoding(s)
	return err
}

// HashPath computes the CID a file or directory tree gets, without storing
// anything (`fungi add --only-hash`, like `ipfs add -n`).
func HashPath(ctx context.Context, path string, o HashOptions) (string, error) {
	p := fungi.DefaultProfile
	if o.Profile != "" {
		var err error
		if p, err = fungi.ParseProfile(o.Profile); err != nil {
			return "", err
		}
	}
	if _, err := os.Lstat(path); err != nil {
		return "", fmt.Errorf("%s: %w", path, unwrapPathErr(err))
	}
	c, err := fungi.ImportPath(ctx, path, p, fungi.NewMemDAG(true), fungi.ImportOptions{Hidden: o.Hidden, Progress: o.Progress})
	if err != nil {
		return "", err
	}
	return c.String(), nil
}

// unwrapPathErr drops the *PathError wrapper so a message names the path once.
func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
