// Command bench runs openvpc's performance figures, each next to its
// baseline measured in the same run, and prints one markdown table, then a
// table of how the host's costs grow with its cache.
//
//	go run ./bench                          # the full tables (tens of minutes)
//	go run ./bench -quick                   # a smoke run (< 2 minutes): checks the harness, not the numbers
//	go run ./bench -out bench/results/latest.md   # also writes the tables, and the scaling plot as latest-scaling.png
//	go run ./bench -only P2,scaling         # some figures only
//
// P2 (TCP through iperf3 between network namespaces) needs root and iperf3;
// without them its rows say why they were skipped. Its openvpc rows build
// the openvpc binary (go build, so run it inside the module) and need
// /dev/net/tun.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// figure is one row of the table: what is measured, its baseline, the
// unit compared, and the goal. For Go benchmarks, bench and baseline are
// benchmark names; for iperf3 rows (P2) they are keys that measureP2
// fills in. A row with only a baseline shows a reference figure.
type figure struct {
	id, name  string
	pkg       string // "" for figures not measured by `go test`
	bench     string // benchmark name, without the -GOMAXPROCS suffix; "" for a baseline-only row
	baseline  string // "" when the figure has no baseline
	unit      string // the metric compared
	goal      string
	skip      string // why the figure is not measured yet
	quickTime string // -benchtime in quick mode; "" leaves the figure out of quick mode
	fullTime  string
	fullCount int // repetitions in full mode when fewer than -count (figures whose setup takes minutes)
}

