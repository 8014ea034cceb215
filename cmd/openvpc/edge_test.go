package main

import (
	"strings"
	"testing"
)

type (
	igwJ struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		VpcID string `json:"vpcId"`
	}
	eipJ struct {
		AllocationID string `json:"allocationId"`
		Name         string `json:"name"`
		PublicIP     string `json:"publicIp"`
		InstanceID   string `json:"instanceId"`
		PrivateIP    string `json:"privateIp"`
	}
)

// TestInternetGatewaysAndElasticIPs drives the igw and eip commands on the
// real binary: the happy path, every rule (one igw per VPC, one ENI per
// EIP and one EIP per ENI, no release while associated, a pool that runs
// out) and what terminating an instance does to its Elastic IP.
func TestInternetGatewaysAndElasticIPs(t *testing.T) {
	// A /30 pool holds two usable addresses: .1 and .2.
	s := startServer(t, t.TempDir(), "--eip-pool", "198.51.100.0/30")
	s.registerHost(t, "host-a", "127.0.1.1")
	red := okJSON[vpcJ](t, s, "vpc", "create", "--name", "red", "--cidr", "10.0.0.0/16")
	blue := okJSON[vpcJ](t, s, "vpc", "create", "--name", "blue", "--cidr", "10.1.0.0/16")
	s.ok(t, "subnet", "create", "--vpc", "red", "--cidr", "10.0.1.0/24", "--name", "red-a")
	web := okJSON[instJ](t, s, "instance", "run", "--subnet", "red-a", "--host", "host-a", "--name", "web")
	app := okJSON[instJ](t, s, "instance", "run", "--subnet", "red-a", "--host", "host-a", "--name", "app")

	g := okJSON[igwJ](t, s, "igw", "create", "--name", "red-igw")
	if g.VpcID != "" {
		t.Fatalf("a new internet gateway is attached to %s", g.VpcID)
	}
	s.fail(t, "failed_precondition", []string{red.ID}, "route", "create", "--vpc", "red", "--dest", "0.0.0.0/0", "--target", "red-igw")
	if a := okJSON[igwJ](t, s, "igw", "attach", "red-igw", "--vpc", "red"); a.VpcID != red.ID {
		t.Fatalf("attached to %q, want %s", a.VpcID, red.ID)
	}
	s.ok(t, "igw", "create", "--name", "other")
	s.fail(t, "failed_precondition", []string{red.ID, g.ID, "at most one"}, "igw", "attach", "other", "--vpc", "red")
	s.fail(t, "failed_precondition", []string{g.ID, "detach it first"}, "igw", "attach", "red-igw", "--vpc", "blue")
	s.fail(t, "failed_precondition", []string{g.ID, blue.ID}, "route", "create", "--vpc", "blue", "--dest", "0.0.0.0/0", "--target", "red-igw")
	rt := okJSON[rtbJ](t, s, "route", "create", "--vpc", "red", "--dest", "0.0.0.0/0", "--target", "red-igw")
	if r := rt.Routes[len(rt.Routes)-1]; r.Target != g.ID || r.State != "active" {
		t.Fatalf("route to the igw is %+v, want active to %s", r, g.ID)
	}
	s.fail(t, "failed_precondition", []string{g.ID, "detach it first"}, "igw", "delete", "red-igw")

	a := okJSON[eipJ](t, s, "eip", "allocate", "--name", "web-ip")
	b := okJSON[eipJ](t, s, "eip", "allocate")
	if a.PublicIP != "198.51.100.1" || b.PublicIP != "198.51.100.2" {
		t.Fatalf("allocated %s and %s, want the pool's lowest free addresses 198.51.100.1 and .2", a.PublicIP, b.PublicIP)
	}
	s.fail(t, "failed_precondition", []string{"198.51.100.0/30", "release one"}, "eip", "allocate")
	if e := okJSON[eipJ](t, s, "eip", "associate", "web-ip", "--instance", "web"); e.InstanceID != web.ID || e.PrivateIP != web.PrivateIP {
		t.Fatalf("associated to %s/%s, want %s/%s", e.InstanceID, e.PrivateIP, web.ID, web.PrivateIP)
	}
	if got := okJSON[instJ](t, s, "instance", "get", "web"); got.ID != web.ID {
		t.Fatal("instance get web failed")
	}
	s.fail(t, "failed_precondition", []string{a.PublicIP, web.ID, "disassociate it first"}, "eip", "associate", "web-ip", "--instance", "app")
	s.fail(t, "failed_precondition", []string{web.ID, a.PublicIP}, "eip", "associate", b.PublicIP, "--instance", "web")
	s.fail(t, "failed_precondition", []string{a.PublicIP, "disassociate it first"}, "eip", "release", "web-ip")
	s.fail(t, "not_found", []string{"203.0.113.9"}, "eip", "associate", "203.0.113.9", "--instance", "web")

	// Move it: disassociate, associate elsewhere by address.
	if e := okJSON[eipJ](t, s, "eip", "disassociate", a.PublicIP); e.InstanceID != "" {
		t.Fatalf("still associated with %s", e.InstanceID)
	}
	s.ok(t, "eip", "associate", a.AllocationID, "--instance", "app")
	// Terminating an instance frees its Elastic IP, which stays allocated.
	s.ok(t, "instance", "terminate", "app")
	list := okJSON[[]eipJ](t, s, "eip", "list")
	if len(list) != 2 || list[0].PublicIP != a.PublicIP || list[0].InstanceID != "" {
		t.Fatalf("after terminating app, eip list = %+v; want %s allocated and free", list, a.PublicIP)
	}
	_ = app
	s.ok(t, "eip", "release", "web-ip")
	s.ok(t, "eip", "release", b.AllocationID)
	if list := okJSON[[]eipJ](t, s, "eip", "list"); len(list) != 0 {
		t.Fatalf("eip list after release = %+v", list)
	}

	// Detached: the route stays, as a blackhole, and the VPC can go once
	// its gateway and subnets have.
	s.ok(t, "igw", "detach", "red-igw")
	rtb := okJSON[rtbJ](t, s, "route-table", "get", red.MainRouteTableID)
	if r := rtb.Routes[len(rtb.Routes)-1]; r.State != "blackhole" {
		t.Fatalf("route to a detached igw is %+v, want a blackhole", r)
	}
	s.ok(t, "igw", "delete", "red-igw")
	if gs := okJSON[[]igwJ](t, s, "igw", "list"); len(gs) != 1 || gs[0].Name != "other" {
		t.Fatalf("igw list = %+v, want only other", gs)
	}
}

// TestNoEIPPool: a server without a pool says how to configure one, and
// one given a pool that is not a CIDR block refuses to start.
func TestNoEIPPool(t *testing.T) {
	s := startServer(t, t.TempDir())
	s.fail(t, "failed_precondition", []string{"--eip-pool"}, "eip", "allocate")
	r := runCLI(t, nil, "server", "--listen", freeAddr(t), "--data-dir", t.TempDir(), "--eip-pool", "198.51.100.7/24")
	if r.code == 0 || !strings.Contains(r.stderr, "198.51.100.0/24") {
		t.Fatalf("server with --eip-pool 198.51.100.7/24: want a refusal naming a CIDR block such as 198.51.100.0/24; got %v", r)
	}
}
