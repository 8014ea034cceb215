package mapping_test

import (
	"testing"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// TestEndpointsReachHosts: an endpoint reaches the hosts of its VPC —
// its facts and its route, expanded to the service's CIDRs — and only
// those; the service re-registering with another CIDR, the endpoint
// moving between route tables and its deletion reach them too, each
// time exactly as the store says (testcloud.Expected).
func TestEndpointsReachHosts(t *testing.T) {
	w := newWorld(t)
	ctx, ep := w.c.Ctx(), w.api.Endpt
	url := w.api.URL
	a, b := w.c.AddHost(url, "host-a", addr(1)), w.c.AddHost(url, "host-b", addr(2))
	w.run(t, "red-a", "host-a")
	w.run(t, "yellow-a", "host-b")
	reg := func(cidrs ...string) {
		t.Helper()
		if _, err := ep.RegisterService(ctx, connect.NewRequest(&pb.RegisterServiceRequest{Name: "com.openvpc.test.s3", Cidrs: cidrs, NodeAddresses: []string{"127.0.1.250"}})); err != nil {
			t.Fatal(err)
		}
	}
	reg("203.0.113.128/28")
	r, err := ep.CreateVpcEndpoint(ctx, connect.NewRequest(&pb.CreateVpcEndpointRequest{Vpc: "red", ServiceName: "com.openvpc.test.s3", RouteTables: []string{w.red.MainRouteTableId}}))
	if err != nil {
		t.Fatal(err)
	}
	id := r.Msg.Endpoint.Id
	w.c.Converge(w.api, a, b)
	if f := facts(t, a, w.red.Vni); len(f.Endpoints) != 1 || f.Endpoints[0].Id != id {
		t.Fatalf("host-a holds red's endpoints %v", f.Endpoints)
	}
	if f := facts(t, b, w.yellow.Vni); len(f.Endpoints) != 0 {
		t.Fatalf("host-b holds yellow's endpoints %v", f.Endpoints)
	}
	routesTo := func() int {
		n := 0
		for _, rt := range facts(t, a, w.red.Vni).RouteTables {
			for _, r := range rt.Routes {
				if r.Target == id && r.DestinationPrefixListId == "" && r.DestinationCidr != "" {
					n++
				}
			}
		}
		return n
	}
	if n := routesTo(); n != 1 {
		t.Fatalf("host-a holds %d routes to %s, want the service's one CIDR", n, id)
	}
	reg("203.0.113.128/28", "192.0.2.64/28")
	w.c.Converge(w.api, a, b)
	if n := routesTo(); n != 2 {
		t.Fatalf("host-a holds %d routes to %s, want the service's two CIDRs", n, id)
	}
	if _, err := ep.ModifyVpcEndpoint(ctx, connect.NewRequest(&pb.ModifyVpcEndpointRequest{Id: id, RemoveRouteTables: []string{w.red.MainRouteTableId}})); err != nil {
		t.Fatal(err)
	}
	w.c.Converge(w.api, a, b)
	if n := routesTo(); n != 0 {
		t.Fatalf("host-a holds %d routes to %s after the main table was removed", n, id)
	}
	if _, err := ep.DeleteVpcEndpoint(ctx, connect.NewRequest(&pb.DeleteVpcEndpointRequest{Id: id})); err != nil {
		t.Fatal(err)
	}
	w.c.Converge(w.api, a, b)
	if f := facts(t, a, w.red.Vni); len(f.Endpoints) != 0 {
		t.Fatalf("host-a still holds %v", f.Endpoints)
	}
}
