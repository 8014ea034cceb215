package main

import (
	"context"
	"fmt"
	"math"
	"strings"
)

// The scaling table: how the host's per-packet and per-change costs grow
// as its mapping cache grows from 1k to 1M mappings.

// scaleSeries is one line of the scaling table and plot: a benchmark with
// one sub-benchmark per cache size (%s in bench).
type scaleSeries struct {
	name  string
	pkg   string
	bench string // with %s for the size: "BenchmarkX/mappings=%s/y"
}

var scaleSizes = []struct {
	label string
	n     float64
}{{"1k", 1e3}, {"100k", 1e5}, {"1M", 1e6}}

var scaleSeriesList = []scaleSeries{
	{"P1 egress, 64 B, random destination (per packet)", "./host/dataplane", "BenchmarkPipelineScaling/mappings=%s/egress"},
	{"P1 ingress, 64 B, random source (per packet)", "./host/dataplane", "BenchmarkPipelineScaling/mappings=%s/ingress"},
	{"P5 cache lookup, random mapping", "./host/tables", "BenchmarkCacheScaling/mappings=%s/lookup"},
	{"cache: apply a one-mapping delta", "./host/tables", "BenchmarkCacheScaling/mappings=%s/delta"},
	{"P4 one delta, server world to host cache", "./control/mapping", "BenchmarkDeltaScaling/mappings=%s"},
}

// scaleSizesFor leaves the 1M step out of quick mode: building a world
// and a cache of 1M mappings takes most of a minute, and the smoke run
// needs only to see that the series are measured and drawn.
func scaleSizesFor(quick bool) []string {
	var out []string
	for _, s := range scaleSizes {
		if !quick || s.n < 1e6 {
			out = append(out, s.label)
		}
	}
	return out
}

// measureScaling runs each package's scaling benchmarks in one go test.
func measureScaling(ctx context.Context, quick bool, count int, samples map[string][]float64) error {
	benchtime := "1s"
	if quick {
		benchtime = "100ms"
	}
	var pkgs []string
	byPkg := map[string][]string{}
	for _, s := range scaleSeriesList {
		if byPkg[s.pkg] == nil {
			pkgs = append(pkgs, s.pkg)
		}
		for _, size := range scaleSizesFor(quick) {
			byPkg[s.pkg] = append(byPkg[s.pkg], fmt.Sprintf(s.bench, size))
		}
	}
	for _, pkg := range pkgs {
		if err := goBench(ctx, pkg, byPkg[pkg], benchtime, count, samples); err != nil {
			return fmt.Errorf("scaling: %w", err)
		}
	}
	return nil
}

// scaleValue is the median ns/op of one series at one size, NaN if absent.
func scaleValue(samples map[string][]float64, s scaleSeries, size string) float64 {
	st, ok := summarize(samples[fmt.Sprintf(s.bench, size)+" ns/op"])
	if !ok {
		return math.NaN()
	}
	return st.median
}

func renderScaling(quick bool, samples map[string][]float64) string {
	var b strings.Builder
	fmt.Fprintln(&b, "How the host's costs grow with its cache (median; one VPC, random addresses, so lookups reach the whole cache):")
	fmt.Fprintln(&b)
	fmt.Fprint(&b, "| cost | ")
	for _, s := range scaleSizes {
		fmt.Fprintf(&b, "%s mappings | ", s.label)
	}
	fmt.Fprintln(&b, "1M ÷ 1k |")
	fmt.Fprintln(&b, "|---|"+strings.Repeat("---|", len(scaleSizes)+1))
	for _, s := range scaleSeriesList {
		fmt.Fprintf(&b, "| %s | ", s.name)
		for _, size := range scaleSizes {
			v := scaleValue(samples, s, size.label)
			if math.IsNaN(v) {
				fmt.Fprint(&b, "not run | ")
				continue
			}
			fmt.Fprintf(&b, "%s | ", duration(v))
		}
		ratio := scaleValue(samples, s, "1M") / scaleValue(samples, s, "1k")
		if math.IsNaN(ratio) {
			fmt.Fprintln(&b, "|")
		} else {
			fmt.Fprintf(&b, "%.1f× |\n", ratio)
		}
	}
	if quick {
		fmt.Fprintln(&b, "\n(quick mode leaves out 1M mappings)")
	}
	return b.String()
}

// duration formats nanoseconds with a unit a reader takes in at once.
func duration(ns float64) string {
	switch {
	case ns >= 1e6:
		return num(ns/1e6) + " ms"
	case ns >= 1e3:
		return num(ns/1e3) + " µs"
	}
	return num(ns) + " ns"
}

func plotScaling(path string, quick bool, samples map[string][]float64) error {
	var xs []float64
	var labels []string
	for _, s := range scaleSizes {
		xs, labels = append(xs, s.n), append(labels, s.label)
	}
	var lines []plotLine
	for _, s := range scaleSeriesList {
		l := plotLine{name: s.name}
		for _, size := range scaleSizes {
			l.ys = append(l.ys, scaleValue(samples, s, size.label))
		}
		lines = append(lines, l)
	}
	title := "openvpc host: cost as the mapping cache grows"
	if quick {
		title += " (quick run)"
	}
	return writePlot(path, title, "mappings in the host's cache (log)", "time per operation (log)", xs, labels, lines)
}