var figures = []figure{
	{id: "P1", name: "host egress pipeline, 64 B (ns/packet)", pkg: "./host/dataplane", bench: "BenchmarkPipeline/egress/64B", baseline: "BenchmarkPipeline/copy-baseline/64B", unit: "ns/op", goal: "≤ 60 ns, 0 allocs", quickTime: "200ms", fullTime: "2s"},
	{id: "P1", name: "host egress pipeline, 1400 B", pkg: "./host/dataplane", bench: "BenchmarkPipeline/egress/1400B", baseline: "BenchmarkPipeline/copy-baseline/1400B", unit: "ns/op", goal: "≤ 60 ns", quickTime: "200ms", fullTime: "2s"},
	{id: "P1", name: "host ingress pipeline, 64 B", pkg: "./host/dataplane", bench: "BenchmarkPipeline/ingress/64B", baseline: "BenchmarkPipeline/copy-baseline/64B", unit: "ns/op", goal: "≤ 60 ns", quickTime: "200ms", fullTime: "2s"},
	{id: "P1", name: "host ingress pipeline, 1400 B", pkg: "./host/dataplane", bench: "BenchmarkPipeline/ingress/1400B", baseline: "BenchmarkPipeline/copy-baseline/1400B", unit: "ns/op", goal: "≤ 60 ns", quickTime: "200ms", fullTime: "2s"},
	{id: "P2", name: "TCP, 1 stream, openvpc tun instances (Gbit/s)", bench: iperfKey(pathTun, 1), baseline: iperfKey(pathVXLAN, 1), unit: gbps, goal: "—", skip: tunSkip()},
	{id: "P2", name: "TCP, 1 stream, openvpc veth (fast path) (Gbit/s)", bench: iperfKey(pathFast, 1), baseline: iperfKey(pathVXLAN, 1), unit: gbps, goal: "≥ 1.0× kernel VXLAN"},
	{id: "P2", name: "TCP, 1 stream, veth (Gbit/s)", baseline: iperfKey(pathVeth, 1), unit: gbps, goal: "reference"},
	{id: "P2", name: "TCP, 1 stream, kernel VXLAN over veth (Gbit/s)", baseline: iperfKey(pathVXLAN, 1), unit: gbps, goal: "reference"},
	{id: "P2", name: "TCP, 4 streams, openvpc tun instances (Gbit/s)", bench: iperfKey(pathTun, 4), baseline: iperfKey(pathVXLAN, 4), unit: gbps, goal: "—", skip: tunSkip()},
	{id: "P2", name: "TCP, 4 streams, openvpc veth (fast path) (Gbit/s)", bench: iperfKey(pathFast, 4), baseline: iperfKey(pathVXLAN, 4), unit: gbps, goal: "≥ 1.0× kernel VXLAN"},
	{id: "P2", name: "TCP, 4 streams, veth (Gbit/s)", baseline: iperfKey(pathVeth, 4), unit: gbps, goal: "reference"},
	{id: "P2", name: "TCP, 4 streams, kernel VXLAN over veth (Gbit/s)", baseline: iperfKey(pathVXLAN, 4), unit: gbps, goal: "reference"},
	{id: "P9", name: "TCP, 1 stream, instance → site host over Direct Connect (Gbit/s) ÷ veth", bench: iperfKey(pathDX, 1), baseline: iperfKey(pathVeth, 1), unit: gbps, goal: "≥ 0.5", skip: dxSkip()},
	{id: "P9", name: "TCP, 1 stream, instance → internet host through the same edge (igw + Elastic IP) (Gbit/s) ÷ veth", bench: iperfKey(pathDXInternet, 1), baseline: iperfKey(pathVeth, 1), unit: gbps, goal: "— (next to the row above)", skip: dxSkip()},
	{id: "P3", name: "TCP, 1 stream, netstack instances on two hosts (Mbit/s)", pkg: "./testcloud", bench: "BenchmarkTCPThroughput/openvpc", baseline: "BenchmarkTCPThroughput/wireguard-netstack", unit: "Mbit/s", goal: "≥ 5× wireguard-go netstack", quickTime: "1x", fullTime: "3x"},
	{id: "P4", name: "propagation p99, 100 hosts (ms)", pkg: "./control/mapping", bench: "BenchmarkPropagation/hosts=100", unit: "p99-ms", goal: "—", quickTime: "5x", fullTime: "30x"},
	{id: "P4", name: "propagation p99, 1,000 hosts (ms)", pkg: "./control/mapping", bench: "BenchmarkPropagation/hosts=1000", unit: "p99-ms", goal: "≤ 100 ms", fullTime: "30x"},
	// 10,000 in-process hosts take minutes to set up and most of the
	// machine's memory: one run of 10 samples (its p99 is their maximum).
	{id: "P4", name: "propagation p99, 10,000 hosts (ms)", pkg: "./control/mapping", bench: "BenchmarkPropagation/hosts=10000", unit: "p99-ms", goal: "≤ 1 s", fullTime: "10x", fullCount: 1},
	{id: "P5", name: "cache lookup, 1M mappings (ns)", pkg: "./host/tables", bench: "BenchmarkLookup1M/random", baseline: "BenchmarkLookup1M/floor", unit: "ns/op", goal: "≤ 25 ns", quickTime: "200ms", fullTime: "2s"},
	{id: "P5", name: "cache memory, 1M mappings (B/mapping)", pkg: "./host/tables", bench: "BenchmarkMemory1M", unit: "B/mapping", goal: "≤ 64 B", quickTime: "1x", fullTime: "2x"},
	{id: "P6", name: "edge outbound: verify + NAT, 64 B (ns/packet)", pkg: "./edge", bench: "BenchmarkEdge/outbound/64B", baseline: "BenchmarkEdge/copy-baseline/64B", unit: "ns/op", goal: "≤ 100 ns, 0 allocs", quickTime: "200ms", fullTime: "2s"},
	{id: "P6", name: "edge outbound, 1400 B", pkg: "./edge", bench: "BenchmarkEdge/outbound/1400B", baseline: "BenchmarkEdge/copy-baseline/1400B", unit: "ns/op", goal: "≤ 100 ns", quickTime: "200ms", fullTime: "2s"},
	{id: "P6", name: "edge inbound: NAT + re-encapsulation, 64 B", pkg: "./edge", bench: "BenchmarkEdge/inbound/64B", baseline: "BenchmarkEdge/copy-baseline/64B", unit: "ns/op", goal: "≤ 100 ns", quickTime: "200ms", fullTime: "2s"},
	{id: "P6", name: "edge inbound, 1400 B", pkg: "./edge", bench: "BenchmarkEdge/inbound/1400B", baseline: "BenchmarkEdge/copy-baseline/1400B", unit: "ns/op", goal: "≤ 100 ns", quickTime: "200ms", fullTime: "2s"},
	{id: "P12", name: "VPC resolver: one cached-name query from an instance (ns; 1e9 ÷ it = queries/s) ÷ dnsmasq", pkg: "./testcloud", bench: "BenchmarkResolver/openvpc", baseline: "BenchmarkResolver/dnsmasq", unit: "ns/op", goal: "≥ dnsmasq's rate at ≤ its p99", quickTime: "2000x", fullTime: "50000x"},
	{id: "P11", name: "conntrack lookup at 1M flows ÷ one random memory read (ns)", pkg: "./host/dataplane", bench: "BenchmarkConntrack1M/lookup-random", baseline: "BenchmarkConntrack1M/floor", unit: "ns/op", goal: "≤ 2×; ≤ 64 B/flow", quickTime: "200000x", fullTime: "3000000x"},
	{id: "P11", name: "egress + ingress, 2 groups of 50 rules, conntrack hit ÷ without groups", pkg: "./host/dataplane", bench: "BenchmarkFirewall/2x50-rules-conntrack-hit", baseline: "BenchmarkFirewall/without-groups", unit: "ns/op", goal: "≤ 1.2× (≤ 20 ns added), 0 allocs", quickTime: "200ms", fullTime: "2s"},
	{id: "P10", name: "64 MiB GET from an instance: through a gateway endpoint ÷ through igw + Elastic IP, same store (MiB/s)", pkg: "./testcloud", bench: "BenchmarkEndpointGET/64MiB-endpoint", baseline: "BenchmarkEndpointGET/64MiB-internet", unit: "MiB/s", goal: "≥ 1.0", quickTime: "1x", fullTime: "5x"},
	{id: "P10", name: "1 KiB GETs through a gateway endpoint, one connection (req/s)", pkg: "./testcloud", bench: "BenchmarkEndpointGET/small-endpoint", unit: "req/s", goal: "—", quickTime: "20x", fullTime: "2000x"},
	{id: "P8", name: "TCP, 1 stream, instance → on-premises through openvpc's VPN ÷ the same site with a plain strongSwan peer (Mbit/s)", bench: p8OpenVPC, baseline: p8Direct, unit: mbps, goal: "≥ 0.9"},
	{id: "P7", name: "instance run, 1 client (/s)", pkg: "./control/store", bench: "BenchmarkRunInstance/clients=1", unit: "instances/s", goal: "—", quickTime: "100x", fullTime: "2000x"},
	{id: "P7", name: "instance run, 32 clients (/s)", pkg: "./control/store", bench: "BenchmarkRunInstance/clients=32", unit: "instances/s", goal: "≥ 2,000/s", quickTime: "200x", fullTime: "2000x"},
}

