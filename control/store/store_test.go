package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/model"
)

// One embedded etcd serves the whole package; each test gets its own key
// prefix, so tests are isolated and fast.
var testEndpoint string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "openvpc-store-test")
	if err != nil {
		panic(err)
	}
	e, err := StartEmbedded(EmbedConfig{Dir: dir, Name: "test"})
	if err != nil {
		panic(err)
	}
	testEndpoint = "http://" + e.Clients[0].Addr().String()
	code := m.Run()
	e.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

var prefixes atomic.Int64

func newTestStore(t testing.TB) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Endpoints = []string{testEndpoint}
	cfg.Prefix = fmt.Sprintf("/test-%d-%d/", time.Now().UnixNano(), prefixes.Add(1))
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// wantKind fails unless err wraps kind and its message contains every part.
func wantKind(t *testing.T, err, kind error, parts ...string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error %v: want kind %v", err, kind)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not mention %q", err, p)
		}
	}
}

// fixture is a VPC with one subnet and two registered hosts.
type fixture struct {
	s      *Store
	vpc    *pb.Vpc
	subnet *pb.Subnet
}

func newFixture(t *testing.T, cidr, subnet string) fixture {
	t.Helper()
	s := newTestStore(t)
	c := ctx(t)
	vpc, err := s.CreateVPC(c, "red", mustPrefix(cidr))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := s.CreateSubnet(c, "red", mustPrefix(subnet), "red-a", "")
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range []string{"host-a", "host-b"} {
		if _, err := s.RegisterHost(c, h, netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)}), pb.HostRole_HOST_ROLE_HOST, ""); err != nil {
			t.Fatal(err)
		}
	}
	return fixture{s, vpc, sn}
}

