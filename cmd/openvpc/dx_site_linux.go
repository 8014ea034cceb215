package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/openvpc/openvpc/cli"
	"github.com/openvpc/openvpc/edge/dx/vlan"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/nsthread"
)

// dxSiteCmd is `openvpc dx site`: a simulated data centre for a VIF — a
// switch cabled into the edge's Direct Connect port (tagging the VIF's
// VLAN as a trunk port does), FRR's bgpd as the customer's router
// configured with the VIF's printed configuration, and an office network
// behind it with a small web server — until Ctrl-C, then it all goes.
func dxSiteCmd(o *cli.Options) *cobra.Command {
	var edgeNS, port, office, prefix string
	c := &cobra.Command{
		Use:   "site VIF --edge-netns NS --port IFACE [--office 192.0.2.0/24]",
		Short: "Run a simulated data centre on a VIF: a tagged cable into the edge's port, an FRR router, an office with a web server (root, FRR)",
		Long: `Run a simulated data centre for a Direct Connect virtual interface (needs root and FRR's bgpd).
It cables a veth named IFACE into the edge's network namespace NS (start the edge there with
--dx-port IFACE; it waits for the port), puts a switch on the other end that tags the VIF's
VLAN, and behind it FRR's bgpd configured with exactly what "dx vif config --format frr"
prints, announcing the office network, and an office host (.10 of it) serving HTTP on port 80.
Everything is removed on Ctrl-C.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Geteuid() != 0 {
				return errors.New("dx site makes network namespaces: run it as root")
			}
			if _, err := os.Stat("/usr/lib/frr/bgpd"); err != nil {
				return errors.New("dx site runs FRR's bgpd as the customer's router: install frr (apt-get install frr)")
			}
			net4, err := netip.ParsePrefix(office)
			if err != nil || !net4.Addr().Is4() || net4.Bits() > 29 || net4.Masked() != net4 {
				return fmt.Errorf("--office %q: give an IPv4 network such as 192.0.2.0/24", office)
			}
			conn, err := o.Conn()
			if err != nil {
				return err
			}
			dxc := openvpcv1connect.NewDirectConnectServiceClient(conn.HTTP, conn.URL)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			v, err := dxc.GetVirtualInterface(ctx, connect.NewRequest(&pb.GetVirtualInterfaceRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			conf, err := dxc.DescribeRouterConfiguration(ctx, connect.NewRequest(&pb.DescribeRouterConfigurationRequest{Ref: args[0], Format: "frr", Interface: "eth1", Announce: []string{net4.String()}}))
			if err != nil {
				return err
			}
			if prefix == "" {
				prefix = fmt.Sprintf("ovpc-site-%d", v.Msg.VirtualInterface.Vlan)
			}
			s := &site{prefix: prefix}
			defer s.close()
			if err := s.build(edgeNS, port, v.Msg.VirtualInterface, conf.Msg.Config, net4); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "data centre up: VLAN %d into %s of namespace %s; router %s (namespace %s-r), office %s serving http://%s/ (namespace %s-o); Ctrl-C removes it\n",
				v.Msg.VirtualInterface.Vlan, port, edgeNS, v.Msg.VirtualInterface.CustomerAddress, prefix, net4, s.officeIP, prefix)
			<-ctx.Done()
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&edgeNS, "edge-netns", "", "the network namespace the edge runs in, where the port is cabled (required)")
	f.StringVar(&port, "port", "", "the port's interface name in the edge's namespace, as given to edge run --dx-port (required)")
	f.StringVar(&office, "office", "192.0.2.0/24", "the office network behind the router (announced over BGP)")
	f.StringVar(&prefix, "netns-prefix", "", "prefix of the site's namespaces (default ovpc-site-VLAN)")
	_ = c.MarkFlagRequired("edge-netns")
	_ = c.MarkFlagRequired("port")
	return c
}

func (s *site) build(edgeNS, port string, v *pb.DxVirtualInterface, conf string, office netip.Prefix) error {
	edge, err := netns.GetFromName(edgeNS)
	if err != nil {
		return fmt.Errorf("--edge-netns %s: %w", edgeNS, err)
	}
	defer edge.Close()
	sw, err := s.ns("sw")
	if err != nil {
		return err
	}
	router, err := s.ns("r")
	if err != nil {
		return err
	}
	off, err := s.ns("o")
	if err != nil {
		return err
	}
	// The cable: port in the edge's namespace, trunk on the switch.
	if err := veth(sw, "trunk", edge, port); err != nil {
		return err
	}
	if err := veth(sw, "r", router, "eth1"); err != nil {
		return err
	}
	// The switch tags the router's port with the VIF's VLAN.
	err = nsthread.In(sw, func() error {
		trunk, err := netlink.LinkByName("trunk")
		if err != nil {
			return err
		}
		r, err := netlink.LinkByName("r")
		if err != nil {
			return err
		}
		p, err := vlan.Attach(trunk.Attrs().Index)
		if err != nil {
			return err
		}
		s.undo = append(s.undo, func() { p.Close() })
		return p.AddVIF(uint16(v.Vlan), r.Attrs().Index)
	})
	if err != nil {
		return fmt.Errorf("the switch's VLAN %d: %w", v.Vlan, err)
	}
	customer, err1 := netip.ParsePrefix(v.CustomerAddress)
	amazon, err2 := netip.ParsePrefix(v.AmazonAddress)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("the VIF's peer addresses %q %q", v.CustomerAddress, v.AmazonAddress)
	}
	if err := nsthread.In(router, func() error {
		if err := addrOn("eth1", customer); err != nil {
			return err
		}
		// bgpd runs without zebra, so it installs nothing: everything
		// but the office goes to the cloud, over the VIF.
		eth1, err := netlink.LinkByName("eth1")
		if err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{Gw: amazon.Addr().AsSlice(), LinkIndex: eth1.Attrs().Index})
	}); err != nil {
		return fmt.Errorf("the router: %w", err)
	}
	if err := s.office(router, "lan", off, office, func(from string) string {
		return fmt.Sprintf("hello from the data centre (%s) to %s, over Direct Connect VLAN %d\n", s.officeIP, from, v.Vlan)
	}); err != nil {
		return err
	}
	// The router.
	dir, err := os.MkdirTemp("", s.prefix+"-frr-")
	if err != nil {
		return err
	}
	_ = os.Chmod(dir, 0o777)
	s.undo = append(s.undo, func() { os.RemoveAll(dir) })
	cf := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return err
	}
	bgpd := exec.Command("/usr/lib/frr/bgpd", "-Z", "-n", "-S", "-f", cf, "-i", filepath.Join(dir, "bgpd.pid"),
		"-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir)
	bgpd.Stdout, bgpd.Stderr = os.Stderr, os.Stderr
	bgpd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := nsthread.In(router, bgpd.Start); err != nil {
		return fmt.Errorf("bgpd: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = bgpd.Wait(); close(done) }()
	s.undo = append(s.undo, func() {
		_ = bgpd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = bgpd.Process.Kill()
			<-done
		}
	})
	return nil
}
