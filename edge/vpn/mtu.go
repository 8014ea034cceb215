package vpn

// MTU is the largest packet a tunnel carries (edge.Bounded): the edge
// answers a larger one with DF set with "fragmentation needed", so that
// path MTU discovery works through the VPN for every protocol, not only
// for TCP SYNs that clampMSS sees.
func (f *Function) MTU() int { return tunnelMTU }
