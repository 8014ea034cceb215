//go:build !linux

package fastpath

import "net/netip"

// lookupHop knows no next hop off Linux (where no program loads either).
func lookupHop(netip.Addr) (hop, bool) { return hop{}, false }
