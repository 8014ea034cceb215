package vpn

import (
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// What the tunnels need of Linux. The VPN function runs only on Linux
// (network namespaces, charon with kernel-libipsec); these let the rest
// of the package, and so the binary, build everywhere.
const (
	scopeLink   = netlink.SCOPE_LINK
	rtTableMain = unix.RT_TABLE_MAIN
)

// childAttr starts a child (charon) in its own process group that dies
// with the edge.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

func addrReplace(h *netlink.Handle, l netlink.Link, a *netlink.Addr) error {
	return h.AddrReplace(l, a)
}