func TestVPCLifecycle(t *testing.T) {
	s := newTestStore(t)
	c := ctx(t)
	vpc, err := s.CreateVPC(c, "red", mustPrefix("10.0.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	if !model.IsID(model.KindVPC, vpc.Id) || vpc.Vni == 0 || vpc.Vni > model.MaxVNI {
		t.Fatalf("bad vpc %v", vpc)
	}
	for _, ref := range []string{"red", vpc.Id} {
		got, err := s.GetVPC(c, ref)
		if err != nil || got.Id != vpc.Id {
			t.Fatalf("GetVPC(%q) = %v, %v", ref, got, err)
		}
	}
	rtb, err := s.GetRouteTable(c, vpc.MainRouteTableId)
	if err != nil {
		t.Fatal(err)
	}
	if !rtb.Main || len(rtb.Routes) != 1 || rtb.Routes[0].Target != LocalTarget || rtb.Routes[0].DestinationCidr != "10.0.0.0/16" {
		t.Fatalf("main route table %v", rtb)
	}
	_, err = s.CreateVPC(c, "red", mustPrefix("10.1.0.0/16"))
	wantKind(t, err, model.ErrExists, `"red"`, vpc.Id)
	if err := s.DeleteVPC(c, "red"); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetVPC(c, "red")
	wantKind(t, err, model.ErrNotFound)
	_, err = s.GetRouteTable(c, vpc.MainRouteTableId)
	wantKind(t, err, model.ErrNotFound)
	// The name is free again.
	if _, err := s.CreateVPC(c, "red", mustPrefix("10.0.0.0/16")); err != nil {
		t.Fatal(err)
	}
}

func TestVNIsAreUnique(t *testing.T) {
	s := newTestStore(t)
	c := ctx(t)
	seen := map[uint32]bool{}
	for i := range 50 {
		v, err := s.CreateVPC(c, fmt.Sprintf("v%d", i), mustPrefix("10.0.0.0/16"))
		if err != nil {
			t.Fatal(err)
		}
		if seen[v.Vni] {
			t.Fatalf("VNI %d allocated twice", v.Vni)
		}
		seen[v.Vni] = true
	}
}

func TestSubnetRules(t *testing.T) {
	f := newFixture(t, "10.1.0.0/16", "10.1.1.0/24")
	c := ctx(t)
	_, err := f.s.CreateSubnet(c, "red", mustPrefix("10.1.0.0/23"), "", "")
	wantKind(t, err, model.ErrExists, "10.1.0.0/23 overlaps", f.subnet.Id, "10.1.1.0/24")
	_, err = f.s.CreateSubnet(c, "red", mustPrefix("10.2.0.0/24"), "", "")
	wantKind(t, err, model.ErrInvalid, "not inside VPC")
	_, err = f.s.CreateSubnet(c, "nope", mustPrefix("10.1.2.0/24"), "", "")
	wantKind(t, err, model.ErrNotFound, `"nope"`)
	_, err = f.s.CreateSubnet(c, "red", mustPrefix("10.1.2.0/24"), "red-a", "")
	wantKind(t, err, model.ErrExists, "red-a")
	sn, err := f.s.CreateSubnet(c, "red", mustPrefix("10.1.2.0/24"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if sn.Gateway != "10.1.2.1" || sn.RouteTableId != f.vpc.MainRouteTableId {
		t.Fatalf("subnet %v", sn)
	}
	err = f.s.DeleteVPC(c, "red")
	wantKind(t, err, model.ErrPrecondition, f.subnet.Id, sn.Id)
}

func TestIPAMLowestFreeAndReserved(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/28")
	c := ctx(t)
	run := func(ip string) (*pb.Instance, error) {
		spec := RunSpec{Subnet: "red-a", Host: "host-a"}
		if ip != "" {
			spec.IP = netip.MustParseAddr(ip)
		}
		return f.s.RunInstance(c, spec)
	}
	a, err := run("")
	if err != nil || a.PrivateIp != "10.0.1.4" {
		t.Fatalf("first = %v, %v; want 10.0.1.4", a, err)
	}
	b, _ := run("")
	if b.PrivateIp != "10.0.1.5" {
		t.Fatalf("second = %s", b.PrivateIp)
	}
	if _, err := run("10.0.1.9"); err != nil {
		t.Fatal(err)
	}
	_, err = run("10.0.1.9")
	wantKind(t, err, model.ErrExists, "10.0.1.9", "in use")
	for _, bad := range []string{"10.0.1.1", "10.0.1.3", "10.0.1.15", "10.0.2.4"} {
		_, err = run(bad)
		wantKind(t, err, model.ErrInvalid, bad)
	}
	if _, err := f.s.TerminateInstance(c, a.Id); err != nil {
		t.Fatal(err)
	}
	// .4 is free again; lowest wins.
	again, err := run("")
	if err != nil || again.PrivateIp != "10.0.1.4" {
		t.Fatalf("after terminate = %v, %v", again, err)
	}
	// Fill the /28: usable .4–.14 is eleven addresses.
	n := 0
	for {
		if _, err := run(""); err != nil {
			wantKind(t, err, model.ErrPrecondition, "no free addresses")
			break
		}
		n++
	}
	if used := 3 + n; used != 11 {
		t.Fatalf("subnet held %d instances, want 11", used)
	}
	if a.Mac != model.MAC(f.vpc.Vni, netip.MustParseAddr("10.0.1.4")) {
		t.Fatalf("mac %s", a.Mac)
	}
}

// TestConcurrentRunsNeverCollide runs many instances at once against one
// subnet: every address is unique and none is lost.
func TestConcurrentRunsNeverCollide(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.0.0/22")
	c := ctx(t)
	const clients, each = 32, 12
	type result struct {
		inst *pb.Instance
		err  error
	}
	results := make(chan result, clients*each)
	for w := range clients {
		go func() {
			for i := range each {
				name := ""
				if i%3 == 0 {
					name = fmt.Sprintf("w%d-%d", w, i)
				}
				inst, err := f.s.RunInstance(c, RunSpec{Subnet: f.subnet.Id, Name: name})
				results <- result{inst, err}
			}
		}()
	}
	ips, ids := map[string]string{}, map[string]bool{}
	for range clients * each {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if other, dup := ips[r.inst.PrivateIp]; dup {
			t.Fatalf("address %s given to %s and %s", r.inst.PrivateIp, other, r.inst.Id)
		}
		ips[r.inst.PrivateIp], ids[r.inst.Id] = r.inst.Id, true
	}
	stored, err := f.s.ListInstances(c, InstanceFilter{Subnet: f.subnet.Id})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != clients*each {
		t.Fatalf("store holds %d instances, want %d", len(stored), clients*each)
	}
	perHost := map[string]int{}
	for _, inst := range stored {
		if !ids[inst.Id] || ips[inst.PrivateIp] != inst.Id {
			t.Fatalf("stored instance %s (%s) was not returned to its caller", inst.Id, inst.PrivateIp)
		}
		perHost[inst.HostId]++
	}
	// The lowest addresses were handed out: .4 up to .4+n-1.
	for i := range clients * each {
		ip := model.AddrFrom4(model.Addr4(netip.MustParseAddr("10.0.0.4")) + uint32(i)).String()
		if _, ok := ips[ip]; !ok {
			t.Fatalf("address %s was skipped", ip)
		}
	}
	if d := perHost["host-a"] - perHost["host-b"]; d > clients || d < -clients {
		t.Fatalf("placement is lopsided: %v", perHost)
	}
}

func TestPeeringLifecycleAndRoutes(t *testing.T) {
	s := newTestStore(t)
	c := ctx(t)
	red, _ := s.CreateVPC(c, "red", mustPrefix("10.0.0.0/16"))
	yellow, _ := s.CreateVPC(c, "yellow", mustPrefix("10.1.0.0/16"))
	if _, err := s.CreateVPC(c, "clash", mustPrefix("10.0.128.0/17")); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreatePeering(c, "red", "clash", "")
	wantKind(t, err, model.ErrInvalid, "overlapping")
	_, err = s.CreatePeering(c, "red", "red", "")
	wantKind(t, err, model.ErrInvalid, "itself")
	_, err = s.CreatePeering(c, "red", "ghost", "")
	wantKind(t, err, model.ErrNotFound, "ghost")
	p, err := s.CreatePeering(c, "red", "yellow", "ry")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreatePeering(c, "yellow", "red", "")
	wantKind(t, err, model.ErrExists, "already peered", p.Id)
	_, err = s.CreateRoute(c, red.MainRouteTableId, mustPrefix("10.1.0.0/16"), p.Id)
	wantKind(t, err, model.ErrPrecondition, "not active")
	if _, err := s.AcceptPeering(c, "ry"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRoute(c, red.MainRouteTableId, mustPrefix("10.1.0.0/16"), "ry"); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateRoute(c, red.MainRouteTableId, mustPrefix("10.1.0.0/16"), p.Id)
	wantKind(t, err, model.ErrExists, "already has a route")
	other, _ := s.CreateVPC(c, "green", mustPrefix("10.2.0.0/16"))
	_, err = s.CreateRoute(c, other.MainRouteTableId, mustPrefix("10.1.0.0/16"), p.Id)
	wantKind(t, err, model.ErrInvalid, "not this route table's VPC")
	err = s.DeleteVPC(c, "yellow")
	wantKind(t, err, model.ErrPrecondition, p.Id)
	if err := s.DeletePeering(c, p.Id); err != nil {
		t.Fatal(err)
	}
	rtb, _ := s.GetRouteTable(c, red.MainRouteTableId)
	if st := rtb.Routes[1].State; st != pb.RouteState_ROUTE_STATE_BLACKHOLE {
		t.Fatalf("route to deleted peering is %v, want blackhole", st)
	}
	_, err = s.DeleteRoute(c, red.MainRouteTableId, mustPrefix("10.0.0.0/16"))
	wantKind(t, err, model.ErrInvalid, "local route")
	if _, err := s.DeleteRoute(c, red.MainRouteTableId, mustPrefix("10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVPC(c, yellow.Id); err != nil {
		t.Fatal(err)
	}
}

func TestRouteTableAssociation(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	rtb, err := f.s.CreateRouteTable(c, "red", "private")
	if err != nil {
		t.Fatal(err)
	}
	sn, err := f.s.CreateSubnet(c, "red", mustPrefix("10.0.2.0/24"), "", "private")
	if err != nil || sn.RouteTableId != rtb.Id {
		t.Fatalf("subnet %v, %v", sn, err)
	}
	wantKind(t, f.s.DeleteRouteTable(c, "private"), model.ErrPrecondition, sn.Id)
	wantKind(t, f.s.DeleteRouteTable(c, f.vpc.MainRouteTableId), model.ErrPrecondition, "main route table")
	if err := f.s.DeleteSubnet(c, sn.Id); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteRouteTable(c, "private"); err != nil {
		t.Fatal(err)
	}
}

func TestInstanceBlocksSubnetDelete(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	inst, err := f.s.RunInstance(c, RunSpec{Subnet: "red-a", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, f.s.DeleteSubnet(c, "red-a"), model.ErrPrecondition, inst.Id)
	got, err := f.s.GetInstance(c, "web")
	if err != nil || got.Id != inst.Id || got.State != pb.InstanceState_INSTANCE_STATE_PENDING || got.Revision == 0 {
		t.Fatalf("get = %v, %v", got, err)
	}
	if _, err := f.s.TerminateInstance(c, "web"); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.TerminateInstance(c, inst.Id)
	wantKind(t, err, model.ErrPrecondition, "already terminated")
	if err := f.s.DeleteSubnet(c, "red-a"); err != nil {
		t.Fatal(err)
	}
	// The terminated record stays visible for a while.
	if got, err := f.s.GetInstance(c, inst.Id); err != nil || got.State != pb.InstanceState_INSTANCE_STATE_TERMINATED {
		t.Fatalf("terminated instance = %v, %v", got, err)
	}
	_, err = f.s.RunInstance(c, RunSpec{Subnet: "red-a"})
	wantKind(t, err, model.ErrNotFound)
}

func TestHostRegistration(t *testing.T) {
	s := newTestStore(t)
	c := ctx(t)
	a := netip.MustParseAddr("127.0.1.1")
	if _, err := s.RegisterHost(c, "host-a", a, pb.HostRole_HOST_ROLE_HOST, ""); err != nil {
		t.Fatal(err)
	}
	// Re-registering (a restart) is fine; taking another's address is not.
	if _, err := s.RegisterHost(c, "host-a", a, pb.HostRole_HOST_ROLE_HOST, ""); err != nil {
		t.Fatal(err)
	}
	_, err := s.RegisterHost(c, "host-b", a, pb.HostRole_HOST_ROLE_HOST, "")
	wantKind(t, err, model.ErrExists, "127.0.1.1", "host-a")
	if _, err := s.RegisterHost(c, "edge-1", netip.MustParseAddr("127.0.1.9"), pb.HostRole_HOST_ROLE_EDGE, ""); err != nil {
		t.Fatal(err)
	}
	sn := newFixtureIn(t, s)
	_, err = s.RunInstance(c, RunSpec{Subnet: sn, Host: "edge-1"})
	wantKind(t, err, model.ErrInvalid, "edge")
	_, err = s.RunInstance(c, RunSpec{Subnet: sn, Host: "host-z"})
	wantKind(t, err, model.ErrNotFound, "host-z")
	hs, err := s.ListHosts(c)
	if err != nil || len(hs) != 2 {
		t.Fatalf("hosts = %v, %v", hs, err)
	}
}

func newFixtureIn(t *testing.T, s *Store) string {
	c := ctx(t)
	if _, err := s.CreateVPC(c, "v", mustPrefix("10.9.0.0/16")); err != nil {
		t.Fatal(err)
	}
	sn, err := s.CreateSubnet(c, "v", mustPrefix("10.9.0.0/24"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return sn.Id
}

func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.DataDir = dir
	c := ctx(t)
	s, err := Open(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	vpc, err := s.CreateVPC(c, "red", mustPrefix("10.0.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	sn, _ := s.CreateSubnet(c, "red", mustPrefix("10.0.1.0/24"), "a", "")
	if _, err := s.RegisterHost(c, "h", netip.MustParseAddr("127.0.1.1"), pb.HostRole_HOST_ROLE_HOST, ""); err != nil {
		t.Fatal(err)
	}
	inst, err := s.RunInstance(c, RunSpec{Subnet: "a"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.GetVPC(c, "red")
	if err != nil || got.Vni != vpc.Vni || got.Id != vpc.Id {
		t.Fatalf("after restart vpc = %v, %v", got, err)
	}
	if g, err := s.GetSubnet(c, "a"); err != nil || g.Id != sn.Id {
		t.Fatalf("after restart subnet = %v, %v", g, err)
	}
	gi, err := s.GetInstance(c, inst.Id)
	if err != nil || gi.PrivateIp != inst.PrivateIp {
		t.Fatalf("after restart instance = %v, %v", gi, err)
	}
	// IPAM picks up where it was: the next address is the next one.
	next, err := s.RunInstance(c, RunSpec{Subnet: "a"})
	if err != nil || next.PrivateIp != "10.0.1.5" {
		t.Fatalf("after restart next instance = %v, %v", next, err)
	}
}

// TestRoutesInsideTheVPC: a route more specific than the local route (a
// part of the VPC's own addresses) to a peering or gateway is refused, as
// AWS does; routes around the VPC are not.
func TestRoutesInsideTheVPC(t *testing.T) {
	s := newTestStore(t)
	c := ctx(t)
	red, _ := s.CreateVPC(c, "red", mustPrefix("10.0.0.0/16"))
	if _, err := s.CreateVPC(c, "yellow", mustPrefix("10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	p, err := s.CreatePeering(c, "red", "yellow", "ry")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcceptPeering(c, p.Id); err != nil {
		t.Fatal(err)
	}
	for _, dest := range []string{"10.0.5.0/24", "10.0.0.0/17", "10.0.255.255/32"} {
		_, err := s.CreateRoute(c, red.MainRouteTableId, mustPrefix(dest), p.Id)
		wantKind(t, err, model.ErrInvalid, dest, "inside the VPC's local route 10.0.0.0/16")
	}
	// Wider than the VPC, or beside it: the local route still wins inside.
	for _, dest := range []string{"10.0.0.0/8", "10.1.0.0/16"} {
		if _, err := s.CreateRoute(c, red.MainRouteTableId, mustPrefix(dest), p.Id); err != nil {
			t.Errorf("route %s: %v", dest, err)
		}
	}
	rtb, _ := s.GetRouteTable(c, red.MainRouteTableId)
	if len(rtb.Routes) != 3 {
		t.Errorf("routes = %v, want local and the two accepted", rtb.Routes)
	}
}

// TestReassociateSubnet: a subnet moves to another route table of its VPC
// in one transaction, the reference moving with it, so the old table can
// be deleted and the new one cannot.
func TestReassociateSubnet(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	private, err := f.s.CreateRouteTable(c, "red", "private")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := f.s.CreateVPC(c, "blue", mustPrefix("10.9.0.0/16"))
	sn, err := f.s.AssociateRouteTable(c, "red-a", "private")
	if err != nil || sn.RouteTableId != private.Id {
		t.Fatalf("associate: %v, %v", sn, err)
	}
	if got, _ := f.s.GetSubnet(c, f.subnet.Id); got.RouteTableId != private.Id {
		t.Fatalf("subnet route table after associate = %s, want %s", got.RouteTableId, private.Id)
	}
	wantKind(t, f.s.DeleteRouteTable(c, "private"), model.ErrPrecondition, f.subnet.Id)
	_, err = f.s.AssociateRouteTable(c, "red-a", other.MainRouteTableId)
	wantKind(t, err, model.ErrInvalid, other.MainRouteTableId, other.Id, "its own VPC")
	_, err = f.s.AssociateRouteTable(c, "red-a", "nowhere")
	wantKind(t, err, model.ErrNotFound, "nowhere")
	if sn, err := f.s.AssociateRouteTable(c, f.subnet.Id, f.vpc.MainRouteTableId); err != nil || sn.RouteTableId != f.vpc.MainRouteTableId {
		t.Fatalf("back to main: %v, %v", sn, err)
	}
	if sn, err := f.s.AssociateRouteTable(c, f.subnet.Id, f.vpc.MainRouteTableId); err != nil || sn.RouteTableId != f.vpc.MainRouteTableId {
		t.Fatalf("associating again with the same table: %v, %v", sn, err)
	}
	if err := f.s.DeleteRouteTable(c, "private"); err != nil {
		t.Fatalf("the table no subnet uses any more: %v", err)
	}
	if err := f.s.DeleteSubnet(c, f.subnet.Id); err != nil {
		t.Fatalf("delete subnet after moving: %v", err)
	}
}

// TestGetTerminatedInstanceByName: list shows a terminated instance for
// an hour, and get finds it by the same name; a new instance that takes
// the name wins.
func TestGetTerminatedInstanceByName(t *testing.T) {
	f := newFixture(t, "10.0.0.0/16", "10.0.1.0/24")
	c := ctx(t)
	web, err := f.s.RunInstance(c, RunSpec{Subnet: "red-a", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.TerminateInstance(c, "web"); err != nil {
		t.Fatal(err)
	}
	got, err := f.s.GetInstance(c, "web")
	if err != nil || got.Id != web.Id || got.State != pb.InstanceState_INSTANCE_STATE_TERMINATED {
		t.Fatalf("get web after terminate = %v, %v; want %s terminated", got, err, web.Id)
	}
	again, err := f.s.RunInstance(c, RunSpec{Subnet: "red-a", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.s.GetInstance(c, "web"); err != nil || got.Id != again.Id {
		t.Fatalf("get web with a new web running = %v, %v; want %s", got, err, again.Id)
	}
	_, err = f.s.GetInstance(c, "nobody")
	wantKind(t, err, model.ErrNotFound, "nobody")
}
