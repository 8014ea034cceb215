//go:build linux

package demo

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
)

// The data centre of scene 8: `openvpc dx site` on a port of edge-1, its
// office network on documentation addresses (clear of scene 7's).
var (
	dcPrefix = netip.MustParsePrefix("192.0.2.64/26")
	dcVLAN   = uint32(101)
)

// startDCSite runs `openvpc dx site` (this executable) for vif with the
// demo's admin config, until close stops it by PID; it returns once the
// site says it is up.
func (s *sites) startDCSite(ctx context.Context, vif, config, server string) (string, error) {
	// dx site cables its port into a namespace it finds by name: name the
	// demo's own.
	edgeNS := s.tag + "-edge"
	if err := ip("netns", "attach", edgeNS, strconv.Itoa(os.Getpid())); err != nil {
		return "", err
	}
	s.nss = append(s.nss, edgeNS)
	cmd := exec.Command("/proc/self/exe", "--config", config, "--server", server, "dx", "site", vif,
		"--edge-netns", edgeNS, "--port", s.dxPort, "--office", dcPrefix.String(), "--netns-prefix", s.tag+"-dc")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("openvpc dx site: %w", err)
	}
	s.procs = append(s.procs, cmd)
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		l, _ := r.ReadString('\n')
		line <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case l := <-line:
		if !strings.HasPrefix(l, "data centre up") {
			return "", fmt.Errorf("openvpc dx site did not come up: %q %s", l, stderr.String())
		}
		return l, nil
	case <-time.After(20 * time.Second):
		return "", fmt.Errorf("openvpc dx site did not come up in 20 s: %s", stderr.String())
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// scene8: red reaches the data centre over Direct Connect, and a frame on
// the port shows its 802.1Q tag.
func (d *demo) scene8(ctx context.Context) (Scene, error) {
	s := Scene{Title: "red → the data centre, over Direct Connect", Caption: "a dedicated port on edge-1, a virtual interface on VLAN 101 with a BGP session (MD5) to the data centre's FRR; the edge unwraps red's packets from Geneve and sends them tagged"}
	st := d.sites
	red := d.insts["red"]
	dx := openvpcv1connect.NewDirectConnectServiceClient(d.conn.HTTP, d.conn.URL)
	if _, err := dx.CreateConnection(ctx, connect.NewRequest(&pb.CreateConnectionRequest{Name: "dc1", Edge: "edge-1", Port: st.dxPort})); err != nil {
		return s, err
	}
	v, err := dx.CreateVirtualInterface(ctx, connect.NewRequest(&pb.CreateVirtualInterfaceRequest{Name: "dc1-vif", Connection: "dc1", Vlan: dcVLAN, CustomerAsn: 65101, VpnGateway: "red-vgw", HoldTime: 3}))
	if err != nil {
		return s, err
	}
	vif := v.Msg.VirtualInterface
	s.Wire = append(s.Wire, fmt.Sprintf("dx connection dc1 on edge-1 port %s; %s: VLAN %d, ASN %d ↔ %d, %s ↔ %s, MD5 on", st.dxPort, vif.Id, vif.Vlan, vif.AmazonAsn, vif.CustomerAsn, vif.AmazonAddress, vif.CustomerAddress))
	up, err := st.startDCSite(ctx, vif.Id, d.adminConfig, d.conn.URL)
	if err != nil {
		return s, err
	}
	s.Wire = append(s.Wire, "openvpc dx site (FRR configured with `dx vif config --format frr`): "+strings.TrimSuffix(up, "; Ctrl-C removes it"))
	// The office host is the one dx site says it serves on.
	_, rest, _ := strings.Cut(up, "serving http://")
	dcHost, err := netip.ParseAddr(strings.TrimRight(strings.Fields(rest + " ")[0], "/"))
	if err != nil {
		return s, fmt.Errorf("dx site's office host in %q: %w", up, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		g, err := dx.GetVirtualInterface(ctx, connect.NewRequest(&pb.GetVirtualInterfaceRequest{Ref: vif.Id}))
		if err != nil {
			return s, err
		}
		if st := g.Msg.VirtualInterface.GetStatus(); st.GetBgpState() == "established" && len(st.GetPrefixesReceived()) > 0 {
			s.Wire = append(s.Wire, fmt.Sprintf("BGP %s: received %v, advertised %v", st.BgpState, st.PrefixesReceived, st.PrefixesAdvertised))
			break
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("the BGP session of %s was not established with prefixes in 30 s: %v", vif.Id, g.Msg.VirtualInterface.GetStatus())
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		rt, err := d.vpc.GetRouteTable(ctx, connect.NewRequest(&pb.GetRouteTableRequest{Ref: d.vpcs["red"].MainRouteTableId}))
		if err != nil {
			return s, err
		}
		var found *pb.Route
		for _, r := range rt.Msg.RouteTable.Routes {
			if r.DestinationCidr == dcPrefix.String() && r.State == pb.RouteState_ROUTE_STATE_ACTIVE {
				found = r
			}
		}
		if found != nil {
			s.Wire = append(s.Wire, fmt.Sprintf("red's route table: %s → %s, propagated from %s (%s)", found.DestinationCidr, found.Target, found.VgwId, strings.ToLower(strings.TrimPrefix(found.Origin.String(), "ROUTE_ORIGIN_"))))
			break
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("red's route table has no active route to %s", dcPrefix)
		}
	}
	n, ok := d.agentOf(red).NIC(d.vpcOf(red).Vni, netip.MustParseAddr(red.PrivateIp))
	if !ok {
		return s, errors.New("red-1 has no NIC")
	}
	tap, err := tapVLAN(st.dxPort, netip.MustParseAddr(red.PrivateIp))
	if err != nil {
		return s, err
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: n.DialContext}}
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		resp, err := hc.Get("http://" + dcHost.String() + "/")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			f := tap.stop()
			var cs []string
			for _, v := range datapath.Verdicts() {
				e := d.cloud.Edges[0].Edge
				if n := e.In.Get(v); n > 0 {
					cs = append(cs, fmt.Sprintf("edge in %v=%d", v, n))
				}
				if n := e.Out.Get(v); n > 0 {
					cs = append(cs, fmt.Sprintf("edge out %v=%d", v, n))
				}
				if n := d.agentOf(red).Plane.Counters.Get(v); n > 0 {
					cs = append(cs, fmt.Sprintf("host-1 %v=%d", v, n))
				}
			}
			return s, fmt.Errorf("red-1 → the data centre: %w (tagged frame seen %v; counters %v)\n%s", err, f.vlan, cs, strings.Join(s.Wire, "\n"))
		}
	}
	frame := tap.stop()
	s.Wire = append(s.Wire, fmt.Sprintf("red-1 (%s) fetches http://%s/ and gets: %q", red.PrivateIp, dcHost, strings.TrimSpace(string(body))))
	if frame.vlan == 0 {
		s.Wire = append(s.Wire, fmt.Sprintf("on port %s: no tagged frame from red-1 seen", st.dxPort))
		s.Verdict = "no tag on the wire"
		return s, nil
	}
	s.Wire = append(s.Wire, fmt.Sprintf("on port %s, as edge-1 sends it: 802.1Q VLAN %d, inner IPv4 %v → %v, TTL %d, protocol %d", st.dxPort, frame.vlan, frame.src, frame.dst, frame.ttl, frame.proto))
	if strings.Contains(string(body), " to "+red.PrivateIp+",") && frame.vlan == uint16(dcVLAN) {
		s.Verdict = fmt.Sprintf("over Direct Connect, 802.1Q VLAN %d on the wire", frame.vlan)
	} else {
		s.Verdict = fmt.Sprintf("unexpected: VLAN %d", frame.vlan)
	}
	return s, nil
}

