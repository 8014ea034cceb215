package main

import (
	"errors"
	"fmt"
	"net"
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
	"github.com/openvpc/openvpc/edge/vpn"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/nsthread"
)

// vpnSiteCmd is `openvpc vpn site`: a simulated customer site for a VPN
// connection — a strongSwan customer gateway at the cgw's address on the
// internet namespace the user names, configured with exactly what `vpn
// config --format strongswan` prints, and an office network behind it
// with a small web server — until Ctrl-C, then it all goes.
func vpnSiteCmd(o *cli.Options) *cobra.Command {
	var inet, office, prefix string
	c := &cobra.Command{
		Use:   "site VPN --internet-netns NS [--office CIDR]",
		Short: "Run a simulated customer site on a VPN connection: a strongSwan customer gateway and an office with a web server (root, strongSwan)",
		Long: `Run a simulated customer site for a site-to-site VPN connection (needs root and strongSwan's
charon and swanctl). It cables a veth from the internet namespace NS (the simulated internet the
edges' outside addresses are routed in; it must forward) to a new namespace holding the customer
gateway at the cgw's address, runs a charon there loaded with exactly what
"vpn config --format strongswan" prints, and behind it an office host (.10 of the office
network, by default the connection's first static route) serving HTTP on port 80.
Everything is removed on Ctrl-C.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Geteuid() != 0 {
				return errors.New("vpn site makes network namespaces: run it as root")
			}
			if _, err := os.Stat(vpn.CharonPath); err != nil {
				return fmt.Errorf("vpn site runs strongSwan's charon as the customer gateway: install strongswan-charon, strongswan-swanctl and libcharon-extra-plugins (no %s)", vpn.CharonPath)
			}
			if _, err := exec.LookPath("swanctl"); err != nil {
				return errors.New("vpn site loads the printed configuration with swanctl: install strongswan-swanctl")
			}
			conn, err := o.Conn()
			if err != nil {
				return err
			}
			vc := openvpcv1connect.NewVpnServiceClient(conn.HTTP, conn.URL)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			got, err := vc.GetVpnConnection(ctx, connect.NewRequest(&pb.GetVpnConnectionRequest{Ref: args[0]}))
			if err != nil {
				return err
			}
			v := got.Msg.VpnConnection
			cg, err := vc.GetCustomerGateway(ctx, connect.NewRequest(&pb.GetCustomerGatewayRequest{Ref: v.CustomerGatewayId}))
			if err != nil {
				return err
			}
			cgw, err := netip.ParseAddr(cg.Msg.CustomerGateway.IpAddress)
			if err != nil || !cgw.Is4() {
				return fmt.Errorf("customer gateway %s has address %q; vpn site needs an IPv4 one", v.CustomerGatewayId, cg.Msg.CustomerGateway.IpAddress)
			}
			if office == "" {
				if len(v.Routes) == 0 {
					return fmt.Errorf("%s has no static routes: give --office CIDR (and add it with vpn route add %s --dest CIDR)", v.Id, v.Id)
				}
				office = v.Routes[0]
			}
			lan, err := netip.ParsePrefix(office)
			if err != nil || !lan.Addr().Is4() || lan.Bits() > 28 || lan.Masked() != lan {
				return fmt.Errorf("--office %q: give an IPv4 network of /28 or more, such as 192.168.50.0/24", office)
			}
			conf, err := vc.GetVpnConnectionConfig(ctx, connect.NewRequest(&pb.GetVpnConnectionConfigRequest{Ref: v.Id, Format: "strongswan"}))
			if err != nil {
				return err
			}
			if prefix == "" {
				prefix = "ovpc-vsite-" + v.Id[len(v.Id)-6:]
			}
			s := &site{prefix: prefix}
			defer s.close()
			var dpd time.Duration
			if len(v.Tunnels) > 0 {
				dpd = time.Duration(v.Tunnels[0].DpdTimeoutSeconds) * time.Second
			}
			if err := s.buildVPN(cmd, inet, cgw, lan, conf.Msg.Config, dpd); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "site up: customer gateway %s (namespace %s-gw) on the internet of namespace %s; office %s serving http://%s/ (namespace %s-o); Ctrl-C removes it\n",
				cgw, prefix, inet, lan, s.officeIP, prefix)
			<-ctx.Done()
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&inet, "internet-netns", "", "the network namespace of the simulated internet the edges' outside addresses are routed in (required)")
	f.StringVar(&office, "office", "", "the office network behind the gateway (default: the connection's first static route)")
	f.StringVar(&prefix, "netns-prefix", "", "prefix of the site's namespaces (default ovpc-vsite-<end of the connection id>)")
	_ = c.MarkFlagRequired("internet-netns")
	return c
}

// buildVPN makes the gateway and office namespaces, cables the gateway
// into inet, starts its charon and loads conf, and serves the office page.
func (s *site) buildVPN(cmd *cobra.Command, inet string, cgw netip.Addr, lan netip.Prefix, conf string, dpd time.Duration) error {
	in, err := netns.GetFromName(inet)
	if err != nil {
		return fmt.Errorf("--internet-netns %s: %w", inet, err)
	}
	s.undo = append(s.undo, func() { in.Close() }) // after the cable's removal, which needs it
	// The machine's own namespace is no simulated internet: routes put
	// there would point at the real network.
	self, err := netns.GetFromPid(1)
	if err == nil {
		same := self.Equal(in)
		self.Close()
		if same {
			return fmt.Errorf("--internet-netns %s is the machine's own network namespace; name the simulated internet's", inet)
		}
	}
	gwNS, err := s.ns("gw")
	if err != nil {
		return err
	}
	off, err := s.ns("o")
	if err != nil {
		return err
	}
	// The internet's end of the cable is named for the site; the gateway
	// holds its /32 and reaches everything through that end, which
	// answers ARP for what the internet routes (proxy ARP), so the
	// internet needs no address of its own on it.
	// Named for the cgw and the end of the prefix, so two sites (two
	// prefixes) on one internet have two cables.
	cable := fmt.Sprintf("vs%x", cgw.As4()[3]) + s.prefix[max(0, len(s.prefix)-4):]
	if len(cable) > 15 {
		cable = cable[:15]
	}
	if err := veth(in, cable, gwNS, "i0"); err != nil {
		return err
	}
	s.undo = append(s.undo, func() {
		_ = nsthread.In(in, func() error {
			l, err := netlink.LinkByName(cable)
			if err == nil {
				err = netlink.LinkDel(l)
			}
			return err
		})
	})
	host := netip.PrefixFrom(cgw, 32)
	if err := nsthread.In(in, func() error {
		l, err := netlink.LinkByName(cable)
		if err != nil {
			return err
		}
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+cable+"/proxy_arp", []byte("1"), 0); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: cgw.AsSlice(), Mask: net.CIDRMask(32, 32)}, LinkIndex: l.Attrs().Index, Scope: netlink.SCOPE_LINK})
	}); err != nil {
		return fmt.Errorf("the internet's route to %s: %w", cgw, err)
	}
	if err := nsthread.In(gwNS, func() error {
		if err := addrOn("i0", host); err != nil {
			return err
		}
		i0, err := netlink.LinkByName("i0")
		if err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, LinkIndex: i0.Attrs().Index, Scope: netlink.SCOPE_LINK})
	}); err != nil {
		return fmt.Errorf("the customer gateway: %w", err)
	}
	if err := s.office(gwNS, "lan0", off, lan, func(from string) string {
		return fmt.Sprintf("hello from the office (%s) to %s, over the VPN\n", s.officeIP, from)
	}); err != nil {
		return err
	}
	// The customer gateway: a charon loaded with the printed configuration.
	dir, err := os.MkdirTemp("", s.prefix+"-charon-")
	if err != nil {
		return err
	}
	s.undo = append(s.undo, func() { os.RemoveAll(dir) })
	cc := vpn.CharonConfig{Netns: s.prefix + "-gw", Dir: dir}
	if dpd > 0 {
		cc.RetransmitTries, cc.RetransmitTimeout, cc.RetransmitBase = vpn.DeadPeerRetransmits(dpd)
	}
	ch, err := vpn.StartCharon(cmd.Context(), cc)
	if err != nil {
		return fmt.Errorf("the customer gateway's charon: %w", err)
	}
	s.undo = append(s.undo, ch.Stop)
	file := filepath.Join(dir, "swanctl.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		return err
	}
	load := exec.Command("swanctl", "--load-all", "--noprompt", "--file", file, "--uri", "unix://"+ch.Socket())
	var out []byte
	if err := nsthread.In(gwNS, func() error {
		var err error
		out, err = load.CombinedOutput()
		return err
	}); err != nil {
		return fmt.Errorf("swanctl --load-all of the printed configuration: %w\n%s", err, out)
	}
	return nil
}
