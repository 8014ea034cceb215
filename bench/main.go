// Command bench runs openvpc's performance figures, each next to its
// baseline measured in the same run, and prints one markdown table.
//
//	go run ./bench            # the full table (several minutes)
//	go run ./bench -quick     # a smoke run (< 2 minutes): checks the harness, not the numbers
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// figure is one row of the table: a benchmark, its baseline, the unit
// compared, and the goal.
type figure struct {
	id, name  string
	pkg       string
	bench     string // benchmark name, without the -GOMAXPROCS suffix
	baseline  string // "" when the figure has no baseline
	unit      string // the metric compared
	goal      string
	skip      string // why the figure is not measured yet
	quickTime string // -benchtime in quick mode
	fullTime  string
}

var figures = []figure{
	{id: "P1", name: "host egress pipeline, 64 B (ns/packet)", pkg: "./host/dataplane", bench: "BenchmarkPipeline/egress/64B", baseline: "BenchmarkPipeline/copy-baseline/64B", unit: "ns/op", goal: "≤ 60 ns, 0 allocs", quickTime: "200ms", fullTime: "2s"},
	{id: "P1", name: "host egress pipeline, 1400 B", pkg: "./host/dataplane", bench: "BenchmarkPipeline/egress/1400B", baseline: "BenchmarkPipeline/copy-baseline/1400B", unit: "ns/op", goal: "≤ 60 ns", quickTime: "200ms", fullTime: "2s"},
	{id: "P1", name: "host ingress pipeline, 64 B", pkg: "./host/dataplane", bench: "BenchmarkPipeline/ingress/64B", baseline: "BenchmarkPipeline/copy-baseline/64B", unit: "ns/op", goal: "≤ 60 ns", quickTime: "200ms", fullTime: "2s"},
	{id: "P1", name: "host ingress pipeline, 1400 B", pkg: "./host/dataplane", bench: "BenchmarkPipeline/ingress/1400B", baseline: "BenchmarkPipeline/copy-baseline/1400B", unit: "ns/op", goal: "≤ 60 ns", quickTime: "200ms", fullTime: "2s"},
	{id: "P2", name: "TCP between tun instances (iperf3) vs kernel VXLAN", skip: "tun instances are not built yet (issue 5)"},
	{id: "P3", name: "TCP, 1 stream, netstack instances on two hosts (Mbit/s)", pkg: "./testcloud", bench: "BenchmarkTCPThroughput/openvpc", baseline: "BenchmarkTCPThroughput/wireguard-netstack", unit: "Mbit/s", goal: "≥ 5× wireguard-go netstack", quickTime: "1x", fullTime: "3x"},
	{id: "P4", name: "propagation p99, 100 hosts (ms)", pkg: "./control/mapping", bench: "BenchmarkPropagation/hosts=100", unit: "p99-ms", goal: "—", quickTime: "5x", fullTime: "30x"},
	{id: "P4", name: "propagation p99, 1,000 hosts (ms)", pkg: "./control/mapping", bench: "BenchmarkPropagation/hosts=1000", unit: "p99-ms", goal: "≤ 100 ms", fullTime: "30x"},
	{id: "P5", name: "cache lookup, 1M mappings (ns)", pkg: "./host/tables", bench: "BenchmarkLookup1M/random", baseline: "BenchmarkLookup1M/floor", unit: "ns/op", goal: "≤ 25 ns", quickTime: "200ms", fullTime: "2s"},
	{id: "P5", name: "cache memory, 1M mappings (B/mapping)", pkg: "./host/tables", bench: "BenchmarkMemory1M", unit: "B/mapping", goal: "≤ 64 B", quickTime: "1x", fullTime: "2x"},
	{id: "P6", name: "edge NAT + re-encapsulation", skip: "Blackfoot is not built yet (issue 6)"},
	{id: "P7", name: "instance run, 1 client (/s)", pkg: "./control/store", bench: "BenchmarkRunInstance/clients=1", unit: "instances/s", goal: "—", quickTime: "100x", fullTime: "2000x"},
	{id: "P7", name: "instance run, 32 clients (/s)", pkg: "./control/store", bench: "BenchmarkRunInstance/clients=32", unit: "instances/s", goal: "≥ 2,000/s", quickTime: "200x", fullTime: "2000x"},
}

