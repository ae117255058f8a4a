// Package stagetest runs golden-file tests for stages.
//
// Each case is a directory testdata/<case>/ holding:
//
//	config.yaml     the stage's config (the body of its entry under `stages:`)
//	input.jsonl     events in the JSON line format, one batch
//	expected.jsonl  the events the stage returns, in that format
//	expected.err    instead of expected.jsonl: the error text expected from
//	                config validation, stage creation or Process
//
// Run the tests with -update to rewrite expected.jsonl / expected.err from
// what the stage does now (review the diff before committing).
package stagetest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"

	"github.com/hashicorp/go-hclog"

	"github.com/snakepipe/snakepipe/internal/componenttest"
	"github.com/snakepipe/snakepipe/pipeline"
)

var update = flag.Bool("update", false, "rewrite golden expected.jsonl / expected.err files")

// RunGolden runs every case directory under dir (usually "testdata") that
// holds an input.jsonl, as a subtest named after the directory.
func RunGolden(t *testing.T, f pipeline.StageFactory, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read golden dir: %v", err)
	}
	ran := 0
	for _, ent := range entries {
		caseDir := filepath.Join(dir, ent.Name())
		if !ent.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(caseDir, "input.jsonl")); err != nil {
			continue
		}
		ran++
		t.Run(ent.Name(), func(t *testing.T) { runCase(t, f, caseDir) })
	}
	if ran == 0 {
		t.Fatalf("no golden cases under %s", dir)
	}
}

func runCase(t *testing.T, f pipeline.StageFactory, dir string) {
	got, gotErr := Apply(f, dir)
	errFile := filepath.Join(dir, "expected.err")
	outFile := filepath.Join(dir, "expected.jsonl")
	if *update {
		if gotErr != nil {
			write(t, errFile, []byte(gotErr.Error()+"\n"))
			_ = os.Remove(outFile)
		} else {
			write(t, outFile, got)
			_ = os.Remove(errFile)
		}
		return
	}
	if want, err := os.ReadFile(errFile); err == nil {
		if gotErr == nil {
			t.Fatalf("expected error %q, got output:\n%s", bytes.TrimSpace(want), got)
		}
		if g, w := gotErr.Error(), string(bytes.TrimSpace(want)); g != w {
			t.Fatalf("error mismatch\n got: %s\nwant: %s", g, w)
		}
		return
	}
	if gotErr != nil {
		t.Fatalf("unexpected error: %v", gotErr)
	}
	want, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatalf("read expected output (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output mismatch (run with -update to accept)\n--- got\n%s--- want\n%s", got, want)
	}
}

// Apply builds the stage described by dir/config.yaml, runs dir/input.jsonl
// through it as one batch and returns the result as JSON lines, or the
// first error (decode, validate, create, process).
func Apply(f pipeline.StageFactory, dir string) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		return nil, err
	}
	body, err := yaml.Parser().Unmarshal(raw)
	if err != nil {
		return nil, err
	}
	cfg := f.CreateDefaultConfig()
	if err := componenttest.DecodeMap(body, cfg); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	in, err := os.Open(filepath.Join(dir, "input.jsonl"))
	if err != nil {
		return nil, err
	}
	events, err := pipeline.ReadEventsJSON(in)
	_ = in.Close()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	set := pipeline.Settings{
		ID:       pipeline.ComponentID{Type: f.Type(), Name: "golden"},
		Pipeline: "golden",
		Logger:   hclog.NewNullLogger(),
		Metrics:  pipeline.NewMetrics(),
	}
	st, err := f.CreateStage(ctx, set, cfg)
	if err != nil {
		return nil, err
	}
	if err := st.Start(ctx); err != nil {
		return nil, err
	}
	b := &pipeline.Batch{Events: events}
	out, perr := st.Process(ctx, b)
	serr := st.Shutdown(ctx)
	if err := errors.Join(perr, serr); err != nil {
		return nil, err
	}
	var buf []byte
	for i := range out.Events {
		buf = pipeline.AppendJSON(buf, &out.Events[i])
		buf = append(buf, '\n')
	}
	return buf, nil
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("update %s: %v", path, err)
	}
}
