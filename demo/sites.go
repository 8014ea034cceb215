package demo

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"

	"github.com/openvpc/openvpc/edge/vpn"
)

// The VPN and Direct Connect scenes need a real customer gateway
// (strongSwan) and a real data-centre router (FRR), TUNs, veths and BPF:
// things the network-safety rule allows only inside namespaces openvpc
// made. So they play only as root, in a network namespace of the demo's
// own (see cmd/openvpc: the demo re-executes itself there).

// vpnPool is where scene 7's tunnels get their outside addresses.
var vpnPool = netip.MustParsePrefix("192.0.2.192/28")

// SitesMissing says why scenes 7 and 8 cannot play on this machine, ""
// when they can: root, strongSwan (charon, swanctl) and FRR (bgpd).
func SitesMissing() string {
	if runtime.GOOS != "linux" {
		return "they need Linux (network namespaces)"
	}
	if os.Geteuid() != 0 {
		return "not running as root"
	}
	var missing []string
	if _, err := os.Stat(vpn.CharonPath); err != nil {
		missing = append(missing, vpn.CharonPath)
	}
	if _, err := exec.LookPath("swanctl"); err != nil {
		missing = append(missing, "swanctl")
	}
	if _, err := os.Stat("/usr/lib/frr/bgpd"); err != nil {
		missing = append(missing, "/usr/lib/frr/bgpd")
	}
	if len(missing) > 0 {
		return fmt.Sprintf("%v not installed", missing)
	}
	return ""
}

// sitesNote is the one line a demo without scenes 7 and 8 prints.
func (c *Config) sitesNote() string {
	why := c.SitesWhy
	if why == "" {
		why = "not asked for"
	}
	return fmt.Sprintf("scenes 7 (VPN) and 8 (Direct Connect) left out: %s; to see them, run openvpc demo as root with strongswan and frr installed", why)
}
