package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/drain"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/node/forward"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/pki"
)

// nodeAPI serves AgentService: the node's flows and traces, and on a host
// acting as one of its instances.
type nodeAPI struct {
	n *Node
	r Role
	// stopping ends when the API server closes: port-forwards, hijacked
	// from the HTTP server, end with it.
	stopping context.Context
}

var _ openvpcv1connect.AgentServiceHandler = nodeAPI{}

// apiServer is the node API's HTTP server on its listener. It counts the
// handlers running, so that close can wait for them: a port-forward's
// handler runs as long as the forward, which the HTTP server no longer
// tracks once it is hijacked.
type apiServer struct {
	srv  *http.Server
	ln   net.Listener
	tls  bool
	stop context.CancelFunc

	handlers drain.Handlers
}

// listenAPI listens on n.API and returns the server to serve there and
// the URL to register: over TLS to openvpc servers only when the node has
// credentials, else in cleartext (--insecure-loopback clouds, on
// loopback).
func (n *Node) listenAPI(r Role) (*apiServer, string, error) {
	ln, err := net.Listen("tcp", n.API)
	if err != nil {
		return nil, "", fmt.Errorf("node: API listen on %s: %w", n.API, err)
	}
	stopping, stop := context.WithCancel(context.Background())
	mux := http.NewServeMux()
	api := nodeAPI{n, r, stopping}
	mux.Handle(openvpcv1connect.NewAgentServiceHandler(api))
	mux.HandleFunc(forward.Path, api.forward)
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	s := &apiServer{ln: ln, stop: stop}
	s.srv = &http.Server{Handler: s.track(mux), Protocols: p, ReadHeaderTimeout: 5 * time.Second}
	if n.Creds == nil {
		if ip, err := netip.ParseAddrPort(ln.Addr().String()); err != nil || !ip.Addr().IsLoopback() {
			ln.Close()
			stop()
			return nil, "", fmt.Errorf("node: without credentials the node API is served only on loopback, not %s", ln.Addr())
		}
		return s, "http://" + ln.Addr().String(), nil
	}
	s.tls = true
	s.srv.TLSConfig = pki.AgentServerTLS(n.Creds.Current, n.Creds.Pool)
	// Refused handshakes (callers that are not servers) land here.
	s.srv.ErrorLog = slog.NewLogLogger(n.Logger.Handler(), slog.LevelWarn)
	s.srv.Protocols.SetHTTP2(true)
	return s, "https://" + ln.Addr().String(), nil
}

// serve serves until close.
func (s *apiServer) serve() error {
	var err error
	if s.tls {
		err = s.srv.ServeTLS(s.ln, "", "")
	} else {
		err = s.srv.Serve(s.ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("node: API on %s: %w", s.ln.Addr(), err)
}

// track counts the handlers running and refuses requests once closing.
func (s *apiServer) track(h http.Handler) http.Handler {
	return s.handlers.Track(h, "node: shutting down")
}

// close ends the server and every request it serves (a port-forward runs
// as long as its client wants: it ends here, not by itself), and waits
// for their handlers.
func (s *apiServer) close() error {
	s.handlers.Close()
	s.stop()
	err := s.srv.Close()
	s.handlers.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

func (s nodeAPI) instance(vni uint32, ip string) (Instance, error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("instance address %q: %v", ip, err))
	}
	var inst Instance
	ok := false
	if s.r.Instances != nil {
		inst, ok = s.r.Instances.Instance(vni, addr)
	}
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no instance %s (VNI %d) runs on host %s", ip, vni, s.n.HostID))
	}
	return inst, nil
}

func (s nodeAPI) forward(w http.ResponseWriter, r *http.Request) {
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
	defer context.AfterFunc(s.stopping, func() { up.Close() })()
	forward.SpliceUpgraded(w, up)
}

func timeoutOf(ms int64) time.Duration {
	if ms <= 0 {
		return 2 * time.Second
	}
	return time.Duration(ms) * time.Millisecond
}

func (s nodeAPI) Ping(ctx context.Context, req *connect.Request[pb.PingRequest]) (*connect.Response[pb.PingResponse], error) {
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
	// A read waits up to the caller's timeout; a canceled call (the node
	// stopping) must not.
	defer context.AfterFunc(ctx, func() { conn.Close() })()
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
func (s nodeAPI) forgedPing(m *pb.PingRequest, to netip.Addr, count int32) (*connect.Response[pb.PingResponse], error) {
	src, err := netip.ParseAddr(m.Source)
	if err != nil || !src.Is4() {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("source %q is not an IPv4 address", m.Source))
	}
	inst, err := s.instance(m.Vni, m.InstanceIp)
	if err != nil {
		return nil, err
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
		v, err := inst.Send(pkt)
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

func (s nodeAPI) Connect(ctx context.Context, req *connect.Request[pb.ConnectRequest]) (*connect.Response[pb.ConnectResponse], error) {
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
