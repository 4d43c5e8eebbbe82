package zdb

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Problem is a damaged stretch of a data file.
type Problem struct {
	File     string `json:"file"`
	Offset   int64  `json:"offset"`
	Bytes    int64  `json:"bytes"`
	Kind     string `json:"kind"` // "torn tail", "corrupt record", "bad header", "missing file"
	Repaired bool   `json:"repaired"`
}

// NSReport is what Check found in one namespace.
type NSReport struct {
	Name     string    `json:"name"`
	Files    int       `json:"files"`
	Records  int64     `json:"records"`
	Bytes    int64     `json:"bytes"`
	Problems []Problem `json:"problems"`
}

// CheckReport is the result of Check.
type CheckReport struct {
	Namespaces []NSReport `json:"namespaces"`
}

// OK reports whether no unrepaired problem was found.
func (r CheckReport) OK() bool {
	for _, ns := range r.Namespaces {
		for _, p := range ns.Problems {
			if !p.Repaired {
				return false
			}
		}
	}
	return true
}

// Check verifies every record of every namespace (both checksums) without
// opening the DB, so it sees torn tails before recovery would cut them. With
// repair, a torn tail of a namespace's last data file is cut off; corruption
// elsewhere can only be reported (compaction drops what is unreachable).
// The data directory must not be in use. progress, if not nil, is called
// with bytes checked so far.
func Check(cfg Config, repair bool, progress func(done int64)) (CheckReport, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return CheckReport{}, err
	}
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		return CheckReport{}, err
	}
	defer lock.Close()
	ents, err := os.ReadDir(cfg.DataDir)
	if err != nil {
		return CheckReport{}, err
	}
	var rep CheckReport
	var done int64
	for _, e := range ents {
		if !e.IsDir() || !ValidName(e.Name()) {
			continue
		}
		nr, err := checkNamespace(filepath.Join(cfg.DataDir, e.Name()), e.Name(), repair, &done, progress)
		if err != nil {
			return rep, err
		}
		rep.Namespaces = append(rep.Namespaces, nr)
	}
	sort.Slice(rep.Namespaces, func(i, j int) bool { return rep.Namespaces[i].Name < rep.Namespaces[j].Name })
	return rep, nil
}

func checkNamespace(dir, name string, repair bool, done *int64, progress func(int64)) (NSReport, error) {
	nr := NSReport{Name: name}
	ids, err := sortedIDs(dir)
	if err != nil {
		return nr, err
	}
	nr.Files = len(ids)
	for i, id := range ids {
		if i > 0 && id != ids[i-1]+1 {
			nr.Problems = append(nr.Problems, Problem{File: dataFileName(ids[i-1] + 1), Kind: "missing file"})
		}
		path := filepath.Join(dir, dataFileName(id))
		last := i == len(ids)-1
		mode := os.O_RDONLY
		if repair && last {
			mode = os.O_RDWR
		}
		f, err := os.OpenFile(path, mode, 0)
		if err != nil {
			return nr, err
		}
		problems, recs, size, err := checkFile(f, done, progress)
		nr.Records += recs
		nr.Bytes += size
		for _, p := range problems {
			p.File = dataFileName(id)
			if p.Kind == "torn tail" && !last {
				p.Kind = "corrupt record" // older files were synced whole
			}
			if err == nil && repair && p.Kind == "torn tail" {
				if err = f.Truncate(p.Offset); err == nil {
					if err = f.Sync(); err == nil {
						p.Repaired = true
					}
				}
			}
			nr.Problems = append(nr.Problems, p)
		}
		f.Close()
		if err != nil {
			return nr, fmt.Errorf("%s: %w", path, err)
		}
	}
	return nr, nil
}

// checkFile walks every record and returns the problems found, the number
// of good records and the file size.
func checkFile(f *os.File, done *int64, progress func(int64)) ([]Problem, int64, int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, 0, err
	}
	size := fi.Size()
	hb := make([]byte, fileHeaderSize)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return []Problem{{Offset: 0, Bytes: size, Kind: "bad header"}}, 0, size, nil
	}
	if _, err := decodeFileHeader(hb); err != nil {
		return []Problem{{Offset: 0, Bytes: size, Kind: "bad header"}}, 0, size, nil
	}
	var recs int64
	last := *done
	problems, err := walkFile(f, fileHeaderSize, size, func(recHeader, []byte, int64) error {
		recs++
		return nil
	}, func(n int64) {
		*done += n
		if progress != nil && *done-last > 64<<20 {
			last = *done
			progress(*done)
		}
	})
	return problems, recs, size, err
}
