//go:build linux

package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	"github.com/openvpc/openvpc/edge"
	"github.com/openvpc/openvpc/edge/dx"
	"github.com/openvpc/openvpc/edge/vpn"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/nsthread"
)

// The office of scene 7, all on documentation addresses inside the
// demo's own network namespace: the demo's namespace is the internet
// (192.0.2.0/26 on veth "dsite"), the site namespace holds the customer
// gateway and routes to the on-premises namespace behind it.
var (
	cgwAddr      = netip.MustParsePrefix("192.0.2.50/26")
	inetAddr     = netip.MustParsePrefix("192.0.2.1/26")
	officePrefix = "192.168.50.0/24"
	officeGW     = netip.MustParsePrefix("192.168.50.1/24")
	officeHost   = netip.MustParsePrefix("192.168.50.10/24")
)

// sites is what the VPN and Direct Connect scenes made: the namespaces
// and processes to remove at the end.
type sites struct {
	tag     string
	nss     []string
	charons []*vpn.Charon
	servers []*http.Server
	dir     string
	vpnOut  string
	dxPort  string
	procs   []*exec.Cmd
	// dxStop ends the Direct Connect controller and waits for it.
	dxStop func()
	log    *slog.Logger
}

func newSites(dir string) *sites {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return &sites{tag: "ovd" + hex.EncodeToString(b), dir: dir, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// edgeFunctions gives edge-1 the VPN function, its outside a TUN in the
// demo's namespace.
func (s *sites) edgeFunctions(id string) ([]edge.Function, func(*edge.Node), error) {
	if id != "edge-1" {
		return nil, nil, nil
	}
	s.vpnOut = s.tag + "v"
	out, err := edge.OpenTUNOutside(s.vpnOut, 1500)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(s.dir, "vpn")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		out.Close()
		return nil, nil, err
	}
	f := vpn.New(vpn.Config{EdgeID: id, Outside: out, OutsideName: s.vpnOut, Dir: dir, Poll: 300 * time.Millisecond})
	// The Direct Connect port: `dx site` cables it in later; the
	// controller waits for it.
	s.dxPort = s.tag + "p"
	ctl, err := dx.NewController(dx.ControllerConfig{EdgeID: id, Ports: []string{s.dxPort}, Namespaces: s.tag + "-dx", Poll: 300 * time.Millisecond, Logger: s.log})
	if err != nil {
		out.Close()
		return nil, nil, err
	}
	return []edge.Function{f, ctl.Data()}, func(n *edge.Node) {
		f.Bind(openvpcv1connect.NewVpnServiceClient(n.HTTP, n.Server), n.Cache.Tables)
		ctl.Bind(openvpcv1connect.NewDirectConnectServiceClient(n.HTTP, n.Server), n.Cache.Tables)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = ctl.Run(ctx)
		}()
		s.dxStop = func() { cancel(); <-done }
	}, nil
}

// ip runs ip(8) with args.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func ipAll(cmds ...[]string) error {
	for _, c := range cmds {
		if err := ip(c...); err != nil {
			return err
		}
	}
	return nil
}

// addNS makes a named namespace, removed by close.
func (s *sites) addNS(name string) (string, error) {
	ns := s.tag + "-" + name
	if err := ip("netns", "add", ns); err != nil {
		return "", err
	}
	s.nss = append(s.nss, ns)
	return ns, ip("-n", ns, "link", "set", "lo", "up")
}

// serveIn serves a page from addr:80 in namespace ns: the socket is made
// there, on a thread that goes back afterwards.
func (s *sites) serveIn(ns string, addr netip.Addr, page string) error {
	l, err := listenIn(ns, net.JoinHostPort(addr.String(), "80"))
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s (%s). You came from %s.\n", page, addr, r.RemoteAddr)
	})}
	s.servers = append(s.servers, srv)
	go func() { _ = srv.Serve(l) }()
	return nil
}

func listenIn(ns, addr string) (net.Listener, error) {
	var l net.Listener
	err := nsthread.InNamed(ns, func() error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	})
	return l, err
}

