package main

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvpc/openvpc/nsthread"
)

// A simulated customer site (`dx site`, `vpn site`): namespaces named
// with a prefix, a router or gateway, an office network behind it with a
// web server, all undone by close.

// site is what a site command made, undone by close.
type site struct {
	prefix   string
	officeIP netip.Addr
	undo     []func()
}

func (s *site) close() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
}

func (s *site) ns(name string) (netns.NsHandle, error) {
	full := s.prefix + "-" + name
	_ = netns.DeleteNamed(full) // left by a killed run
	var h netns.NsHandle
	err := nsthread.Run(func() error {
		var err error
		h, err = netns.NewNamed(full)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("namespace %s: %w", full, err)
	}
	s.undo = append(s.undo, func() { h.Close(); _ = netns.DeleteNamed(full) })
	return h, nsthread.In(h, func() error {
		for _, k := range []string{"all", "default"} {
			_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0)
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		return err
	})
}

// office makes the office network lan behind router: a cable from the
// router's routerLink to the office's eth0, the router forwarding with
// the network's first address, the office host ten addresses later with
// its default route to the router, and its web server answering greeting
// (of the client's address) from its own namespace.
func (s *site) office(router netns.NsHandle, routerLink string, off netns.NsHandle, lan netip.Prefix, greeting func(from string) string) error {
	if err := veth(router, routerLink, off, "eth0"); err != nil {
		return err
	}
	gw := lan.Addr().Next()
	s.officeIP = gw
	for range 9 {
		s.officeIP = s.officeIP.Next()
	}
	if err := nsthread.In(router, func() error {
		if err := addrOn(routerLink, netip.PrefixFrom(gw, lan.Bits())); err != nil {
			return err
		}
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0)
	}); err != nil {
		return fmt.Errorf("the router's office link: %w", err)
	}
	if err := nsthread.In(off, func() error {
		if err := addrOn("eth0", netip.PrefixFrom(s.officeIP, lan.Bits())); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{Gw: gw.AsSlice()})
	}); err != nil {
		return fmt.Errorf("the office: %w", err)
	}
	// The socket is made in the office's namespace, served from anywhere.
	var ln net.Listener
	if err := nsthread.In(off, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(s.officeIP, 80).String())
		return err
	}); err != nil {
		return fmt.Errorf("the office's web server: %w", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprint(w, greeting(from))
	})}
	go func() { _ = srv.Serve(ln) }()
	s.undo = append(s.undo, func() { _ = srv.Close() })
	return nil
}

func veth(a netns.NsHandle, an string, b netns.NsHandle, bn string) error {
	return nsthread.In(a, func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: an}, PeerName: bn, PeerNamespace: netlink.NsFd(int(b))}); err != nil {
			return fmt.Errorf("veth %s–%s: %w", an, bn, err)
		}
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+an+"/disable_ipv6", []byte("1"), 0)
		l, err := netlink.LinkByName(an)
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		if err != nil {
			return err
		}
		return nsthread.In(b, func() error {
			_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+bn+"/disable_ipv6", []byte("1"), 0)
			l, err := netlink.LinkByName(bn)
			if err == nil {
				err = netlink.LinkSetUp(l)
			}
			return err
		})
	})
}

func addrOn(link string, p netip.Prefix) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return err
	}
	return netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}})
}