func main() {
	quick := flag.Bool("quick", false, "a smoke run: few, short repetitions; checks the harness works, not the numbers")
	count := flag.Int("count", 5, "repetitions of each figure (full mode)")
	out := flag.String("out", "", "also write the tables to this file, and the scaling plot next to it (NAME-scaling.png)")
	only := flag.String("only", "", "measure only these figures, comma-separated ids: P1,P2,…,P12,scaling")
	flag.Parse()
	if *only != "" {
		selected = map[string]bool{}
		for _, id := range strings.Split(*only, ",") {
			selected[strings.TrimSpace(id)] = true
		}
	}
	if *quick {
		*count = 1
	}
	// Ctrl-C or SIGTERM stops the benchmark running, and the P2 setup
	// removes its namespaces, before the harness exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	err := runAll(ctx, *quick, *count, *out)
	fmt.Fprintf(os.Stderr, "bench: done in %s\n", time.Since(start).Round(time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// selected holds the figure ids -only names; nil selects every figure.
var selected map[string]bool

func isSelected(id string) bool { return selected == nil || selected[id] }

func runAll(ctx context.Context, quick bool, count int, out string) error {
	samples := map[string][]float64{} // "benchmark unit" → values
	skips := map[string]string{}      // benchmark or baseline key → why it was not measured
	failed := map[string]string{}     // benchmark → why it failed
	for _, f := range toRun(quick) {
		n := count
		if f.fullCount > 0 && !quick {
			n = min(n, f.fullCount)
		}
		benchtime := f.fullTime
		if quick {
			benchtime = f.quickTime
		}
		names := []string{f.bench}
		if f.baseline != "" {
			names = append(names, f.baseline)
		}
		fmt.Fprintf(os.Stderr, "%s %s\n", f.id, f.name)
		if err := goBench(ctx, f.pkg, names, benchtime, n, samples); err != nil {
			if ctx.Err() != nil {
				return err
			}
			// One failing figure must not cost the other figures of a long
			// run: its row says why, and the run fails at the end.
			fmt.Fprintf(os.Stderr, "bench: %s %s failed: %v\n", f.id, f.name, err)
			failed[f.bench] = failure(err)
		}
	}
	if isSelected("P2") {
		if err := measureP2(ctx, quick, count, samples, skips); err != nil {
			return err
		}
	}
	if isSelected("P8") {
		if quick {
			skips[p8OpenVPC], skips[p8Direct] = "not in quick mode (a cloud with a strongSwan site: about 20 s a run)", "not in quick mode"
		} else if err := measureP8(ctx, count, samples, skips); err != nil {
			return err
		}
	}
	if isSelected("P9") {
		if err := measureP9(ctx, quick, count, samples); err != nil {
			return err
		}
	}
	tables := render(quick, count, samples, skips, failed)
	if isSelected("scaling") {
		if err := measureScaling(ctx, quick, count, samples); err != nil {
			return err
		}
		tables += "\n" + renderScaling(quick, samples)
	}
	fmt.Print(tables)
	var errFailed error
	if len(failed) > 0 {
		errFailed = fmt.Errorf("%d figure(s) failed; their rows say why", len(failed))
	}
	if out == "" {
		return errFailed
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("write the tables: %w", err)
	}
	if err := os.WriteFile(out, []byte(tables), 0o644); err != nil {
		return fmt.Errorf("write the tables: %w", err)
	}
	fmt.Fprintln(os.Stderr, "bench: wrote", out)
	if isSelected("scaling") {
		png := strings.TrimSuffix(out, filepath.Ext(out)) + "-scaling.png"
		if err := plotScaling(png, quick, samples); err != nil {
			return fmt.Errorf("draw the scaling plot: %w", err)
		}
		fmt.Fprintln(os.Stderr, "bench: wrote", png)
	}
	return errFailed
}

// failure is the gist of a failed benchmark for its table row: the
// benchmark's own message (the line after "--- FAIL"), on one line.
func failure(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "--- FAIL") && i+1 < len(lines) {
			if msg := strings.TrimSpace(lines[i+1]); msg != "" && !strings.HasPrefix(msg, "--- FAIL") {
				return strings.ReplaceAll(msg, "|", "/")
			}
		}
	}
	return strings.ReplaceAll(lines[0], "|", "/")
}

// toRun lists the figures measured by `go test` in this mode.
func toRun(quick bool) []figure {
	var out []figure
	for _, f := range figures {
		if f.skip == "" && f.pkg != "" && (!quick || f.quickTime != "") && isSelected(f.id) {
			out = append(out, f)
		}
	}
	return out
}

var line = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)

