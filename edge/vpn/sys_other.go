//go:build !linux

package vpn

import (
	"errors"
	"syscall"

	"github.com/vishvananda/netlink"
)

const (
	scopeLink   = netlink.Scope(253)
	rtTableMain = 254
)

func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func addrReplace(*netlink.Handle, netlink.Link, *netlink.Addr) error {
	return errors.New("the VPN function needs Linux (network namespaces)")
}
