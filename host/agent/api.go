package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/packet"
)

// agentAPI serves AgentService: acting as one of this host's instances.
type agentAPI struct{ a *Agent }

var _ openvpcv1connect.AgentServiceHandler = agentAPI{}

// serveAPI listens on addr and serves AgentService until ctx ends; it
// returns the URL to register.
func (a *Agent) serveAPI(ctx context.Context, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("agent: API listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(openvpcv1connect.NewAgentServiceHandler(agentAPI{a}))
	mux.HandleFunc(ForwardPath, agentAPI{a}.forward)
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: p, ReadHeaderTimeout: 5 * time.Second}
	url, err := a.serveAPIOn(srv, ln)
	if err != nil {
		return "", err
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return url, nil
}

func (s agentAPI) instance(vni uint32, ip string) (nic.NIC, error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("instance address %q: %v", ip, err))
	}
	ns, ok := s.a.NIC(vni, addr)
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no instance %s (VNI %d) runs on host %s", ip, vni, s.a.HostID))
	}
	return ns, nil
}

// ForwardPath is where the agent upgrades an HTTP/1.1 connection into a
// TCP stream from inside one of its instances (a port-forward):
// GET ForwardPath?vni=V&ip=INSTANCE&to=ADDR:PORT with Upgrade: ForwardProtocol.
const (
	ForwardPath     = "/openvpc/forward"
	ForwardProtocol = "openvpc-forward"
)

func (s agentAPI) forward(w http.ResponseWriter, r *http.Request) {
	vni, err := strconv.ParseUint(r.URL.Query().Get("vni"), 10, 32)
	if err != nil {
		http.Error(w, "vni: "+err.Error(), http.StatusBadRequest)
		return
	}
	ns, err := s.instance(uint32(vni), r.URL.Query().Get("ip"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	up, err := ns.DialContext(ctx, "tcp", r.URL.Query().Get("to"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer up.Close()
	SpliceUpgraded(w, up)
}

// Splice copies both ways between a client (whose buffered bytes are in
// br) and an upstream connection until either side ends.
func Splice(client net.Conn, br io.Reader, upstream net.Conn) {
	done := make(chan struct{}, 2)
	go func() { io.Copy(upstream, br); done <- struct{}{} }()
	go func() { io.Copy(client, upstream); done <- struct{}{} }()
	<-done
}

func timeoutOf(ms int64) time.Duration {
	if ms <= 0 {
		return 2 * time.Second
	}
	return time.Duration(ms) * time.Millisecond
}

func (s agentAPI) Ping(ctx context.Context, req *connect.Request[pb.PingRequest]) (*connect.Response[pb.PingResponse], error) {
	m := req.Msg
	ns, err := s.instance(m.Vni, m.InstanceIp)
	if err != nil {
		return nil, err
	}
	to, err := netip.ParseAddr(m.To)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("ping target %q: %v", m.To, err))
	}
	count := max(1, min(m.Count, 100))
	if m.Source != "" && m.Source != m.InstanceIp {
		return s.forgedPing(m, to, count)
	}
	conn, err := ns.DialPing(netip.MustParseAddr(m.InstanceIp), to)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	defer conn.Close()
	resp := &pb.PingResponse{}
	buf := make([]byte, 1500)
	for seq := range count {
		echo := []byte{8, 0, 0, 0, 0x0f, 0x0c, byte(seq >> 8), byte(seq), 'o', 'p', 'e', 'n', 'v', 'p', 'c', '!'}
		start := time.Now()
		if _, err := conn.Write(echo); err != nil {
			return nil, connect.NewError(connect.CodeInternal, err)
		}
		resp.Sent++
		conn.SetReadDeadline(start.Add(timeoutOf(m.TimeoutMs)))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break // lost: the next one is sent
			}
			if n >= 8 && buf[0] == 0 && int32(buf[6])<<8|int32(buf[7]) == seq {
				resp.Received++
				resp.RttUs = append(resp.RttUs, time.Since(start).Microseconds())
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	return connect.NewResponse(resp), nil
}

// forgedPing crafts echo requests with a source address the instance may
// not own and puts them on its egress path, as a compromised instance
// would send them; it answers the data plane's verdict.
func (s agentAPI) forgedPing(m *pb.PingRequest, to netip.Addr, count int32) (*connect.Response[pb.PingResponse], error) {
	src, err := netip.ParseAddr(m.Source)
	if err != nil || !src.Is4() {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("source %q is not an IPv4 address", m.Source))
	}
	eni, ok := s.a.nics.eni(m.Vni, netip.MustParseAddr(m.InstanceIp))
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no instance %s on host %s", m.InstanceIp, s.a.HostID))
	}
	resp := &pb.PingResponse{}
	for seq := range count {
		pkt := make([]byte, packet.IPv4MinSize+packet.ICMPv4MinSize+8)
		packet.IPv4(pkt).Encode(&packet.IPv4Fields{TotalLen: uint16(len(pkt)), TTL: packet.DefaultTTL, Protocol: packet.ProtoICMP, Src: src, Dst: to})
		icmp := packet.ICMPv4(pkt[packet.IPv4MinSize:])
		icmp.SetType(packet.ICMPv4EchoRequest)
		icmp.SetIdent(0x0f0c)
		icmp.SetSeq(uint16(seq))
		copy(icmp.Payload(), "openvpc!")
		icmp.SetChecksum(icmp.ComputeChecksum())
		v, err := s.a.Plane.Send(eni, pkt)
		if err != nil {
			return nil, connect.NewError(connect.CodeInternal, err)
		}
		resp.Sent++
		if resp.Verdict == "" {
			resp.Verdict = v.String()
		}
	}
	return connect.NewResponse(resp), nil
}

func (s agentAPI) Connect(ctx context.Context, req *connect.Request[pb.ConnectRequest]) (*connect.Response[pb.ConnectResponse], error) {
	m := req.Msg
	ns, err := s.instance(m.Vni, m.InstanceIp)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeoutOf(m.TimeoutMs))
	defer cancel()
	start := time.Now()
	conn, err := ns.DialContext(ctx, "tcp", m.To)
	if err != nil {
		code := connect.CodeUnavailable
		if errors.Is(err, context.DeadlineExceeded) {
			code = connect.CodeDeadlineExceeded
		}
		return nil, connect.NewError(code, fmt.Errorf("connect from %s to %s: %v", m.InstanceIp, m.To, err))
	}
	conn.Close()
	return connect.NewResponse(&pb.ConnectResponse{LatencyUs: time.Since(start).Microseconds()}), nil
}
