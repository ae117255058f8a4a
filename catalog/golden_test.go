package catalog

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"

	"github.com/snakepipe/snakepipe/pipeline"
)

var update = flag.Bool("update", false, "rewrite golden files (testdata/*/expected.*) and docs/catalog.md")

// loadConfig decodes a config file's catalog section the way the real
// loader does: koanf onto DefaultConfig, unknown keys are errors.
func loadConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	k := koanf.New(".")
	if err := k.Load(rawbytes.Provider(data), yaml.Parser()); err != nil {
		return cfg, err
	}
	err := k.UnmarshalWithConf("catalog", &cfg, koanf.UnmarshalConf{
		DecoderConfig: &mapstructure.DecoderConfig{
			TagName:     "koanf",
			Result:      &cfg,
			ErrorUnused: true,
		},
	})
	return cfg, err
}

// unescapeRaw turns the harness escape `\xHH` (written `\\xHH` in JSON) into
// the raw byte 0xHH, so that golden inputs can carry invalid UTF-8, which a
// JSON string cannot.
func unescapeRaw(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// decodeInput parses one input line with pipeline.ParseEventJSON and applies
// the harness conventions (testdata/README.md): `\xHH` escapes (see
// unescapeRaw) in every string; a string measurement "float:NaN" /
// "float:+Inf" / "float:-Inf" becomes that float (JSON has no NaN); a name
// "parts:a|b|c" is resolved with LookupParts(["a","b","c"]) as ingest does
// for Snakepit's event_parts (joined with "." when not found, so that Check
// reports why).
func decodeInput(c *Catalog, line []byte) (pipeline.Event, error) {
	ev, err := pipeline.ParseEventJSON(line)
	if err != nil {
		return ev, err
	}
	ev.Name = unescapeRaw(ev.Name)
	if parts, ok := strings.CutPrefix(ev.Name, "parts:"); ok {
		if name, ok := c.LookupParts(strings.Split(parts, "|")); ok {
			ev.Name = name
		} else {
			ev.Name = strings.ReplaceAll(parts, "|", ".")
		}
	}
	ev.CorrelationID = unescapeRaw(ev.CorrelationID)
	for i := range ev.Measurements {
		m := &ev.Measurements[i]
		m.Key = unescapeRaw(m.Key)
		if m.Value.Kind != pipeline.KindString {
			continue
		}
		if f, ok := strings.CutPrefix(m.Value.Str, "float:"); ok {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return ev, err
			}
			m.Value = pipeline.FloatValue(v)
			continue
		}
		m.Value.Str = unescapeRaw(m.Value.Str)
	}
	for i := range ev.Metadata {
		ev.Metadata[i].Key = unescapeRaw(ev.Metadata[i].Key)
		ev.Metadata[i].Value = unescapeRaw(ev.Metadata[i].Value)
	}
	return ev, nil
}

// runGolden runs one testdata case and returns expected.jsonl and
// expected.err contents.
func runGolden(t *testing.T, dir string) (out, errs []byte) {
	t.Helper()
	cfg := DefaultConfig()
	if data, err := os.ReadFile(filepath.Join(dir, "config.yaml")); err == nil {
		if cfg, err = loadConfig(data); err != nil {
			return nil, []byte("config: " + err.Error() + "\n")
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	c, err := New(cfg)
	if err != nil {
		return nil, []byte(err.Error() + "\n")
	}
	input, err := os.ReadFile(filepath.Join(dir, "input.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var ob, eb bytes.Buffer
	for n, line := range bytes.Split(input, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		ev, err := decodeInput(c, line)
		if err != nil {
			t.Fatalf("%s: input line %d: %v", dir, n+1, err)
		}
		fx, err := c.Check(&ev)
		if err != nil {
			var re *RejectError
			if !errors.As(err, &re) {
				t.Fatalf("line %d: error %v is not a *RejectError", n+1, err)
			}
			fmt.Fprintf(&eb, "line %d: %s: %v\n", n+1, re.Reason, err)
			continue
		}
		if fx.Any() {
			fmt.Fprintf(&ob, "# line %d fixes: %s\n", n+1, fx)
		}
		ob.Write(pipeline.AppendJSON(nil, &ev))
		ob.WriteByte('\n')
	}
	return ob.Bytes(), eb.Bytes()
}

// TestGolden runs every testdata/<case>: config.yaml (optional, a config
// file whose catalog section is used), input.jsonl (one event per line, see
// decodeInput), expected.jsonl (accepted events, each preceded by a
// "# line N fixes:" comment when repaired) and expected.err (rejected lines
// with reason and error, or the config error). `-update` rewrites both
// expected files.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || filepath.Base(dir) == "fuzz" {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			out, errs := runGolden(t, dir)
			check := func(name string, got []byte) {
				path := filepath.Join(dir, name)
				if *update {
					if len(got) == 0 {
						if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
							t.Fatal(err)
						}
						return
					}
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs (run with -update to accept)\n--- got\n%s--- want\n%s", path, got, want)
				}
			}
			check("expected.jsonl", out)
			check("expected.err", errs)
		})
	}
	if n < 10 {
		t.Fatalf("found %d golden cases, want the full set", n)
	}
}

// Guard the harness helpers themselves.
func TestHarnessDecode(t *testing.T) {
	ev, err := decodeInput(MustNew(DefaultConfig()), []byte(`{"name":"a\\xff","measurements":{"d":"float:NaN","e":"float:-Inf","s":"x\\x00y"},"metadata":{"k":"\\xc3\\x28"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Name != "a\xff" {
		t.Errorf("name %q", ev.Name)
	}
	if v := ev.Measurements[0].Value; v.Kind != pipeline.KindFloat || !math.IsNaN(v.Float) {
		t.Errorf("NaN: %+v", v)
	}
	if v := ev.Measurements[1].Value; v.Kind != pipeline.KindFloat || !math.IsInf(v.Float, -1) {
		t.Errorf("-Inf: %+v", v)
	}
	if v := ev.Measurements[2].Value; v.Str != "x\x00y" {
		t.Errorf("str: %q", v.Str)
	}
	if ev.Metadata[0].Value != "\xc3\x28" {
		t.Errorf("meta: %q", ev.Metadata[0].Value)
	}
}
