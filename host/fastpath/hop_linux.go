package fastpath

import (
	"net/netip"

	"github.com/vishvananda/netlink"
)

// lookupHop reads the routing and neighbour tables of this namespace.
func lookupHop(dst netip.Addr) (hop, bool) {
	routes, err := netlink.RouteGet(dst.AsSlice())
	if err != nil || len(routes) == 0 {
		return hop{}, false
	}
	rt := routes[0]
	via := dst
	if rt.Gw != nil {
		if g, ok := netip.AddrFromSlice(rt.Gw); ok {
			via = g.Unmap()
		}
	}
	l, err := netlink.LinkByIndex(rt.LinkIndex)
	if err != nil || len(l.Attrs().HardwareAddr) != 6 {
		return hop{}, false
	}
	neighs, err := netlink.NeighList(rt.LinkIndex, netlink.FAMILY_V4)
	if err != nil {
		return hop{}, false
	}
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || ip.Unmap() != via || len(n.HardwareAddr) != 6 {
			continue
		}
		if n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) == 0 {
			continue
		}
		h := hop{ifindex: uint32(rt.LinkIndex)}
		copy(h.dmac[:], n.HardwareAddr)
		copy(h.smac[:], l.Attrs().HardwareAddr)
		return h, true
	}
	return hop{}, false
}