// close stops what the scenes started, by PID, and removes their
// namespaces.
func (s *sites) close() {
	for _, p := range s.procs {
		_ = p.Process.Signal(syscall.SIGTERM)
		_ = p.Wait()
	}
	if s.dxStop != nil {
		s.dxStop()
	}
	for _, srv := range s.servers {
		srv.Close()
	}
	for _, c := range s.charons {
		c.Stop()
	}
	for _, ns := range s.nss {
		_ = ip("netns", "del", ns)
	}
}

// setupOffice makes the internet link, the site and the office.
func (s *sites) setupOffice() error {
	site, err := s.addNS("site")
	if err != nil {
		return err
	}
	office, err := s.addNS("onp")
	if err != nil {
		return err
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("forwarding in the demo's namespace: %w", err)
	}
	d := s.tag + "s"
	if err := ipAll(
		[]string{"link", "add", d, "type", "veth", "peer", "name", "i0", "netns", site},
		[]string{"addr", "add", inetAddr.String(), "dev", d},
		[]string{"link", "set", d, "up"},
		[]string{"-n", site, "addr", "add", cgwAddr.String(), "dev", "i0"},
		[]string{"-n", site, "link", "set", "i0", "up"},
		[]string{"-n", site, "route", "add", "default", "via", inetAddr.Addr().String()},
		[]string{"-n", site, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", office},
		[]string{"-n", site, "addr", "add", officeGW.String(), "dev", "lan0"},
		[]string{"-n", site, "link", "set", "lan0", "up"},
		[]string{"-n", office, "addr", "add", officeHost.String(), "dev", "eth0"},
		[]string{"-n", office, "link", "set", "eth0", "up"},
		[]string{"-n", office, "route", "add", "default", "via", officeGW.Addr().String()},
		[]string{"netns", "exec", site, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	); err != nil {
		return err
	}
	return s.serveIn(office, officeHost.Addr(), "Hello from the office")
}

// scene7: red reaches the office through a site-to-site VPN.
func (d *demo) scene7(ctx context.Context) (Scene, error) {
	s := Scene{Title: "red → the office, through a VPN", Caption: "a customer gateway configured with exactly what `vpn config` prints; red's route table learns the office from the vgw; edge-1 wraps red's packets in IPsec (ESP in UDP 4500)"}
	st := d.sites
	if err := st.setupOffice(); err != nil {
		return s, err
	}
	red := d.insts["red"]
	v := openvpcv1connect.NewVpnServiceClient(d.conn.HTTP, d.conn.URL)
	if _, err := v.CreateCustomerGateway(ctx, connect.NewRequest(&pb.CreateCustomerGatewayRequest{Name: "office", IpAddress: cgwAddr.Addr().String(), BgpAsn: 65000})); err != nil {
		return s, err
	}
	if _, err := v.CreateVpnGateway(ctx, connect.NewRequest(&pb.CreateVpnGatewayRequest{Name: "red-vgw"})); err != nil {
		return s, err
	}
	if _, err := v.AttachVpnGateway(ctx, connect.NewRequest(&pb.AttachVpnGatewayRequest{Ref: "red-vgw", Vpc: "red"})); err != nil {
		return s, err
	}
	// A short DPD, as the tests use: the scene takes seconds.
	c, err := v.CreateVpnConnection(ctx, connect.NewRequest(&pb.CreateVpnConnectionRequest{Name: "office-vpn", CustomerGateway: "office", VpnGateway: "red-vgw", StaticRoutesOnly: true,
		Tunnels: []*pb.TunnelOptions{{DpdTimeoutSeconds: 6}, {DpdTimeoutSeconds: 6}}}))
	if err != nil {
		return s, err
	}
	id := c.Msg.VpnConnection.Id
	if _, err := v.CreateVpnConnectionRoute(ctx, connect.NewRequest(&pb.CreateVpnConnectionRouteRequest{Ref: id, DestinationCidr: officePrefix})); err != nil {
		return s, err
	}
	if _, err := v.EnableRoutePropagation(ctx, connect.NewRequest(&pb.EnableRoutePropagationRequest{RouteTable: d.vpcs["red"].MainRouteTableId, VpnGateway: "red-vgw"})); err != nil {
		return s, err
	}
	conf, err := v.GetVpnConnectionConfig(ctx, connect.NewRequest(&pb.GetVpnConnectionConfigRequest{Ref: id, Format: "strongswan"}))
	if err != nil {
		return s, err
	}
	// Load the site only once edge-1 holds both tunnels (their charons
	// report a state): an office initiating earlier is refused and, by
	// AWS's config, does not retry.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		g, err := v.GetVpnConnection(ctx, connect.NewRequest(&pb.GetVpnConnectionRequest{Ref: id}))
		if err != nil {
			return s, err
		}
		ready := 0
		for _, t := range g.Msg.VpnConnection.Tunnels {
			if t.EdgeId != "" && t.GetStatus().GetState() != pb.TunnelState_TUNNEL_STATE_UNSPECIFIED {
				ready++
			}
		}
		if ready == len(g.Msg.VpnConnection.Tunnels) {
			break
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("edge-1 did not take the tunnels of %s in 15 s: %v", id, g.Msg.VpnConnection.Tunnels)
		}
	}
	site := st.nss[0]
	dir := filepath.Join(st.dir, "site")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return s, err
	}
	tries, timeout, base := vpn.DeadPeerRetransmits(6 * time.Second)
	ch, err := vpn.StartCharon(ctx, vpn.CharonConfig{Netns: site, Dir: dir, RetransmitTries: tries, RetransmitTimeout: timeout, RetransmitBase: base})
	if err != nil {
		return s, err
	}
	st.charons = append(st.charons, ch)
	file := filepath.Join(dir, "swanctl.conf")
	if err := os.WriteFile(file, []byte(conf.Msg.Config), 0o600); err != nil {
		return s, err
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", site, "swanctl", "--load-all", "--noprompt", "--file", file, "--uri", "unix://"+ch.Socket()).CombinedOutput(); err != nil {
		return s, fmt.Errorf("swanctl --load-all: %v: %s", err, out)
	}
	s.Wire = append(s.Wire, fmt.Sprintf("the office's strongSwan at %v loads `vpn config %s --format strongswan` (%d lines)", cgwAddr.Addr(), id, strings.Count(conf.Msg.Config, "\n")))
	var conn *pb.VpnConnection
	retry := time.Now().Add(3 * time.Second)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		g, err := v.GetVpnConnection(ctx, connect.NewRequest(&pb.GetVpnConnectionRequest{Ref: id}))
		if err != nil {
			return s, err
		}
		conn = g.Msg.VpnConnection
		up := 0
		for _, t := range conn.Tunnels {
			if t.GetStatus().GetState() == pb.TunnelState_TUNNEL_STATE_UP {
				up++
			}
		}
		if up == len(conn.Tunnels) {
			break
		}
		// An office that initiated before edge-1's charon had the tunnel
		// loaded was refused (NO_PROPOSAL_CHOSEN), and charon does not
		// retry that: initiate the tunnel again, once, as an operator would.
		if !retry.IsZero() && time.Now().After(retry) {
			retry = time.Time{}
			for i, t := range conn.Tunnels {
				if t.GetStatus().GetState() == pb.TunnelState_TUNNEL_STATE_UP {
					continue
				}
				child := fmt.Sprintf("%s-tunnel%d", id, i+1)
				init := exec.CommandContext(ctx, "ip", "netns", "exec", site, "swanctl", "--initiate", "--child", child, "--timeout", "10", "--uri", "unix://"+ch.Socket())
				if err := init.Start(); err == nil {
					go func() { _ = init.Wait() }()
					s.Wire = append(s.Wire, fmt.Sprintf("tunnel %d was %s (%s): the office initiates it again (swanctl --initiate --child %s)", i+1,
						strings.ToLower(strings.TrimPrefix(t.GetStatus().GetState().String(), "TUNNEL_STATE_")), t.GetStatus().GetDetail(), child))
				}
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(ch.Log())
			return s, fmt.Errorf("the tunnels of %s did not come up in 30 s: %v\n%s", id, conn.Tunnels, tail(string(log), 20))
		}
	}
	for i, t := range conn.Tunnels {
		s.Wire = append(s.Wire, fmt.Sprintf("tunnel %d %s ↔ %v on %s: %s", i+1, t.OutsideAddress, cgwAddr.Addr(), t.EdgeId, strings.ToLower(strings.TrimPrefix(t.GetStatus().GetState().String(), "TUNNEL_STATE_"))))
	}
	// red's route table: the office, propagated from the vgw.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		rt, err := d.vpc.GetRouteTable(ctx, connect.NewRequest(&pb.GetRouteTableRequest{Ref: d.vpcs["red"].MainRouteTableId}))
		if err != nil {
			return s, err
		}
		var found *pb.Route
		for _, r := range rt.Msg.RouteTable.Routes {
			if r.DestinationCidr == officePrefix && r.State == pb.RouteState_ROUTE_STATE_ACTIVE {
				found = r
			}
		}
		if found != nil {
			s.Wire = append(s.Wire, fmt.Sprintf("red's route table: %s → %s, propagated from %s (%s)", found.DestinationCidr, found.Target, found.VgwId, strings.ToLower(strings.TrimPrefix(found.Origin.String(), "ROUTE_ORIGIN_"))))
			break
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("red's route table has no active route to %s", officePrefix)
		}
	}
	n, ok := d.agentOf(red).NIC(d.vpcOf(red).Vni, netip.MustParseAddr(red.PrivateIp))
	if !ok {
		return s, errors.New("red-1 has no NIC")
	}
	count, err := countOutside(st.tag + "s")
	if err != nil {
		return s, err
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: n.DialContext}}
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		resp, err := hc.Get("http://" + officeHost.Addr().String() + "/")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			count.stop()
			return s, fmt.Errorf("red-1 → the office: %w", err)
		}
	}
	esp, ike, other := count.stop()
	sent, received := count.out.Load(), count.in.Load()
	s.Wire = append(s.Wire, fmt.Sprintf("red-1 (%s) fetches http://%s/ and gets: %q", red.PrivateIp, officeHost.Addr(), strings.TrimSpace(string(body))))
	s.Wire = append(s.Wire, fmt.Sprintf("the internet link to the office carried %d IPv4 packets (%d toward the office, %d back): %d ESP in UDP 4500, %d IKE, %d others", sent+received, sent, received, esp, ike, other))
	if strings.Contains(string(body), "from "+red.PrivateIp+":") && esp > 0 && other == 0 && sent > 0 && received > 0 {
		s.Verdict = "through the tunnel"
	} else {
		s.Verdict = fmt.Sprintf("unexpected: %d ESP, %d other packets", esp, other)
	}
	return s, nil
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// counter counts the IPv4 packets an interface carries, by kind, with an
// AF_PACKET socket (no tshark in the demo).
type counter struct {
	fd              int
	done            chan struct{}
	stopping        atomic.Bool
	esp, ike, other atomic.Uint64
	in, out         atomic.Uint64
}

