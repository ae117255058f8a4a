package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestFmtInt(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {7, "7"}, {999, "999"}, {1000, "1,000"}, {1321852.6, "1,321,853"},
		{-123, "-123"}, {-1234, "-1,234"}, {-1234567, "-1,234,567"},
		{math.NaN(), "NaN"}, {math.Inf(1), "+Inf"},
	} {
		if got := fmtInt(tt.in); got != tt.want {
			t.Errorf("fmtInt(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The table is pasted into BENCHMARKS.md as printed: one header, one row
// per scenario with every column, empty cells as dashes, ratios after.
func TestPrintTable(t *testing.T) {
	var out bytes.Buffer
	o := options{only: "throughput,latency", duration: 10 * time.Second, rounds: 2, workers: 64, batch: 64, latencyRate: 100000}
	rows := []row{
		{scenario: "1. no stages → file sink", rate: fmtInt(1414945), hostCPU: "1.04", loadCPU: "0.12", rss: rss(19<<20, 500<<20), notes: "rounds: 2"},
		{scenario: "3. latency", rate: fmtInt(99406), hostCPU: "1.92", loadCPU: "0.74", latency: "1.86 / 7.83 / ≤ 19.72 ms"},
	}
	printTable(&out, o, rows, []string{"Wasm filter / no stages: **0.93**"}, time.Date(2026, 12, 3, 17, 40, 0, 0, time.UTC), "1.25 1.74 2.61")
	text := out.String()
	for _, want := range []string{
		"Date: 2026-12-03 17:40 UTC. Load average before/after: 1.25 1.74 2.61 / ",
		"Command: `make bench` (benchrun -only throughput,latency -duration 10s -rounds 2 -workers 64 -batch 64 -latency-rate 100000 ",
		"| 1. no stages → file sink | 1,414,945 | 1.04 | 0.12 | – | 19 MiB → 500 MiB | rounds: 2 |\n",
		"| 3. latency | 99,406 | 1.92 | 0.74 | 1.86 / 7.83 / ≤ 19.72 ms | – |  |\n",
		"\n- Wasm filter / no stages: **0.93**\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	var rowsSeen int
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "| ") && strings.Count(line, "|") != 8 {
			t.Errorf("row with a wrong number of cells: %q", line)
		}
		if strings.HasPrefix(line, "| 1.") || strings.HasPrefix(line, "| 3.") {
			rowsSeen++
		}
	}
	if rowsSeen != 2 {
		t.Errorf("%d scenario rows, want 2", rowsSeen)
	}
}