func main() {
	quick := flag.Bool("quick", false, "a smoke run: few, short repetitions; checks the harness works, not the numbers")
	count := flag.Int("count", 5, "repetitions of each figure (full mode)")
	out := flag.String("out", "", "also write the table to this file")
	flag.Parse()
	if *quick {
		*count = 1
	}
	samples := map[string][]float64{} // "benchmark unit" → values
	for _, f := range toRun(*quick) {
		if err := run(f, *quick, *count, samples); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	table := render(*quick, *count, samples)
	fmt.Print(table)
	if *out != "" {
		err := os.MkdirAll(filepath.Dir(*out), 0o755)
		if err == nil {
			err = os.WriteFile(*out, []byte(table), 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: write the table:", err)
			os.Exit(1)
		}
	}
}

// toRun lists the figures measured in this mode.
func toRun(quick bool) []figure {
	var out []figure
	for _, f := range figures {
		if f.skip == "" && (!quick || f.quickTime != "") {
			out = append(out, f)
		}
	}
	return out
}

var line = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)

// run measures one figure and its baseline in one `go test` (the test
// binary is cached after its first build) and records every sample.
func run(f figure, quick bool, count int, samples map[string][]float64) error {
	benchtime := f.fullTime
	if quick {
		benchtime = f.quickTime
	}
	names := []string{f.bench}
	if f.baseline != "" {
		names = append(names, f.baseline)
	}
	args := []string{"test", "-run", "^$", "-bench", pattern(names), "-benchmem", "-count", strconv.Itoa(count), "-benchtime", benchtime, "-timeout", "60m", f.pkg}
	fmt.Fprintf(os.Stderr, "%s %s: go %s\n", f.id, f.name, strings.Join(args, " "))
	var stdout bytes.Buffer
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", f.pkg, err, stdout.String())
	}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		fields := strings.Fields(m[3])
		for i := 0; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				samples[m[1]+" "+fields[i+1]] = append(samples[m[1]+" "+fields[i+1]], v)
			}
		}
	}
	return nil
}

// pattern builds go test's -bench expression, one alternation per level of
// the benchmark names (go test matches each '/'-separated level apart).
func pattern(names []string) string {
	var levels [][]string
	for _, n := range names {
		for i, part := range strings.Split(n, "/") {
			if i == len(levels) {
				levels = append(levels, nil)
			}
			levels[i] = append(levels[i], regexp.QuoteMeta(part))
		}
	}
	parts := make([]string, len(levels))
	for i, l := range levels {
		slices.Sort(l)
		parts[i] = "^(" + strings.Join(slices.Compact(l), "|") + ")$"
	}
	return strings.Join(parts, "/")
}

// stat is the median and the spread of samples.
type stat struct {
	median, lo, hi float64
	n              int
}

func summarize(v []float64) (stat, bool) {
	if len(v) == 0 {
		return stat{}, false
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return stat{median: v[len(v)/2], lo: v[0], hi: v[len(v)-1], n: len(v)}, true
}

func (s stat) String() string {
	if s.n == 1 || s.lo == s.hi {
		return num(s.median)
	}
	return fmt.Sprintf("%s (%s–%s)", num(s.median), num(s.lo), num(s.hi))
}

func num(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func render(quick bool, count int, samples map[string][]float64) string {
	var b strings.Builder
	mode := fmt.Sprintf("full: median of %d runs (min–max)", count)
	if quick {
		mode = "quick smoke run: one short run each — not numbers to quote"
	}
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "openvpc benchmarks — %s, %s, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), host, mode)
	fmt.Fprintln(&b, "| figure | what | openvpc | baseline | openvpc ÷ baseline | goal |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|")
	for _, f := range figures {
		if f.skip != "" {
			fmt.Fprintf(&b, "| %s | %s | skipped: %s | | | |\n", f.id, f.name, f.skip)
			continue
		}
		got, ok := summarize(samples[f.bench+" "+f.unit])
		if !ok {
			fmt.Fprintf(&b, "| %s | %s | not run in this mode | | | %s |\n", f.id, f.name, f.goal)
			continue
		}
		base, ratio := "", ""
		if bs, ok := summarize(samples[f.baseline+" "+f.unit]); ok && bs.median > 0 {
			base = bs.String()
			ratio = fmt.Sprintf("%.2f", got.median/bs.median)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", f.id, f.name, got, base, ratio, f.goal)
	}
	return b.String()
}
