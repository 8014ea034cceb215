package api

import (
	"fmt"
	"net/netip"
	"strings"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// FRRConfig is the customer router's side of virtual interface v as an
// FRR bgpd configuration, the way AWS's "download router configuration"
// hands one out: the VLAN subinterface to make (as Linux commands in
// comments: FRR's bgpd does not create interfaces), the neighbor with its
// ASN, MD5 key and timers, and the customer's prefixes to announce.
// iface is the router's interface cabled to the port (default eth1).
func FRRConfig(v *pb.DxVirtualInterface, iface string, announce []netip.Prefix) (string, error) {
	amazon, err1 := netip.ParsePrefix(v.AmazonAddress)
	customer, err2 := netip.ParsePrefix(v.CustomerAddress)
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("virtual interface %s has unreadable peer addresses %q %q", v.Id, v.AmazonAddress, v.CustomerAddress)
	}
	if iface == "" {
		iface = "eth1"
	}
	sub := fmt.Sprintf("%s.%d", iface, v.Vlan)
	if len(sub) > 15 {
		sub = fmt.Sprintf("vlan%d", v.Vlan)
	}
	hold := v.HoldTime
	if hold == 0 {
		hold = 90
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("! openvpc Direct Connect: private virtual interface %s", v.Id)
	w("! connection %s, VLAN %d; Amazon side ASN %d, your ASN %d", v.ConnectionId, v.Vlan, v.AmazonAsn, v.CustomerAsn)
	w("!")
	w("! 1. The link: an 802.1Q subinterface for VLAN %d on the interface cabled", v.Vlan)
	w("!    to the port, with your peer address (Linux):")
	w("!      ip link add link %s name %s type vlan id %d", iface, sub, v.Vlan)
	w("!      ip address add %s dev %s", customer, sub)
	w("!      ip link set %s up", sub)
	w("!    Amazon's side of the link is %s.", amazon.Addr())
	w("!")
	w("! 2. BGP: this file is bgpd's configuration (or append it to frr.conf).")
	w("!    The session is eBGP, directly connected (TTL 1), with an MD5 key.")
	w("!")
	w("frr defaults traditional")
	w("!")
	w("router bgp %d", v.CustomerAsn)
	w(" bgp router-id %s", customer.Addr())
	w(" ! Accept and announce without route maps (FRR 7.4+ requires a policy on eBGP).")
	w(" no bgp ebgp-requires-policy")
	w(" ! Announce your prefixes even before this router has routes for them.")
	w(" no bgp network import-check")
	w(" neighbor %s remote-as %d", amazon.Addr(), v.AmazonAsn)
	w(" neighbor %s description openvpc %s", amazon.Addr(), v.Id)
	w(" neighbor %s password %s", amazon.Addr(), v.AuthKey)
	w(" neighbor %s timers %d %d", amazon.Addr(), max(1, hold/3), hold)
	w(" !")
	w(" address-family ipv4 unicast")
	if len(announce) == 0 {
		w("  ! Announce your networks here, one line each (up to 100 prefixes), e.g.:")
		w("  ! network 192.0.2.0/24")
	}
	for _, p := range announce {
		w("  network %s", p)
	}
	w(" exit-address-family")
	w("exit")
	w("!")
	return b.String(), nil
}
