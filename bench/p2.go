package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/openvpc/openvpc/bench/netbench"
	"github.com/openvpc/openvpc/host/nic"
)

// P2 compares TCP between openvpc's TUN instances on two hosts with the
// kernel's own paths over the same wire, all measured with iperf3 between
// network namespaces in this run.

const gbps = "Gbit/s"

const (
	pathVeth  = "veth"
	pathVXLAN = "kernel VXLAN"
	pathTun   = "openvpc tun"
	pathFast  = "openvpc veth (fast path)"
)

// p2Paths are the paths measured, by the names their rows use.
var p2Paths = map[string]netbench.Path{
	pathVeth:  netbench.Veth,
	pathVXLAN: netbench.KernelVXLAN,
	pathTun:   netbench.OpenvpcTun,
	pathFast:  netbench.OpenvpcVethFast,
}

var p2Streams = []int{1, 4}

func iperfKey(path string, streams int) string {
	return fmt.Sprintf("iperf3/%s/streams=%d", path, streams)
}

// tunSkip is why the openvpc rows of P2 cannot run here when the others
// can (those need root and iperf3, which measureP2 checks for every row):
// TUN instances also need the kernel's /dev/net/tun.
func tunSkip() string {
	if runtime.GOOS == "linux" && os.Geteuid() == 0 && !nic.TUNAvailable() {
		return "needs /dev/net/tun"
	}
	return ""
}

// measureP2 runs iperf3 over each path, on a fresh pair of host namespaces
// per path, count runs per stream count, interleaved so that a slow spell
// of the machine does not land on one stream count only. Without root or
// iperf3 it records why in skips; OPENVPC_E2E=1 (CI) makes a missing
// iperf3 an error, as for the privileged tests.
func measureP2(ctx context.Context, quick bool, count int, samples map[string][]float64, skips map[string]string) error {
	why := ""
	switch {
	case runtime.GOOS != "linux":
		why = "needs Linux"
	case os.Geteuid() != 0:
		why = "needs root"
	default:
		if _, err := exec.LookPath("iperf3"); err != nil {
			if os.Getenv("OPENVPC_E2E") == "1" {
				return fmt.Errorf("P2: %w; OPENVPC_E2E=1 requires it", netbench.ErrNoIperf3)
			}
			why = "iperf3 is not installed (apt-get install iperf3)"
		}
	}
	d := 5 * time.Second
	if quick {
		d = 2 * time.Second
	}
	for _, name := range []string{pathVeth, pathVXLAN, pathTun, pathFast} {
		p := p2Paths[name]
		if name == pathTun && tunSkip() != "" {
			continue // its rows carry their own reason
		}
		if why != "" {
			for _, s := range p2Streams {
				skips[iperfKey(name, s)] = why
			}
			continue
		}
		fmt.Fprintf(os.Stderr, "P2 %s: iperf3 -t %d, %d run(s) each of %v streams\n", name, int(d.Seconds()), count, p2Streams)
		var runs []netbench.Run
		for range count {
			for _, s := range p2Streams {
				runs = append(runs, netbench.Run{Streams: s, Duration: d})
			}
		}
		res, err := measurePath(ctx, p, runs)
		if err != nil {
			return fmt.Errorf("P2 %s: %w", name, err)
		}
		for i, r := range res {
			k := iperfKey(name, runs[i].Streams) + " " + gbps
			samples[k] = append(samples[k], r.Gbps())
		}
	}
	return nil
}

// measurePath builds p on a new underlay, runs iperf3 over it and removes
// everything again, whatever happened.
func measurePath(ctx context.Context, p netbench.Path, runs []netbench.Run) (res []netbench.Result, err error) {
	u, err := netbench.NewUnderlay()
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, u.Close()) }()
	e, err := p.Setup(u)
	if err != nil {
		return nil, err
	}
	return u.Iperf3(ctx, e, runs...)
}
