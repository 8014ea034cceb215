package store

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

func TestDirectConnectResources(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	if _, err := s.RegisterHost(ctx, "edge-1", netip.MustParseAddr("127.0.1.10"), pb.HostRole_HOST_ROLE_EDGE, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RegisterHost(ctx, "host-1", netip.MustParseAddr("127.0.1.11"), pb.HostRole_HOST_ROLE_HOST, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDXConnection(ctx, "x", "nowhere", "eth1"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("connection on an unknown edge: %v", err)
	}
	if _, err := s.CreateDXConnection(ctx, "x", "host-1", "eth1"); !errors.Is(err, model.ErrPrecondition) {
		t.Fatalf("connection on a host: %v", err)
	}
	vg, err := s.CreateVpnGateway(ctx, "vg", 64512)
	if err != nil {
		t.Fatal(err)
	}
	vgwID := vg.Id
	con, err := s.CreateDXConnection(ctx, "dc", "edge-1", "eth1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDXConnection(ctx, "dc2", "edge-1", "eth1"); !errors.Is(err, model.ErrExists) {
		t.Fatalf("second connection on one port: %v", err)
	}
	if _, err := s.CreateDXConnection(ctx, "dc", "edge-1", "eth2"); !errors.Is(err, model.ErrExists) {
		t.Fatalf("second connection named dc: %v", err)
	}
	vif := func(name string, vlan uint32) *pb.DxVirtualInterface {
		return &pb.DxVirtualInterface{Id: model.NewID(model.KindDirectConnect), Name: name, ConnectionId: "dc", Vlan: vlan, CustomerAsn: 65000,
			AmazonAddress: "169.254.1.1/30", CustomerAddress: "169.254.1.2/30", AuthKey: "secret-key", VpnGatewayId: "vg", HoldTime: 90}
	}
	v, err := s.CreateDXVIF(ctx, vif("a", 101))
	if err != nil {
		t.Fatal(err)
	}
	if v.ConnectionId != con.Id || v.AmazonAsn != model.DefaultAmazonASN {
		t.Fatalf("vif %+v: connection not resolved or ASN not defaulted", v)
	}
	if _, err := s.CreateDXVIF(ctx, vif("b", 101)); !errors.Is(err, model.ErrExists) {
		t.Fatalf("second VIF on VLAN 101: %v", err)
	}
	if _, err := s.CreateDXVIF(ctx, vif("b", 102)); err != nil {
		t.Fatal(err)
	}
	same := vif("c", 103)
	same.CustomerAsn = model.DefaultAmazonASN
	if _, err := s.CreateDXVIF(ctx, same); !errors.Is(err, model.ErrInvalid) {
		t.Fatalf("customer ASN = Amazon ASN: %v", err)
	}
	if err := s.DeleteDXConnection(ctx, "dc"); !errors.Is(err, model.ErrPrecondition) {
		t.Fatalf("delete a connection with VIFs: %v", err)
	}
	// Status: only the connection's edge reports it.
	st := &pb.DxBgpStatus{BgpState: "established", PrefixesReceived: []string{"192.0.2.0/24"}}
	if err := s.SetDXVIFStatus(ctx, "a", "edge-2", st); !errors.Is(err, model.ErrPrecondition) {
		t.Fatalf("status from another edge: %v", err)
	}
	if err := s.SetDXVIFStatus(ctx, "a", "edge-1", st); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetDXVIF(ctx, "a")
	if err != nil || got.Status.GetBgpState() != "established" || got.Status.Edge != "edge-1" {
		t.Fatalf("get after report: %+v %v", got, err)
	}
	// An established session propagates what it learned into its vgw;
	// down, it withdraws it.
	props := func() []string {
		ps, err := s.ListPropagatedRoutes(ctx, vgwID)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range ps {
			if p.SourceId == v.Id && p.Origin == pb.RouteOrigin_ROUTE_ORIGIN_DIRECT_CONNECT {
				out = append(out, p.Prefixes...)
			}
		}
		return out
	}
	if got := props(); len(got) != 1 || got[0] != "192.0.2.0/24" {
		t.Fatalf("propagated %v, want 192.0.2.0/24", got)
	}
	if err := s.SetDXVIFStatus(ctx, "a", "edge-1", &pb.DxBgpStatus{BgpState: "active", PrefixesReceived: []string{"192.0.2.0/24"}}); err != nil {
		t.Fatal(err)
	}
	if got := props(); len(got) != 0 {
		t.Fatalf("a session down still propagates %v", got)
	}
	evs, err := s.ListEvents(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(evs, func(e *pb.SecurityEvent) bool {
		return e.Reason == ReasonDXSessionDown && e.Operational && strings.Contains(e.Detail, v.Id)
	}) {
		t.Fatalf("no operational event for the session going down: %v", evs)
	}
	if err := s.SetDXVIFStatus(ctx, "a", "edge-1", st); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListDXVIFs(ctx, "dc")
	if err != nil || len(all) != 2 {
		t.Fatalf("list: %d %v", len(all), err)
	}
	for _, n := range []string{"a", "b"} {
		if err := s.DeleteDXVIF(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if got := props(); len(got) != 0 {
		t.Fatalf("a deleted VIF still propagates %v", got)
	}
	if _, err := s.CreateDXVIF(ctx, vif("a", 101)); err != nil {
		t.Fatalf("VLAN 101 not free again after delete: %v", err)
	}
	if err := s.DeleteDXVIF(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDXConnection(ctx, "dc"); err != nil {
		t.Fatal(err)
	}

	// Gateways.
	gw, err := s.CreateDXGateway(ctx, "gw", 65100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AssociateDXGateway(ctx, "gw", "vg", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AssociateDXGateway(ctx, "gw", "vg", true); !errors.Is(err, model.ErrExists) {
		t.Fatalf("associate twice: %v", err)
	}
	if err := s.DeleteDXGateway(ctx, gw.Id); !errors.Is(err, model.ErrPrecondition) {
		t.Fatalf("delete an associated gateway: %v", err)
	}
	if _, err := s.AssociateDXGateway(ctx, "gw", "vg", false); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDXGateway(ctx, gw.Id); err != nil {
		t.Fatal(err)
	}
}

// TestDirectConnectOverVPN: one site prefix from a VIF and from a VPN
// connection's static routes: the route table carries it over Direct
// Connect while the session is up, over the VPN when it goes down, and
// over Direct Connect again when it comes back (AWS's priority).
func TestDirectConnectOverVPN(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	if _, err := s.RegisterHost(ctx, "edge-1", netip.MustParseAddr("127.0.1.10"), pb.HostRole_HOST_ROLE_EDGE, ""); err != nil {
		t.Fatal(err)
	}
	vpc, err := s.CreateVPC(ctx, "red", netip.MustParsePrefix("10.20.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	vg, err := s.CreateVpnGateway(ctx, "vg", 64512)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AttachVpnGateway(ctx, vg.Id, vpc.Id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnableRoutePropagation(ctx, vpc.MainRouteTableId, vg.Id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDXConnection(ctx, "dc", "edge-1", "eth1"); err != nil {
		t.Fatal(err)
	}
	v, err := s.CreateDXVIF(ctx, &pb.DxVirtualInterface{Id: model.NewID(model.KindDirectConnect), ConnectionId: "dc", Vlan: 101, CustomerAsn: 65000,
		AmazonAddress: "169.254.1.1/30", CustomerAddress: "169.254.1.2/30", AuthKey: "secret-key", VpnGatewayId: vg.Id, HoldTime: 90})
	if err != nil {
		t.Fatal(err)
	}
	// The VPN's static route for the same prefix, as the VPN work
	// propagates it (its usability is its own business: a source that is
	// no VIF and no VPN connection counts as usable here).
	const vpnID = "vpn-00000000000000a1"
	if err := s.SetPropagatedRoutes(ctx, vg.Id, vpnID, pb.RouteOrigin_ROUTE_ORIGIN_VPN_STATIC, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}); err != nil {
		t.Fatal(err)
	}
	active := func() string {
		t.Helper()
		props, err := s.ListPropagatedRoutes(ctx, vg.Id)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range ActiveRoutes(EffectiveRoutes(nil, props, func(string) (bool, string) { return true, "" })) {
			if r.DestinationCidr == "192.0.2.0/24" {
				return r.Target
			}
		}
		return ""
	}
	up := &pb.DxBgpStatus{BgpState: "established", PrefixesReceived: []string{"192.0.2.0/24"}}
	for i, step := range []struct {
		st   *pb.DxBgpStatus
		want string
	}{{up, v.Id}, {&pb.DxBgpStatus{BgpState: "active"}, vpnID}, {up, v.Id}} {
		if err := s.SetDXVIFStatus(ctx, v.Id, "edge-1", step.st); err != nil {
			t.Fatal(err)
		}
		if got := active(); got != step.want {
			t.Fatalf("step %d (session %s): 192.0.2.0/24 → %q, want %q", i, step.st.BgpState, got, step.want)
		}
	}
}
