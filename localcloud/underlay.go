package localcloud

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/openvpc/openvpc/underlay"
)

// HostAddr is the underlay address of host-i in a cloud on the /24 u.
func HostAddr(u netip.Prefix, i int) netip.Addr { return nth(u, i) }

// EdgeAddr is the underlay address of edge-i in a cloud on the /24 u.
func EdgeAddr(u netip.Prefix, i int) netip.Addr { return nth(u, 250+i) }

func nth(u netip.Prefix, i int) netip.Addr {
	a := u.Addr().As4()
	a[3] = byte(i)
	return netip.AddrFrom4(a)
}

// bindUnderlay binds the underlay of every host and edge New starts, on
// WirePort, before anything else starts: a busy address fails the cloud
// before it wrote anything. With AnyUnderlay a busy /24 is skipped for the
// next one, and cfg.Underlay says which was taken.
func (c *Cloud) bindUnderlay() (hosts, edges []*underlay.UDPConn, err error) {
	if c.cfg.Hosts+c.cfg.Edges == 0 {
		return nil, nil, nil
	}
	u := c.cfg.Underlay
	for {
		hosts, edges, err = bindBlock(u, c.cfg.Hosts, c.cfg.Edges, c.cfg.WirePort)
		if err == nil || !c.cfg.AnyUnderlay || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		if u, err = nextBlock(u); err != nil {
			break
		}
	}
	if err != nil {
		return nil, nil, err
	}
	c.cfg.Underlay = u
	return hosts, edges, nil
}

// bindBlock binds the underlay of n hosts and m edges on the /24 u.
func bindBlock(u netip.Prefix, n, m int, port uint16) (hosts, edges []*underlay.UDPConn, err error) {
	bind := func(what string, addr netip.Addr) (*underlay.UDPConn, error) {
		w, err := underlay.ListenPort(addr, port)
		if err != nil {
			closeAll(hosts, edges)
			return nil, fmt.Errorf("underlay of %s on %s:%d: %w (is another openvpc up running? try --wire-port)", what, addr, port, err)
		}
		return w, nil
	}
	for i := 1; i <= n; i++ {
		w, err := bind(hostID(i), HostAddr(u, i))
		if err != nil {
			return nil, nil, err
		}
		hosts = append(hosts, w)
	}
	for i := 1; i <= m; i++ {
		w, err := bind(fmt.Sprintf("edge-%d", i), EdgeAddr(u, i))
		if err != nil {
			return nil, nil, err
		}
		edges = append(edges, w)
	}
	return hosts, edges, nil
}

// nextBlock is the loopback /24 after u.
func nextBlock(u netip.Prefix) (netip.Prefix, error) {
	a := u.Addr().As4()
	a[2]++
	if a[2] == 0 {
		a[1]++
	}
	if a[1] == 0 && a[2] == 0 {
		return u, errors.New("localcloud: every loopback /24 has its addresses taken")
	}
	return netip.PrefixFrom(netip.AddrFrom4(a), 24), nil
}
