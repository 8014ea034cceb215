package api

import (
	"fmt"
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
	// dpdDelay: how often an idle peer is probed (AWS probes every 10 s).
	dpdDelay = 10
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
# Where the kernel has no ESP, load charon's kernel-libipsec plugin.

connections {
`, name, cgw.Id, cgw.IpAddress, cgw.BgpAsn, vgw.Id, vgw.AmazonSideAsn, vpc.Id, vpc.Cidr, routing, c.Id, c.Tunnels[0].DpdTimeoutSeconds)
	for i, t := range c.Tunnels {
		conn := fmt.Sprintf("%s-tunnel%d", c.Id, i+1)
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
			conn, cgw.IpAddress, t.OutsideAddress, ikeProposals, dpdDelay, cgw.IpAddress, t.OutsideAddress, conn, local, vpc.Cidr, espProposals)
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
