package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// P8's keys: one TCP stream instance → on-premises through openvpc's VPN,
// and the same customer gateway with a plain strongSwan peer instead.
const (
	p8OpenVPC = "p8/openvpc"
	p8Direct  = "p8/direct"
	mbps      = "Mbit/s"
)

// measureP8 runs test/e2e's TestVPNP8 (a whole cloud with two VPN edges
// and a strongSwan site in namespaces; about 20 s) count times and reads
// its two rates. Without root or strongSwan it records why in skips.
func measureP8(ctx context.Context, count int, samples map[string][]float64, skips map[string]string) error {
	why := ""
	switch {
	case runtime.GOOS != "linux":
		why = "needs Linux"
	case os.Geteuid() != 0:
		why = "needs root"
	default:
		if _, err := os.Stat("/usr/lib/ipsec/charon"); err != nil {
			why = "needs strongSwan (strongswan-charon, libcharon-extra-plugins, strongswan-swanctl)"
		}
	}
	if why != "" {
		skips[p8OpenVPC], skips[p8Direct] = why, why
		return nil
	}
	dir, err := os.MkdirTemp("", "openvpc-p8-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for i := range count {
		out := filepath.Join(dir, fmt.Sprintf("p8-%d.json", i))
		fmt.Fprintf(os.Stderr, "P8: run %d of %d (go test ./test/e2e -run TestVPNP8)\n", i+1, count)
		cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", "^TestVPNP8$", "./test/e2e/")
		cmd.Env = append(os.Environ(), "OPENVPC_P8="+out)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("P8: %v\n%s", err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return fmt.Errorf("P8: the test wrote no rates: %w", err)
		}
		var r map[string]float64
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("P8: %w", err)
		}
		samples[p8OpenVPC+" "+mbps] = append(samples[p8OpenVPC+" "+mbps], r["openvpc"])
		samples[p8Direct+" "+mbps] = append(samples[p8Direct+" "+mbps], r["direct"])
	}
	return nil
}
