package mapping_test

import (
	"slices"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/node"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/testcloud"
)

// edgeClients are the clients edge id uses, with an edge's certificate.
type edgeClients struct {
	Mapping openvpcv1connect.MappingServiceClient
	VPN     openvpcv1connect.VpnServiceClient
}

// vpnEdge registers id as an edge that can hold VPN tunnels and follows
// its subscription like a host.
func (w *world) vpnEdge(t *testing.T, id string, i int) (*testcloud.Host, edgeClients) {
	t.Helper()
	hc := pki.HTTPClient(nil)
	if creds := w.c.Credentials(id, pki.RoleEdge, addr(i)); creds != nil {
		hc = pki.HTTPClient(creds.ClientTLS())
	}
	cl := edgeClients{Mapping: openvpcv1connect.NewMappingServiceClient(hc, w.api.URL), VPN: openvpcv1connect.NewVpnServiceClient(hc, w.api.URL)}
	if _, err := cl.Mapping.Register(w.c.Ctx(), connect.NewRequest(&pb.RegisterRequest{HostId: id, UnderlayAddress: addr(i).String(),
		Role: pb.HostRole_HOST_ROLE_EDGE, Functions: []*pb.EdgeFunction{{Kind: pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN}}})); err != nil {
		t.Fatal(err)
	}
	h := &testcloud.Host{ID: id, Underlay: addr(i), Mirror: node.NewMirror()}
	h.Sub = &node.Subscriber{Client: cl.Mapping, HostID: id, Apply: h.Mirror.Apply, Heartbeat: w.c.Heartbeat, Log: w.c.Log}
	h.Connect()
	t.Cleanup(h.Disconnect)
	return h, cl
}

// vpnView is what host h holds of a VPN connection: the route red's main
// table has for the site, and which edges serve or stand by for vpn.
func vpnView(t *testing.T, h *testcloud.Host, red *pb.Vpc, vpn string) (route string, serving, standby []string) {
	t.Helper()
	st := h.Mirror.State()
	for _, rt := range st.VPCs[red.Vni].GetRouteTables() {
		if rt.Id != red.MainRouteTableId {
			continue
		}
		for _, r := range rt.Routes {
			if r.DestinationCidr == "192.168.50.0/24" {
				route = r.Target
			}
		}
	}
	for id, rec := range st.Hosts {
		for _, f := range rec.Functions {
			if f.Kind != pb.EdgeFunctionKind_EDGE_FUNCTION_KIND_VPN {
				continue
			}
			if slices.Contains(f.Targets, vpn) {
				serving = append(serving, id)
			}
			if slices.Contains(f.StandbyTargets, vpn) {
				standby = append(standby, id)
			}
		}
	}
	return route, serving, standby
}

