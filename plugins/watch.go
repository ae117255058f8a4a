package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/hashicorp/go-hclog"
)

// watcher reloads stages when their .wasm file changes. It watches the
// directories (so a new file renamed into place is seen) and debounces:
// a reload starts once no event arrived for the debounce period. A file
// whose bytes did not change is not reloaded.
type watcher struct {
	fw       *fsnotify.Watcher
	debounce time.Duration
	log      hclog.Logger

	mu     sync.Mutex
	files  map[string][]*Stage // absolute path -> stages
	dirs   map[string]int      // watched dir -> number of files in it
	timers map[string]*time.Timer
	closed bool

	done chan struct{}
	wg   sync.WaitGroup
}

func newWatcher(debounce time.Duration, log hclog.Logger) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{fw: fw, debounce: debounce, log: log, files: map[string][]*Stage{}, dirs: map[string]int{},
		timers: map[string]*time.Timer{}, done: make(chan struct{})}
	w.wg.Add(1)
	go w.loop()
	return w, nil
}

func (w *watcher) add(path string, s *Stage) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	dir := filepath.Dir(abs)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dirs[dir] == 0 {
		if err := w.fw.Add(dir); err != nil {
			return err
		}
	}
	w.dirs[dir]++
	w.files[abs] = append(w.files[abs], s)
	return nil
}

func (w *watcher) remove(path string, s *Stage) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ss := w.files[abs]
	found := false
	for i := range ss {
		if ss[i] == s {
			ss = append(ss[:i], ss[i+1:]...)
			found = true
			break
		}
	}
	if !found {
		return
	}
	if len(ss) == 0 {
		delete(w.files, abs)
	} else {
		w.files[abs] = ss
	}
	dir := filepath.Dir(abs)
	w.dirs[dir]--
	if w.dirs[dir] == 0 {
		delete(w.dirs, dir)
		_ = w.fw.Remove(dir) // the directory may already be gone
	}
}

func (w *watcher) loop() {
	defer w.wg.Done()
	for {
		select {
		case <-w.done:
			return
		case ev, ok := <-w.fw.Events:
			if !ok {
				return
			}
			if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) == 0 {
				continue
			}
			w.touch(filepath.Clean(ev.Name))
		case err, ok := <-w.fw.Errors:
			if !ok {
				return
			}
			w.log.Warn("plugin file watcher error", "error", err)
		}
	}
}

// touch (re)starts the debounce timer of path if a stage uses it.
func (w *watcher) touch(path string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(w.files[path]) == 0 {
		return
	}
	if t, ok := w.timers[path]; ok {
		t.Reset(w.debounce)
		return
	}
	w.wg.Add(1)
	w.timers[path] = time.AfterFunc(w.debounce, func() {
		defer w.wg.Done()
		w.fire(path)
	})
}

func (w *watcher) fire(path string) {
	w.mu.Lock()
	delete(w.timers, path)
	if w.closed {
		w.mu.Unlock()
		return
	}
	stages := append([]*Stage(nil), w.files[path]...)
	w.mu.Unlock()
	bin, err := os.ReadFile(path)
	if err != nil {
		w.log.Warn("plugin file changed but cannot be read; the running version stays", "path", path, "error", err)
		return
	}
	sum := sha256.Sum256(bin)
	for _, s := range stages {
		if v, ok := s.Current(); ok && v.SHA256 == hexSum(sum) {
			continue
		}
		// Reload logs its own failure.
		if _, err := s.Reload(context.Background()); err == nil {
			s.log.Info("plugin reloaded after its file changed", "path", path)
		}
	}
}

func (w *watcher) close() {
	w.mu.Lock()
	w.closed = true
	for p, t := range w.timers {
		if t.Stop() {
			w.wg.Done()
		}
		delete(w.timers, p)
	}
	w.mu.Unlock()
	close(w.done)
	_ = w.fw.Close() // nothing to do about a close error at shutdown
	w.wg.Wait()
}

func hexSum(sum [32]byte) string { return hex.EncodeToString(sum[:]) }
