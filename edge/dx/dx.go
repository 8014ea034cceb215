// Package dx is Blackfoot's Direct Connect function: a dedicated port on
// the edge carries 802.1Q-tagged frames from the customer's router; each
// private virtual interface (one VLAN) is its own untagged link inside the
// edge — a network namespace of its own, joined to the port by
// edge/dx/vlan — where its eBGP session (edge/bgp, a child process in that
// namespace) announces the VPCs' CIDRs and learns the site's prefixes.
//
// The lifecycle: Run attaches the port and owns every VIF's namespace and
// speaker until ctx ends, then removes them all; Set says which VIFs the
// port carries now (from the control plane), and Run makes it so.
package dx

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"slices"
	"time"

	"github.com/openvpc/openvpc/edge/bgp"
)

// VIF is one private virtual interface as the edge serves it.
type VIF struct {
	// ID is the dxvif-… id.
	ID string
	// VLAN is its 802.1Q VLAN id on the port.
	VLAN uint16
	// LocalASN is the Amazon side's, PeerASN the customer router's.
	LocalASN, PeerASN uint32
	// Local and Peer are the BGP peer addresses with their /30.
	Local, Peer netip.Prefix
	// AuthKey is the session's MD5 key.
	AuthKey string
	// Hold is the BGP hold time (default 90 s).
	Hold time.Duration
	// Announce are the CIDRs of the VPCs behind the VIF's gateway.
	Announce []netip.Prefix
}

// sameSession reports whether a and b need the same BGP session: a change
// of anything but the announcements restarts it.
func sameSession(a, b VIF) bool {
	return a.ID == b.ID && a.VLAN == b.VLAN && a.LocalASN == b.LocalASN && a.PeerASN == b.PeerASN &&
		a.Local == b.Local && a.Peer == b.Peer && a.AuthKey == b.AuthKey && a.Hold == b.Hold
}

// Validate says what is wrong with a VIF.
func (v VIF) Validate() error {
	if v.VLAN < 1 || v.VLAN > 4094 {
		return fmt.Errorf("dx: %s: VLAN %d: use 1–4094", v.ID, v.VLAN)
	}
	if v.Local.Masked() != v.Peer.Masked() || v.Local.Addr() == v.Peer.Addr() || !v.Local.Addr().Is4() {
		return fmt.Errorf("dx: %s: peer addresses %v and %v must be two IPv4 addresses of one network", v.ID, v.Local, v.Peer)
	}
	return v.session().Validate()
}

func (v VIF) session() bgp.Config {
	return bgp.Config{
		LocalASN: v.LocalASN, PeerASN: v.PeerASN, LocalAddr: v.Local.Addr(), PeerAddr: v.Peer.Addr(),
		Password: v.AuthKey, Hold: v.Hold, Keepalive: v.Hold / 3, Announce: slices.Clone(v.Announce),
	}
}

// Status is what the function knows of one VIF.
type Status struct {
	BGP bgp.Status
	// In and Out count the VIF's frames on the port.
	In, Out uint64
}

// Config is the function on one port.
type Config struct {
	// Port is the Direct Connect port: an interface in the edge's network
	// namespace, cabled to the customer's router.
	Port string
	// Namespaces prefixes the names of the VIFs' namespaces
	// (<prefix>-v<vlan>); unique per edge (default "ovpc-dx").
	Namespaces string
	// SpeakerCommand makes a BGP speaker's command line (default: this
	// executable's `edge bgp-speaker`); tests give their own binary.
	SpeakerCommand func() *exec.Cmd
	// Data, when set, is the edge's data path: each VIF gets a TUN in its
	// namespace and carries VPC traffic (nil: sessions and tags only).
	Data *Data
	// OnStatus gets each VIF's status when its session changes; it must
	// not block.
	OnStatus func(id string, st Status)
	Logger   *slog.Logger
}

func (c *Config) defaults() {
	if c.Namespaces == "" {
		c.Namespaces = "ovpc-dx"
	}
	if c.OnStatus == nil {
		c.OnStatus = func(string, Status) {}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
