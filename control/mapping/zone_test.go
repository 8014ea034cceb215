package mapping_test

import (
	"strings"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// TestZonesReachHosts: a private hosted zone is a fact of every VPC it is
// associated with — hosts in scope of each hold its records, a host
// outside does not, association and disassociation move it — and a
// mutation with wait returns only once every host in scope acknowledged
// it (a disconnected host makes the wait time out, naming it).
func TestZonesReachHosts(t *testing.T) {
	w := newWorld(t)
	ctx, zc := w.c.Ctx(), w.api.Zone
	url := w.api.URL
	a, b := w.c.AddHost(url, "host-a", addr(1)), w.c.AddHost(url, "host-b", addr(2))
	w.run(t, "red-a", "host-a")
	w.run(t, "yellow-a", "host-b")
	w.c.Converge(w.api, a, b)

	z, err := zc.CreateZone(ctx, connect.NewRequest(&pb.CreateZoneRequest{Name: "corp.example", Vpcs: []string{"red"}}))
	if err != nil {
		t.Fatal(err)
	}
	// With wait, host-a holds the record when the call returns: no Converge.
	if _, err := zc.AddZoneRecord(ctx, connect.NewRequest(&pb.AddZoneRecordRequest{Ref: z.Msg.Zone.Id, Name: "www", Type: "A", Value: "10.0.1.9", Wait: true})); err != nil {
		t.Fatal(err)
	}
	got := facts(t, a, w.red.Vni).Zones
	if len(got) != 1 || got[0].Name != "corp.example" || len(got[0].Records) != 1 || got[0].Records[0].Name != "www.corp.example" || got[0].Records[0].Ttl != 300 {
		t.Fatalf("red's zones on host-a: %v", got)
	}
	if got := facts(t, b, w.yellow.Vni).Zones; len(got) != 0 {
		t.Fatalf("yellow's zones on host-b: %v, want none", got)
	}
	w.c.Converge(w.api, a, b)

	if _, err := zc.AssociateZone(ctx, connect.NewRequest(&pb.AssociateZoneRequest{Ref: "corp.example", Vpc: "yellow", Wait: true})); err != nil {
		t.Fatal(err)
	}
	if got := facts(t, b, w.yellow.Vni).Zones; len(got) != 1 || len(got[0].Records) != 1 {
		t.Fatalf("yellow's zones on host-b once associated: %v", got)
	}
	w.c.Converge(w.api, a, b)

	// host-b away: a change of yellow's zone is not done until it is back.
	b.Disconnect()
	_, err = zc.AddZoneRecord(ctx, connect.NewRequest(&pb.AddZoneRecordRequest{Ref: "corp.example", Name: "db", Type: "A", Value: "10.0.1.10", Wait: true, TimeoutMs: 300}))
	if connect.CodeOf(err) != connect.CodeDeadlineExceeded || !strings.Contains(err.Error(), "host-b") {
		t.Fatalf("wait with host-b away: %v", err)
	}
	b.Connect()
	w.c.Converge(w.api, a, b)
	if got := facts(t, b, w.yellow.Vni).Zones; len(got) != 1 || len(got[0].Records) != 2 {
		t.Fatalf("host-b back: %v", got)
	}

	if _, err := zc.DisassociateZone(ctx, connect.NewRequest(&pb.DisassociateZoneRequest{Ref: "corp.example", Vpc: "yellow", Wait: true})); err != nil {
		t.Fatal(err)
	}
	if got := facts(t, b, w.yellow.Vni).Zones; len(got) != 0 {
		t.Fatalf("yellow's zones on host-b once disassociated: %v", got)
	}
	if _, err := zc.DeleteZone(ctx, connect.NewRequest(&pb.DeleteZoneRequest{Ref: "corp.example", Wait: true})); err != nil {
		t.Fatal(err)
	}
	if got := facts(t, a, w.red.Vni).Zones; len(got) != 0 {
		t.Fatalf("red's zones on host-a once deleted: %v", got)
	}
	w.c.Converge(w.api, a, b)
}