// tagged is the first frame from src read off a port: its VLAN id and
// inner IPv4 header.
type tagged struct {
	vlan       uint16
	src, dst   netip.Addr
	ttl, proto uint8
}

// vlanTap reads a port's frames with PACKET_AUXDATA: the kernel (or
// TC-eBPF) may keep the tag beside the frame rather than in it.
type vlanTap struct {
	fd   int
	src  netip.Addr
	done chan tagged
	quit chan struct{}
}

func tapVLAN(port string, src netip.Addr) (*vlanTap, error) {
	ifi, err := netInterface(port)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	tv := unix.Timeval{Usec: 100000}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	t := &vlanTap{fd: fd, src: src, done: make(chan tagged, 1), quit: make(chan struct{})}
	go t.read()
	return t, nil
}

func (t *vlanTap) read() {
	buf, oob := make([]byte, 2048), make([]byte, 256)
	var first tagged
	defer func() { t.done <- first }()
	for {
		select {
		case <-t.quit:
			return
		default:
		}
		n, oobn, _, _, err := unix.Recvmsg(t.fd, buf, oob, 0)
		if err != nil {
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			return
		}
		if first.vlan != 0 {
			continue
		}
		if f, ok := parseTagged(buf[:n], oob[:oobn]); ok && f.src == t.src {
			first = f
		}
	}
}

// parseTagged finds the 802.1Q tag of frame, in its auxiliary data or in
// the frame itself, and the IPv4 header after it.
func parseTagged(frame, oob []byte) (tagged, bool) {
	var f tagged
	if len(frame) < 14 {
		return f, false
	}
	et, ip := binary.BigEndian.Uint16(frame[12:14]), frame[14:]
	if msgs, err := unix.ParseSocketControlMessage(oob); err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
				aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
				if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
					f.vlan = aux.Vlan_tci & 0x0fff
				}
			}
		}
	}
	if f.vlan == 0 && et == 0x8100 && len(frame) >= 18 {
		f.vlan = binary.BigEndian.Uint16(frame[14:16]) & 0x0fff
		et, ip = binary.BigEndian.Uint16(frame[16:18]), frame[18:]
	}
	if f.vlan == 0 || et != 0x0800 || len(ip) < 20 || ip[0]>>4 != 4 {
		return f, false
	}
	f.src, f.dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	f.ttl, f.proto = ip[8], ip[9]
	return f, true
}

func (t *vlanTap) stop() tagged {
	time.Sleep(200 * time.Millisecond)
	close(t.quit)
	f := <-t.done
	unix.Close(t.fd)
	return f
}
