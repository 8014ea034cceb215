package main

import (
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPattern(t *testing.T) {
	got := pattern([]string{"BenchmarkPipeline/egress/64B", "BenchmarkPipeline/copy-baseline/64B"})
	if want := "^(BenchmarkPipeline)$/^(copy-baseline|egress)$/^(64B)$"; got != want {
		t.Errorf("pattern = %s, want %s", got, want)
	}
}

// TestScalingOutputs renders the scaling table and plot from made-up
// samples: every series gets a row, the PNG decodes at the expected size.
func TestScalingOutputs(t *testing.T) {
	samples := map[string][]float64{}
	for i, s := range scaleSeriesList {
		for j, size := range scaleSizes {
			samples[strings.Replace(s.bench, "%s", size.label, 1)+" ns/op"] = []float64{math.Pow(10, float64(i+j+1))}
		}
	}
	delete(samples, strings.Replace(scaleSeriesList[0].bench, "%s", "1M", 1)+" ns/op") // a gap in one line
	table := renderScaling(false, samples)
	for _, s := range scaleSeriesList {
		if !strings.Contains(table, "| "+s.name+" |") {
			t.Errorf("no row for %s:\n%s", s.name, table)
		}
	}
	path := filepath.Join(t.TempDir(), "scaling.png")
	if err := plotScaling(path, false, samples); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w != plotW {
		t.Errorf("plot is %d pixels wide, want %d", w, plotW)
	}
}

func TestFailure(t *testing.T) {
	err := errors.New("./control/mapping: exit status 1\nBenchmarkPropagation/hosts=10000\n--- FAIL: BenchmarkPropagation/hosts=10000\n    bench_test.go:77: deadline_exceeded: not running | yet\n--- FAIL: BenchmarkPropagation\nFAIL")
	if got, want := failure(err), "bench_test.go:77: deadline_exceeded: not running / yet"; got != want {
		t.Errorf("failure = %q, want %q", got, want)
	}
}