func countOutside(ifname string) (*counter, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	// ETH_P_ALL, not ETH_P_IP: the kernel hands outgoing frames only to
	// taps of every protocol.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	tv := unix.Timeval{Usec: 100000}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	c := &counter{fd: fd, done: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *counter) read() {
	defer close(c.done)
	buf := make([]byte, 2048)
	for !c.stopping.Load() {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			return
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Protocol == htons(unix.ETH_P_IP) {
			c.classify(buf[:n], ll.Pkttype == unix.PACKET_OUTGOING)
		}
	}
}

func (c *counter) classify(p []byte, out bool) {
	if out {
		c.out.Add(1)
	} else {
		c.in.Add(1)
	}
	if len(p) < 20 || p[0]>>4 != 4 {
		return
	}
	hl := int(p[0]&0xf) * 4
	if p[9] == unix.IPPROTO_UDP && len(p) >= hl+4 {
		sp, dp := uint16(p[hl])<<8|uint16(p[hl+1]), uint16(p[hl+2])<<8|uint16(p[hl+3])
		switch {
		case sp == 4500 && dp == 4500:
			if len(p) >= hl+12 && p[hl+8]|p[hl+9]|p[hl+10]|p[hl+11] == 0 {
				c.ike.Add(1) // IKE on 4500: a zero non-ESP marker
			} else {
				c.esp.Add(1)
			}
			return
		case sp == 500 || dp == 500:
			c.ike.Add(1)
			return
		}
	}
	c.other.Add(1)
}

func (c *counter) stop() (esp, ike, other uint64) {
	// Read what is queued, then close once the reader is done with fd.
	time.Sleep(200 * time.Millisecond)
	c.stopping.Store(true)
	<-c.done
	unix.Close(c.fd)
	return c.esp.Load(), c.ike.Load(), c.other.Load()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func netInterface(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	return ifi.Index, nil
}