// TestVPNPropagationReachesHosts: a VPN connection's static route reaches
// the hosts of its VPC only while a tunnel is up; hosts see the edge of
// the preferred tunnel serve the connection and the other up tunnel's
// edge stand by; the tunnel up the longest stays preferred, and when it
// goes down the other takes over. The edges hold the VPC.
func TestVPNPropagationReachesHosts(t *testing.T) {
	w := newWorld(t)
	ctx, vc := w.c.Ctx(), w.api.VPN
	a := w.c.AddHost(w.api.URL, "host-a", addr(1))
	w.run(t, "red-a", "host-a")
	e1, c1 := w.vpnEdge(t, "edge-1", 11)
	e2, c2 := w.vpnEdge(t, "edge-2", 12)
	clients := map[string]edgeClients{"edge-1": c1, "edge-2": c2}
	if _, err := vc.CreateCustomerGateway(ctx, connect.NewRequest(&pb.CreateCustomerGatewayRequest{Name: "office", IpAddress: "203.0.113.7"})); err != nil {
		t.Fatal(err)
	}
	if _, err := vc.CreateVpnGateway(ctx, connect.NewRequest(&pb.CreateVpnGatewayRequest{Name: "red-vgw"})); err != nil {
		t.Fatal(err)
	}
	if _, err := vc.AttachVpnGateway(ctx, connect.NewRequest(&pb.AttachVpnGatewayRequest{Ref: "red-vgw", Vpc: "red"})); err != nil {
		t.Fatal(err)
	}
	r, err := vc.CreateVpnConnection(ctx, connect.NewRequest(&pb.CreateVpnConnectionRequest{CustomerGateway: "office", VpnGateway: "red-vgw", StaticRoutesOnly: true}))
	if err != nil {
		t.Fatal(err)
	}
	conn := r.Msg.VpnConnection
	if _, err := vc.CreateVpnConnectionRoute(ctx, connect.NewRequest(&pb.CreateVpnConnectionRouteRequest{Ref: conn.Id, DestinationCidr: "192.168.50.0/24"})); err != nil {
		t.Fatal(err)
	}
	if _, err := vc.EnableRoutePropagation(ctx, connect.NewRequest(&pb.EnableRoutePropagationRequest{RouteTable: w.red.MainRouteTableId, VpnGateway: "red-vgw"})); err != nil {
		t.Fatal(err)
	}
	w.c.Converge(w.api, a, e1, e2)
	if route, serving, _ := vpnView(t, a, w.red, conn.Id); route != "" || len(serving) != 0 {
		t.Fatalf("no tunnel up: host-a has route %q and serving edges %v; want neither", route, serving)
	}
	for _, e := range []*testcloud.Host{e1, e2} {
		if _, ok := e.Mirror.State().VPCs[w.red.Vni]; !ok {
			t.Fatalf("%s, holding a tunnel into red, does not hold red", e.ID)
		}
	}
	g, err := vc.GetVpnConnection(ctx, connect.NewRequest(&pb.GetVpnConnectionRequest{Ref: conn.Id}))
	if err != nil {
		t.Fatal(err)
	}
	tun := g.Msg.VpnConnection.Tunnels
	report := func(n int, s pb.TunnelState) {
		t.Helper()
		if _, err := clients[tun[n].EdgeId].VPN.ReportTunnelState(ctx, connect.NewRequest(&pb.ReportTunnelStateRequest{
			EdgeId: tun[n].EdgeId, VpnConnectionId: conn.Id, Tunnel: uint32(n), Status: &pb.TunnelStatus{State: s}})); err != nil {
			t.Fatal(err)
		}
		w.c.Converge(w.api, a, e1, e2)
	}
	check := func(what string, wantServing, wantStandby []string) {
		t.Helper()
		route, serving, standby := vpnView(t, a, w.red, conn.Id)
		slices.Sort(serving)
		slices.Sort(standby)
		wantRoute := conn.Id
		if len(wantServing) == 0 {
			wantRoute = ""
		}
		if route != wantRoute || !slices.Equal(serving, wantServing) || !slices.Equal(standby, wantStandby) {
			t.Fatalf("%s: host-a has route to %q, serving %v, standby %v; want %q, %v, %v", what, route, serving, standby, wantRoute, wantServing, wantStandby)
		}
	}
	report(0, pb.TunnelState_TUNNEL_STATE_UP)
	check("tunnel 1 up", []string{tun[0].EdgeId}, nil)
	report(1, pb.TunnelState_TUNNEL_STATE_UP)
	check("both up: tunnel 1 (up longer) carries", []string{tun[0].EdgeId}, []string{tun[1].EdgeId})
	report(0, pb.TunnelState_TUNNEL_STATE_DOWN)
	check("tunnel 1 down: tunnel 2 carries", []string{tun[1].EdgeId}, nil)
	report(0, pb.TunnelState_TUNNEL_STATE_UP)
	check("tunnel 1 back: tunnel 2 still carries", []string{tun[1].EdgeId}, []string{tun[0].EdgeId})
	report(1, pb.TunnelState_TUNNEL_STATE_DOWN)
	report(0, pb.TunnelState_TUNNEL_STATE_DOWN)
	check("both down: withdrawn", nil, nil)
	// An edge may not report for another's tunnel.
	if _, err := clients[tun[1].EdgeId].VPN.ReportTunnelState(ctx, connect.NewRequest(&pb.ReportTunnelStateRequest{
		EdgeId: tun[0].EdgeId, VpnConnectionId: conn.Id, Tunnel: 0, Status: &pb.TunnelStatus{State: pb.TunnelState_TUNNEL_STATE_UP}})); err == nil {
		t.Fatal("an edge reported as another")
	}
}
