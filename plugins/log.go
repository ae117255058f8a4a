package plugins

import (
	"bytes"
	"context"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero/api"

	"github.com/snakepipe/snakepipe/pipeline"
)

// Log limits (docs/plugin-abi.md §8).
const (
	logLineMax    = 1024
	logLinesPerS  = 100
	logTruncation = " …(truncated)"
)

// pluginLog is the rate-limited logger shared by every instance of one
// plugin stage: guest stdout/stderr, snakepipe_v1.log and env.abort.
type pluginLog struct {
	log     hclog.Logger
	dropped *pipeline.Counter
	now     func() time.Time

	mu          sync.Mutex
	windowStart time.Time
	lines       int
	droppedWin  uint64
}

func newPluginLog(l hclog.Logger, dropped *pipeline.Counter) *pluginLog {
	return &pluginLog{log: l, dropped: dropped, now: time.Now}
}

// emit logs one line at level (ABI levels 0..4), truncated and rate-limited.
func (p *pluginLog) emit(level int32, msg []byte) {
	now := p.now()
	p.mu.Lock()
	if now.Sub(p.windowStart) >= time.Second {
		if p.droppedWin > 0 {
			p.log.Warn("plugin log lines dropped by the rate limit", "dropped", p.droppedWin, "limit_per_s", logLinesPerS)
		}
		p.windowStart, p.lines, p.droppedWin = now, 0, 0
	}
	if p.lines >= logLinesPerS {
		p.droppedWin++
		p.mu.Unlock()
		p.dropped.Inc()
		return
	}
	p.lines++
	p.mu.Unlock()
	line := string(bytes.TrimRight(msg, "\r\n"))
	if len(line) > logLineMax {
		line = line[:logLineMax] + logTruncation
	}
	var lvl hclog.Level
	switch level {
	case 0:
		lvl = hclog.Trace
	case 1:
		lvl = hclog.Debug
	case 3:
		lvl = hclog.Warn
	case 4:
		lvl = hclog.Error
	default:
		lvl = hclog.Info
	}
	p.log.Log(lvl, line)
}

// lineWriter turns a guest's stdout/stderr stream into log lines. One per
// instance (an instance is used by one goroutine at a time).
type lineWriter struct {
	plog  *pluginLog
	level int32
	buf   []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := logLineMax + 1 - len(w.buf)
			if len(p) >= room {
				w.buf = append(w.buf, p[:room]...)
				w.plog.emit(w.level, w.buf)
				w.buf = w.buf[:0]
				p = p[room:]
				continue
			}
			w.buf = append(w.buf, p...)
			break
		}
		if len(w.buf) > 0 {
			w.buf = append(w.buf, p[:i]...)
			w.plog.emit(w.level, w.buf)
			w.buf = w.buf[:0]
		} else {
			w.plog.emit(w.level, p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

type logKey struct{}

func logFrom(ctx context.Context) *pluginLog {
	l, _ := ctx.Value(logKey{}).(*pluginLog)
	return l
}

// hostLog is snakepipe_v1.log(level, ptr, len).
func hostLog(ctx context.Context, m api.Module, stack []uint64) {
	level, ptr, n := int32(uint32(stack[0])), uint32(stack[1]), uint32(stack[2])
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		panic(errLogBounds{ptr: ptr, n: n})
	}
	if l := logFrom(ctx); l != nil {
		l.emit(level, b)
	}
}

type errLogBounds struct{ ptr, n uint32 }

func (e errLogBounds) Error() string {
	return "snakepipe_v1.log: message out of memory bounds"
}

// hostNow is snakepipe_v1.now_ns().
func hostNow(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = uint64(time.Now().UnixNano())
}

// hostAbort is env.abort(msg, file, line, col) as AssemblyScript calls it:
// msg and file point to AssemblyScript strings (UTF-16LE, byte length in the
// u32 before the pointer). It logs and traps.
func hostAbort(ctx context.Context, m api.Module, stack []uint64) {
	msg := asString(m.Memory(), uint32(stack[0]))
	file := asString(m.Memory(), uint32(stack[1]))
	if l := logFrom(ctx); l != nil {
		l.log.Error("plugin aborted", "message", msg, "file", file, "line", uint32(stack[2]), "col", uint32(stack[3]))
	}
	panic(abortError(msg))
}

type abortError string

func (e abortError) Error() string { return "plugin called abort: " + string(e) }

func asString(mem api.Memory, ptr uint32) string {
	if ptr < 4 {
		return ""
	}
	n, ok := mem.ReadUint32Le(ptr - 4)
	if !ok || n > 2*logLineMax {
		return ""
	}
	b, ok := mem.Read(ptr, n&^1)
	if !ok {
		return ""
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	return string(utf16.Decode(u))
}
