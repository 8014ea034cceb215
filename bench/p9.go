package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/openvpc/openvpc/bench/netbench"
)

// P9 compares one TCP stream from an instance to a host in the customer's
// data centre over Direct Connect with the bare veth, both in this run.
const pathDX = "openvpc direct connect"

// pathDXInternet is P9's neighbour row: the instance through its Elastic
// IP to the internet, through the same edge (which serves both).
const pathDXInternet = "openvpc internet, same edge"

// dxSkip is why P9 cannot run here.
func dxSkip() string {
	switch {
	case runtime.GOOS != "linux":
		return "needs Linux"
	case os.Geteuid() != 0:
		return "needs root"
	}
	if _, err := os.Stat("/usr/lib/frr/bgpd"); err != nil {
		return "needs FRR's bgpd (apt-get install frr)"
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		return "iperf3 is not installed (apt-get install iperf3)"
	}
	return tunSkip()
}

// measureP9 runs iperf3 over the Direct Connect path, and over the veth
// too when P2 did not (the baseline must come from the same run).
func measureP9(ctx context.Context, quick bool, count int, samples map[string][]float64) error {
	if why := dxSkip(); why != "" {
		if os.Getenv("OPENVPC_E2E") == "1" {
			return fmt.Errorf("P9: %s; OPENVPC_E2E=1 requires it", why)
		}
		return nil
	}
	d := 5 * time.Second
	if quick {
		d = 2 * time.Second
	}
	paths := []string{pathDX, pathDXInternet}
	if len(samples[iperfKey(pathVeth, 1)+" "+gbps]) == 0 {
		paths = append([]string{pathVeth}, paths...)
	}
	for _, name := range paths {
		p := map[string]netbench.Path{pathDX: netbench.OpenvpcDX, pathDXInternet: netbench.OpenvpcDXInternet, pathVeth: p2Paths[pathVeth]}[name]
		fmt.Fprintf(os.Stderr, "P9 %s: iperf3 -t %d, %d run(s) of 1 stream\n", name, int(d.Seconds()), count)
		runs := make([]netbench.Run, count)
		for i := range runs {
			runs[i] = netbench.Run{Streams: 1, Duration: d}
		}
		res, err := measurePath(ctx, p, runs)
		if err != nil {
			return fmt.Errorf("P9 %s: %w", name, err)
		}
		for _, r := range res {
			fmt.Fprintf(os.Stderr, "P9 %s: %.2f Gbit/s, %d retransmits\n", name, r.Gbps(), r.Retransmits)
			k := iperfKey(name, 1) + " " + gbps
			samples[k] = append(samples[k], r.Gbps())
		}
	}
	return nil
}
