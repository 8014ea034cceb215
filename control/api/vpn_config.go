package api

import (
	"fmt"
	"net/netip"
	"strings"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// What the customer side's configuration proposes: AES-GCM first (what
// kernel-libipsec runs fastest), AES-CBC with SHA-256 for older peers;
// Diffie-Hellman group 14 for IKE and for PFS, as AWS's defaults.
const (
	ikeProposals = "aes128gcm16-prfsha256-modp2048,aes256-sha256-modp2048"
	espProposals = "aes128gcm16-modp2048,aes256-sha256-modp2048"
)

// StrongSwanConfig prints the customer gateway's swanctl.conf for a VPN
// connection: one IKEv2 connection per tunnel, each with its pre-shared
// key, proposals, traffic selectors and dead peer detection. A site runs
// both: openvpc sends over one tunnel and fails over to the other.
func StrongSwanConfig(c *pb.VpnConnection, cgw *pb.CustomerGateway, vgw *pb.VpnGateway, vpc *pb.Vpc) (string, error) {
	if vpc == nil {
		return "", model.Preconditionf("virtual private gateway %s is not attached to a VPC, so the tunnels lead nowhere; attach it first (openvpc vgw attach %s --vpc VPC)", vgw.Id, vgw.Id)
	}
	if len(c.Tunnels) != 2 {
		return "", fmt.Errorf("VPN connection %s has %d tunnels, not 2", c.Id, len(c.Tunnels))
	}
	local := "0.0.0.0/0"
	routing := "BGP (the site announces its prefixes over each tunnel's inside addresses)"
	if c.StaticRoutesOnly {
		routing = "static: the site's prefixes are the connection's routes (openvpc vpn route add)"
		if len(c.Routes) > 0 {
			local = strings.Join(c.Routes, ",")
		}
	}
	var b strings.Builder
	name := c.Id
	if c.Name != "" {
		name = fmt.Sprintf("%s (%s)", c.Id, c.Name)
	}
	fmt.Fprintf(&b, `# openvpc site-to-site VPN connection %s
#
# Customer gateway:        %s, public address %s, BGP ASN %d
# Virtual private gateway: %s (ASN %d), attached to %s %s
# Routing:                 %s
#
# Two tunnels to two openvpc edges: configure both. openvpc sends the
# VPC's traffic over one tunnel at a time and moves it to the other when
# that one goes down; this side may send over either.
#
# Use: save as /etc/swanctl/conf.d/%s.conf (this file holds the
# pre-shared keys: make it readable by root only) and run
#   swanctl --load-all
# With IKEv2, strongSwan declares a silent peer dead when its
# retransmissions give up, not after dpd_timeout: to notice a dead tunnel
# within about %d s, set in strongswan.conf
#   charon { retransmit_tries = 3  retransmit_timeout = 2.0  retransmit_base = 1.4 }
# Where the kernel has no ESP, load charon's kernel-libipsec plugin.%s

connections {
`, name, cgw.Id, cgw.IpAddress, cgw.BgpAsn, vgw.Id, vgw.AmazonSideAsn, vpc.Id, vpc.Cidr, routing, c.Id, c.Tunnels[0].DpdTimeoutSeconds, bgpNote(c))
	for i, t := range c.Tunnels {
		conn := fmt.Sprintf("%s-tunnel%d", c.Id, i+1)
		remote := vpc.Cidr
		if !c.StaticRoutesOnly {
			// The openvpc side's inside address rides this tunnel only, so
			// that one charon holding both tunnels sends each session's
			// packets into its own tunnel (openvpc accepts 0.0.0.0/0).
			remote = insideAddr(t.InsideCidr, 1) + "/32," + vpc.Cidr
		}
		fmt.Fprintf(&b, `    # Tunnel %d: openvpc edge %s; inside %s (this side %s, openvpc %s); DPD timeout %d s
    %s {
        version = 2
        local_addrs = %s
        remote_addrs = %s
        proposals = %s
        encap = yes
        mobike = no
        dpd_delay = %ds
        rekey_time = 8h
        keyingtries = 0
        local {
            auth = psk
            id = %s
        }
        remote {
            auth = psk
            id = %s
        }
        children {
            %s {
                local_ts = %s
                remote_ts = %s
                esp_proposals = %s
                rekey_time = 1h
                dpd_action = restart
                close_action = start
                start_action = start
            }
        }
    }
`, i+1, t.OutsideAddress, t.InsideCidr, insideAddr(t.InsideCidr, 2), insideAddr(t.InsideCidr, 1), t.DpdTimeoutSeconds,
			conn, cgw.IpAddress, t.OutsideAddress, ikeProposals, dpdDelay(t.DpdTimeoutSeconds), cgw.IpAddress, t.OutsideAddress, conn, local, remote, espProposals)
	}
	b.WriteString("}\n\nsecrets {\n")
	for i, t := range c.Tunnels {
		fmt.Fprintf(&b, `    ike-%s-tunnel%d {
        id-customer = %s
        id-openvpc = %s
        secret = "%s"
    }
`, c.Id, i+1, cgw.IpAddress, t.OutsideAddress, t.PreSharedKey)
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// dpdDelay is how often a quiet peer is probed: a third of the DPD
// timeout, as AWS probes every 10 s to declare a peer dead after 30 s.
func dpdDelay(timeout uint32) uint32 { return max(1, timeout/3) }

// insideAddr is host n of a tunnel's inside /30 (1: openvpc's side, 2: the customer's).
func insideAddr(cidr string, n byte) string {
	p, err := model.ParseCIDR("inside CIDR", cidr, 30, 30)
	if err != nil {
		return "?"
	}
	a := p.Addr().As4()
	a[3] += n
	return fmt.Sprintf("%d.%d.%d.%d", a[0], a[1], a[2], a[3])
}

// bgpNote tells a BGP connection's site what else it runs.
func bgpNote(c *pb.VpnConnection) string {
	if c.StaticRoutesOnly {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n#\n# BGP: give this host each tunnel's inside address on this side (a /32,\n# e.g. on lo):")
	for i, t := range c.Tunnels {
		fmt.Fprintf(&b, " tunnel %d %s", i+1, insideAddr(t.InsideCidr, 2))
	}
	fmt.Fprintf(&b, "\n# and run bgpd with `openvpc vpn config %s --format frr`.", c.Id)
	return b.String()
}

// AWS's BGP timers on a VPN tunnel: keepalive 10 s, hold 30 s.
const (
	bgpKeepalive = 10
	bgpHold      = 30
)

// VPNFRRConfig prints the customer gateway's bgpd configuration for a BGP
// connection: one neighbor per tunnel on openvpc's inside address, from
// this side's, eBGP between the cgw's and the vgw's ASNs with AWS's
// timers, announcing announce (none given: a placeholder to edit).
func VPNFRRConfig(c *pb.VpnConnection, cgw *pb.CustomerGateway, vgw *pb.VpnGateway, vpc *pb.Vpc, announce []string) (string, error) {
	if c.StaticRoutesOnly {
		return "", model.Preconditionf("VPN connection %s uses static routes: its site runs no BGP (use --format strongswan, and openvpc vpn route add)", c.Id)
	}
	if vpc == nil {
		return "", model.Preconditionf("virtual private gateway %s is not attached to a VPC, so the tunnels lead nowhere; attach it first (openvpc vgw attach %s --vpc VPC)", vgw.Id, vgw.Id)
	}
	if len(c.Tunnels) != 2 {
		return "", fmt.Errorf("VPN connection %s has %d tunnels, not 2", c.Id, len(c.Tunnels))
	}
	var nets []string
	for _, a := range announce {
		p, err := model.ParseCIDR("announce", a, 1, 32)
		if err != nil {
			return "", model.Invalidf("--announce %q: give the site's prefixes as CIDRs such as 192.168.0.0/16", a)
		}
		if p.Overlaps(mustPrefix(vpc.Cidr)) {
			return "", model.Invalidf("--announce %s overlaps the VPC's CIDR %s: announce the site's own prefixes", p, vpc.Cidr)
		}
		nets = append(nets, p.String())
	}
	var b strings.Builder
	fmt.Fprintf(&b, `! openvpc site-to-site VPN connection %s: the customer gateway's bgpd (FRR)
!
! Customer gateway %s (ASN %d) <-> virtual private gateway %s (ASN %d),
! one session per tunnel over the tunnel's inside addresses (bring the
! tunnels up first: openvpc vpn config %s --format strongswan). openvpc
! announces %s; a session down withdraws its routes and traffic
! takes the other tunnel.
!
! Use: save as bgpd.conf (or paste into vtysh's configure terminal).
!
frr defaults traditional
!
router bgp %d
 bgp router-id %s
 no bgp ebgp-requires-policy
 no bgp network import-check
`, c.Id, cgw.Id, cgw.BgpAsn, vgw.Id, vgw.AmazonSideAsn, c.Id, vpc.Cidr, cgw.BgpAsn, insideAddr(c.Tunnels[0].InsideCidr, 2))
	for i, t := range c.Tunnels {
		peer := insideAddr(t.InsideCidr, 1)
		fmt.Fprintf(&b, ` neighbor %s remote-as %d
 neighbor %s description %s tunnel %d (openvpc edge %s)
 neighbor %s update-source %s
 neighbor %s disable-connected-check
 neighbor %s timers %d %d
`, peer, vgw.AmazonSideAsn, peer, c.Id, i+1, t.OutsideAddress, peer, insideAddr(t.InsideCidr, 2), peer, peer, bgpKeepalive, bgpHold)
	}
	b.WriteString(" !\n address-family ipv4 unicast\n")
	if len(nets) == 0 {
		b.WriteString("  ! The site's prefixes to announce (at most 100): replace and uncomment.\n  ! network 192.168.0.0/16\n")
	}
	for _, n := range nets {
		fmt.Fprintf(&b, "  network %s\n", n)
	}
	b.WriteString(" exit-address-family\nexit\n!\n")
	return b.String(), nil
}

func mustPrefix(s string) netip.Prefix {
	p, _ := netip.ParsePrefix(s)
	return p
}
