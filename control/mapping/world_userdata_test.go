package mapping

import (
	"testing"

	"github.com/openvpc/openvpc/control/store"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
)

// An instance's user data goes to the host it runs on alone: its change
// and its scope-add record carry it to that host, every other host gets
// the record without it, and the shared record is never written.
func TestUserDataOnlyToItsHost(t *testing.T) {
	w := newWorld()
	apply := func(r store.Record) *delta {
		t.Helper()
		d := newDelta(1)
		if err := w.apply(r, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	apply(rec(t, store.RecVPC, "vpc-a", &pb.Vpc{Id: "vpc-a", Vni: 100, Cidr: "10.0.0.0/16"}))
	inst := &pb.Instance{Id: "i-1", VpcId: "vpc-a", HostId: "h1", PrivateIp: "10.0.1.4", EniId: "eni-1",
		State: pb.InstanceState_INSTANCE_STATE_RUNNING, UserData: []byte("#!/bin/sh\necho hi\n")}
	d := apply(rec(t, store.RecInstance, "i-1", inst))
	if len(d.mappings["vpc-a"]) != 1 {
		t.Fatalf("changes %v", d.mappings)
	}
	c := d.mappings["vpc-a"][0]
	if got := w.forHost("h1", c).GetUpsertMapping().GetUserData(); string(got) != string(inst.UserData) {
		t.Errorf("its host gets %q", got)
	}
	if got := w.forHost("h2", c).GetUpsertMapping().GetUserData(); got != nil {
		t.Errorf("another host gets %q", got)
	}
	if c.GetUpsertMapping().UserData != nil {
		t.Error("the shared record carries the user data")
	}
	for host, want := range map[string]string{"h1": string(inst.UserData), "h2": ""} {
		var got string
		for _, ch := range w.fullVPC(host, "vpc-a", nil) {
			if r := ch.GetUpsertMapping(); r != nil {
				got = string(r.UserData)
			}
		}
		if got != want {
			t.Errorf("scope-add for %s: %q, want %q", host, got, want)
		}
	}
}
