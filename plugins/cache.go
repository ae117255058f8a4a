package plugins

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// staleTempAge: a cache temp file older than this is left over from an
// interrupted write (wazero writes a temp file, then renames it).
const staleTempAge = time.Hour

// cacheSubdir is the directory wazero's file cache uses inside cache_dir
// for this binary: "wazero-<version>-<arch>-<os>" (see
// wazero.NewCompilationCacheWithDir). Entries in other such directories
// were written by another wazero version or platform and are never read
// by this binary.
func cacheSubdir() string {
	v := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if strings.Contains(d.Path, "github.com/tetratelabs/wazero") {
				v = d.Version
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	return "wazero-" + v + "-" + runtime.GOARCH + "-" + runtime.GOOS
}

// pruneStats says what pruneCache removed.
type pruneStats struct {
	staleDirs, files int
	bytes            int64
}

// pruneCache keeps the compilation cache at dir bounded:
//   - directories of other wazero versions or platforms are removed;
//   - leftover temp files of interrupted writes are removed;
//   - if the current entries total more than maxBytes, the least recently
//     used ones (by access time, or modification time where later; a cache
//     hit reads the file) are removed until they total at most 3/4 of
//     maxBytes, so pruning does not run again at the next compile.
//
// Removing an entry is always safe: it only means a later start compiles
// that module again. Errors are joined; pruning goes on past them.
func pruneCache(dir string, maxBytes int64, now time.Time) (pruneStats, error) {
	var (
		st   pruneStats
		errs []error
	)
	cur := cacheSubdir()
	top, err := os.ReadDir(dir)
	if err != nil {
		return st, err
	}
	for _, e := range top {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "wazero-") || e.Name() == cur {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		st.staleDirs++
	}
	type entry struct {
		path string
		size int64
		used time.Time
	}
	var (
		entries []entry
		total   int64
	)
	sub := filepath.Join(dir, cur)
	files, err := os.ReadDir(sub)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, f := range files {
		if !f.Type().IsRegular() {
			continue
		}
		fi, err := f.Info()
		if err != nil {
			continue // removed meanwhile
		}
		p := filepath.Join(sub, f.Name())
		if strings.HasSuffix(f.Name(), ".tmp") {
			if now.Sub(fi.ModTime()) > staleTempAge {
				if err := os.Remove(p); err == nil {
					st.files++
					st.bytes += fi.Size()
				}
			}
			continue
		}
		used := fi.ModTime()
		if at := accessTime(fi); at.After(used) {
			used = at
		}
		entries = append(entries, entry{p, fi.Size(), used})
		total += fi.Size()
	}
	if total <= maxBytes {
		return st, errors.Join(errs...)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].used.Before(entries[j].used) })
	for _, e := range entries {
		if total <= maxBytes*3/4 {
			break
		}
		if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		total -= e.size
		st.files++
		st.bytes += e.size
	}
	return st, errors.Join(errs...)
}

// clearCacheEntries removes every entry of this binary's cache directory.
// It is the remedy for an entry wazero cannot read (a truncated or
// corrupted file makes CompileModule fail instead of compiling again, and
// the file names do not say which module an entry belongs to).
func clearCacheEntries(dir string) error {
	sub := filepath.Join(dir, cacheSubdir())
	files, err := os.ReadDir(sub)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range files {
		if f.Type().IsRegular() {
			if err := os.Remove(filepath.Join(sub, f.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// isCacheReadError reports whether a CompileModule error comes from
// reading a cache entry (wazero prefixes those "compilationcache:").
func isCacheReadError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "compilationcache:")
}