// goBench runs benchmarks of one package in one `go test` (the test
// binary is cached after its first build) and records every sample as
// samples["name unit"].
func goBench(ctx context.Context, pkg string, names []string, benchtime string, count int, samples map[string][]float64) error {
	args := []string{"test", "-run", "^$", "-bench", pattern(names), "-benchmem", "-count", strconv.Itoa(count), "-benchtime", benchtime, "-timeout", "60m", pkg}
	fmt.Fprintf(os.Stderr, "  go %s\n", strings.Join(args, " "))
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	// go test runs the test binary as its own child: on Ctrl-C stop both,
	// as the process group they share.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: %v\n%s", pkg, err, stdout.String())
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

func render(quick bool, count int, samples map[string][]float64, skips, failed map[string]string) string {
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
		if !isSelected(f.id) {
			continue
		}
		base := ""
		if bs, ok := summarize(samples[f.baseline+" "+f.unit]); ok {
			base = bs.String()
		} else if why := skips[f.baseline]; why != "" && f.bench == "" {
			base = "skipped: " + why
		}
		var got string
		switch s, ok := summarize(samples[f.bench+" "+f.unit]); {
		case f.skip != "":
			got = "skipped: " + f.skip
		case f.bench == "":
			got = "(reference)"
		case skips[f.bench] != "":
			got = "skipped: " + skips[f.bench]
		case failed[f.bench] != "":
			got = "failed: " + failed[f.bench]
		case !ok:
			got = "not run in this mode"
		default:
			got = s.String()
			if bs, ok := summarize(samples[f.baseline+" "+f.unit]); ok && bs.median > 0 {
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %.2f | %s |\n", f.id, f.name, got, base, s.median/bs.median, f.goal)
				continue
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | | %s |\n", f.id, f.name, got, base, f.goal)
	}
	return b.String()
}
