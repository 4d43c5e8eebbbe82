package zdb

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Suffixes of a compaction's directories beside DataDir/<ns>; '~' is not
// allowed in namespace names, so they never look like namespaces.
const (
	compactNew = "~compact"
	compactOld = "~old"
	commitFile = "COMMITTED"
)

// CompactStats is what a compaction did.
type CompactStats struct {
	Namespace   string `json:"namespace"`
	Records     int64  `json:"records"`
	BytesBefore int64  `json:"bytes_before"`
	BytesAfter  int64  `json:"bytes_after"`
}

// Compact rewrites a namespace with only the latest version of each live
// key (history and deleted keys are dropped; sequential ids are kept). The
// new files are built beside the old ones, fsynced and marked committed
// before one rename swaps them in, so a crash at any point leaves either the
// old or the new namespace whole (Open finishes or undoes the swap). Writes
// to the namespace wait while it runs.
func (db *DB) Compact(name string, progress func(done, total int64)) (CompactStats, error) {
	db.mu.Lock()
	ns := db.nss[name]
	db.mu.Unlock()
	if ns == nil {
		return CompactStats{}, ErrNoNamespace
	}
	st := CompactStats{Namespace: name}

	ns.mu.Lock()
	if err := ns.checkWritable(); err != nil {
		ns.mu.Unlock()
		return st, err
	}
	if err := ns.flushLocked(); err != nil {
		ns.mu.Unlock()
		return st, err
	}
	st.BytesBefore = ns.dataSize
	tmp := ns.dataDir + compactNew
	gen := newGeneration()
	err := ns.writeCompacted(tmp, gen, &st, progress)
	if err == nil {
		err = ns.swapCompacted(tmp)
	}
	if err != nil {
		os.RemoveAll(tmp)
		ns.mu.Unlock()
		return st, fmt.Errorf("compact %s: %w", name, err)
	}
	ns.settings.Generation = gen
	saveErr := saveSettings(ns.indexDir, ns.settings)
	os.Remove(filepath.Join(ns.indexDir, checkpointFile))
	ns.closed = true
	ns.gone.Store(true)
	ns.closeFiles()
	ns.mu.Unlock()
	if saveErr != nil {
		db.log.Warn("zdb: compact: settings not updated; the next start adopts the new files", "err", saveErr)
	}
	os.RemoveAll(ns.dataDir + compactOld)

	// reopen: the index is rebuilt from the new files
	fresh, err := db.openNamespace(name, nil)
	db.mu.Lock()
	if err != nil {
		delete(db.nss, name)
	} else {
		fresh.locked, fresh.frozen = ns.locked, ns.frozen
		db.nss[name] = fresh
	}
	db.mu.Unlock()
	if err != nil {
		return st, fmt.Errorf("compact %s: reopen: %w", name, err)
	}
	st.BytesAfter = fresh.DataSize()
	return st, nil
}

// writeCompacted writes the live records into dir as a complete set of
// data files of generation gen, and marks it committed. Under ns.mu.
func (ns *Namespace) writeCompacted(dir string, gen uint64, st *CompactStats, progress func(done, total int64)) error {
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var id uint32
	f, err := createDataFile(dir, id, gen)
	if err != nil {
		return err
	}
	size := int64(fileHeaderSize)
	var buf []byte
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		_, err := f.Write(buf)
		buf = buf[:0]
		return err
	}
	total := ns.payloadLocked()
	var done int64
	copyRecord := func(loc pos) error {
		h, key, val, err := ns.readRecordLocked(loc)
		if err != nil {
			return err
		}
		h.Prev = pos{}
		if size+h.size() > ns.db.cfg.DataSize && size > fileHeaderSize {
			if err := flush(); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return err
			}
			f.Close()
			id++
			if f, err = createDataFile(dir, id, gen); err != nil {
				return err
			}
			size = fileHeaderSize
		}
		buf = appendRecord(buf, h, key, val)
		size += h.size()
		st.Records++
		done += int64(len(val))
		if len(buf) >= wbufFlush {
			if progress != nil {
				progress(done, total)
			}
			return flush()
		}
		return nil
	}
	if ns.seq != nil {
		for i := uint64(0); i < ns.seq.next(); i++ {
			s, err := ns.seq.get(i)
			if err != nil {
				f.Close()
				return err
			}
			if s.empty() || s.flags&flagDeleted != 0 {
				continue
			}
			if err := copyRecord(s.loc); err != nil {
				f.Close()
				return err
			}
		}
	} else {
		for i := 0; i < ns.keys.n; i++ {
			e := *ns.keys.at(i)
			if e.deleted() {
				continue
			}
			if err := copyRecord(e.loc); err != nil {
				f.Close()
				return err
			}
		}
	}
	if err := flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if progress != nil {
		progress(total, total)
	}
	if err := writeFileAtomic(filepath.Join(dir, commitFile), []byte(strconv.FormatUint(gen, 10))); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// swapCompacted replaces the namespace's data directory with dir.
func (ns *Namespace) swapCompacted(dir string) error {
	old := ns.dataDir + compactOld
	os.RemoveAll(old)
	if err := os.Rename(ns.dataDir, old); err != nil {
		return err
	}
	if err := os.Rename(dir, ns.dataDir); err != nil {
		if rerr := os.Rename(old, ns.dataDir); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	if err := os.Remove(filepath.Join(ns.dataDir, commitFile)); err != nil {
		return err
	}
	return syncDir(filepath.Dir(ns.dataDir))
}

// recoverCompactions finishes or undoes compactions a crash interrupted:
// a committed new directory whose swap did not happen is swapped in, an
// uncommitted one is dropped, and a leftover old directory is removed once
// the namespace directory exists.
func recoverCompactions(dataDir string, log *slog.Logger) error {
	ents, err := os.ReadDir(dataDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name, isNew := strings.CutSuffix(e.Name(), compactNew)
		if !isNew || !e.IsDir() {
			continue
		}
		nsDir := filepath.Join(dataDir, name)
		tmp := filepath.Join(dataDir, e.Name())
		_, statErr := os.Stat(nsDir)
		_, commitErr := os.Stat(filepath.Join(tmp, commitFile))
		if os.IsNotExist(statErr) && commitErr == nil {
			log.Warn("zdb: finishing interrupted compaction", "namespace", name)
			if err := os.Rename(tmp, nsDir); err != nil {
				return err
			}
			os.Remove(filepath.Join(nsDir, commitFile))
			continue
		}
		log.Warn("zdb: dropping interrupted compaction", "namespace", name)
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
	}
	ents, err = os.ReadDir(dataDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name, isOld := strings.CutSuffix(e.Name(), compactOld)
		if !isOld || !e.IsDir() {
			continue
		}
		nsDir := filepath.Join(dataDir, name)
		old := filepath.Join(dataDir, e.Name())
		if _, err := os.Stat(nsDir); os.IsNotExist(err) {
			log.Warn("zdb: restoring namespace after interrupted compaction", "namespace", name)
			if err := os.Rename(old, nsDir); err != nil {
				return err
			}
			continue
		}
		if err := os.RemoveAll(old); err != nil {
			return err
		}
	}
	return syncDir(dataDir)
}
