package testcloud_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/cli"
	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/testcloud"
)

var etcd *testcloud.Etcd

func TestMain(m *testing.M) { testcloud.Main(m, &etcd, testcloud.CheckLeaks) }

// scene is red (two subnets), yellow and green VPCs on two hosts with a
// real data plane each: Geneve over UDP on loopback, netstack instances.
type scene struct {
	c                  *testcloud.Cloud
	api                testcloud.Clients
	a, b               *agent.Agent
	red, yellow, green *pb.Vpc
}

func newScene(t *testing.T) *scene { return newSceneTB(t) }

func newSceneTB(t testing.TB) *scene {
	c := testcloud.New(t, etcd)
	s := &scene{c: c, api: c.API()}
	s.a = c.AddAgent("host-a", netip.MustParseAddr("127.0.1.1"))
	s.b = c.AddAgent("host-b", netip.MustParseAddr("127.0.1.2"))
	s.red = s.vpc(t, "red", "10.0.0.0/16", "10.0.1.0/24", "10.0.2.0/24")
	s.yellow = s.vpc(t, "yellow", "10.1.0.0/16", "10.1.1.0/24")
	s.green = s.vpc(t, "green", "10.2.0.0/16", "10.2.1.0/24")
	return s
}

func (s *scene) vpc(t testing.TB, name, cidr string, subnets ...string) *pb.Vpc {
	ctx := s.c.Ctx()
	r, err := s.api.VPC.CreateVpc(ctx, connect.NewRequest(&pb.CreateVpcRequest{Name: name, Cidr: cidr}))
	if err != nil {
		t.Fatal(err)
	}
	for i, sn := range subnets {
		if _, err := s.api.VPC.CreateSubnet(ctx, connect.NewRequest(&pb.CreateSubnetRequest{Vpc: name, Cidr: sn, Name: fmt.Sprintf("%s-%c", name, 'a'+i)})); err != nil {
			t.Fatal(err)
		}
	}
	return r.Msg.Vpc
}

// allowFrom lets vpc's default security group take traffic from cidr (all
// protocols when proto is "all"): as on AWS, a default group admits only
// its own members until told otherwise, so a peered VPC or the internet
// gets in only after a rule like this.
func (s *scene) allowFrom(t testing.TB, vpc *pb.Vpc, proto, port, cidr string) {
	t.Helper()
	if _, err := s.api.VPC.AuthorizeSecurityGroupRule(s.c.Ctx(), connect.NewRequest(&pb.AuthorizeSecurityGroupRuleRequest{
		Ref: vpc.DefaultSecurityGroupId, Rule: &pb.SecurityGroupRuleSpec{Match: &pb.RuleMatch{Protocol: proto, Port: port}, Cidr: cidr},
	})); err != nil {
		t.Fatal(err)
	}
}

// run starts an instance on host and returns it with its stack, once
// running (every host in scope knows it).
func (s *scene) run(t testing.TB, subnet string, host *agent.Agent, vpc *pb.Vpc) (*pb.Instance, *nic.Netstack) {
	t.Helper()
	ctx := s.c.Ctx()
	r, err := s.api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: subnet, Host: host.HostID}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.Inst.WaitInstance(ctx, connect.NewRequest(&pb.WaitInstanceRequest{Ref: r.Msg.Instance.Id, TimeoutMs: 10000})); err != nil {
		t.Fatal(err)
	}
	ns, err := testcloud.Instance(host, vpc.Vni, r.Msg.Instance)
	if err != nil {
		t.Fatal(err)
	}
	return r.Msg.Instance, ns
}

// serveHTTP runs a web server inside an instance that names itself.
func serveHTTP(t *testing.T, ns *nic.Netstack, name string) {
	l, err := ns.Net.ListenTCP(&net.TCPAddr{Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s to %s", name, r.RemoteAddr)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// get fetches http://ip/ from inside an instance.
func get(ns *nic.Netstack, ip string, timeout time.Duration) (string, error) {
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return ns.Net.DialContext(ctx, "tcp", addr)
	}}}
	resp, err := hc.Get("http://" + ip + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func mustGet(t *testing.T, ns *nic.Netstack, ip, want string) {
	t.Helper()
	body, err := get(ns, ip, 5*time.Second)
	if err != nil || !strings.Contains(body, want) {
		t.Fatalf("GET http://%s/: %q, %v (want %q)", ip, body, err, want)
	}
}

func mustFail(t *testing.T, ns *nic.Netstack, ip string) {
	t.Helper()
	if body, err := get(ns, ip, 700*time.Millisecond); err == nil {
		t.Fatalf("GET http://%s/ succeeded (%q); it must not", ip, body)
	}
}

// ping sends ICMP echoes from inside an instance until one is answered,
// at most three a second apart, as ping -c 3 would: one datagram lost on
// a loaded machine is not a broken network.
func ping(ns *nic.Netstack, from, to string) error {
	c, err := ns.Net.DialPingAddr(netip.MustParseAddr(from), netip.MustParseAddr(to))
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for seq := byte(1); ; seq++ {
		echo := []byte{8, 0, 0, 0, 0, 1, 0, seq, 'o', 'v', 'p', 'c'}
		if _, err := c.Write(echo); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err != nil {
			if seq < 3 {
				continue
			}
			return err
		}
		if n < 8 || buf[0] != 0 {
			return fmt.Errorf("not an echo reply: % x", buf[:n])
		}
		return nil
	}
}

func TestInstancesTalk(t *testing.T) {
	s := newScene(t)
	web, webNS := s.run(t, "red-a", s.b, s.red)
	client, clientNS := s.run(t, "red-a", s.a, s.red)
	near, nearNS := s.run(t, "red-b", s.a, s.red)
	serveHTTP(t, webNS, "web")
	serveHTTP(t, nearNS, "near")

	// TCP: a real HTTP request across hosts, and to the same host through
	// the VPC router (another subnet).
	mustGet(t, clientNS, web.PrivateIp, "hello from web to "+client.PrivateIp)
	mustGet(t, clientNS, near.PrivateIp, "hello from near to "+client.PrivateIp)
	// ICMP both ways.
	if err := ping(clientNS, client.PrivateIp, web.PrivateIp); err != nil {
		t.Fatalf("ping across hosts: %v", err)
	}
	// UDP.
	lc, err := webNS.Net.ListenUDP(&net.UDPAddr{Port: 53})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := lc.ReadFrom(buf)
			if err != nil {
				return
			}
			lc.WriteTo(buf[:n], from)
		}
	}()
	uc, err := clientNS.Net.DialUDP(nil, &net.UDPAddr{IP: net.ParseIP(web.PrivateIp), Port: 53})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.Write([]byte("udp across hosts"))
	uc.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 100)
	if n, err := uc.Read(buf); err != nil || string(buf[:n]) != "udp across hosts" {
		t.Fatalf("UDP echo: %q, %v", buf[:n], err)
	}
	// Through the API, as `openvpc ping` and `openvpc instance connect` do:
	// the server asks the agent of the instance's host to act as it.
	ctx := s.c.Ctx()
	// Like ping -c 3 on a loaded machine: a lost echo is not a broken path.
	pr, err := s.api.Inst.PingInstance(ctx, connect.NewRequest(&pb.PingInstanceRequest{From: client.Id, To: web.Id, Count: 3}))
	if err != nil || pr.Msg.Received == 0 || pr.Msg.Sent != 3 || pr.Msg.ToIp != web.PrivateIp {
		t.Fatalf("ping through the API: %v, %v", pr, err)
	}
	if _, err := s.api.Inst.ConnectInstance(ctx, connect.NewRequest(&pb.ConnectInstanceRequest{From: client.Id, To: web.PrivateIp + ":80"})); err != nil {
		t.Fatalf("connect through the API: %v", err)
	}
	if _, err := s.api.Inst.ConnectInstance(ctx, connect.NewRequest(&pb.ConnectInstanceRequest{From: client.Id, To: web.Id + ":81"})); err == nil {
		t.Fatal("connect to a closed port succeeded")
	}
	// A port-forward through the client instance, as `openvpc instance
	// forward` runs it: a plain local HTTP client reaches the web instance.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	var forwardLog syncLog
	go cli.Forward(fctx, ln, s.c.AdminConn(), client.Id, web.PrivateIp+":80", &forwardLog)
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatalf("GET through the forward: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "hello from web to " + client.PrivateIp; !strings.Contains(string(body), want) {
		t.Fatalf("through the forward: %q, want %q", body, want)
	}
	// A forward to a closed port says why on its log.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go cli.Forward(fctx, ln2, s.c.AdminConn(), client.Id, web.PrivateIp+":81", &forwardLog)
	if _, err := http.Get("http://" + ln2.Addr().String() + "/"); err == nil {
		t.Fatal("GET through a forward to a closed port succeeded")
	}
	waitFor(t, func() bool { return strings.Contains(forwardLog.String(), "refused") })
	if got := s.a.Plane.Counters.Get(datapath.Forwarded); got == 0 {
		t.Fatal("host-a forwarded nothing")
	}
	if got := s.b.Plane.Counters.Get(datapath.Delivered); got == 0 {
		t.Fatal("host-b delivered nothing")
	}
}

func TestPeering(t *testing.T) {
	s := newScene(t)
	r, rNS := s.run(t, "red-a", s.a, s.red)
	y, yNS := s.run(t, "yellow-a", s.b, s.yellow)
	_, gNS := s.run(t, "green-a", s.a, s.green)
	serveHTTP(t, yNS, "yellow")
	serveHTTP(t, rNS, "red")

	before := s.a.Plane.Counters.Get(datapath.NoRoute)
	mustFail(t, rNS, y.PrivateIp)
	if s.a.Plane.Counters.Get(datapath.NoRoute) == before {
		t.Fatal("red → yellow before peering was not counted as no-route")
	}
	s.allowFrom(t, s.red, "all", "", "10.1.0.0/16")
	s.allowFrom(t, s.yellow, "all", "", "10.0.0.0/16")
	ctx := s.c.Ctx()
	p, err := s.api.VPC.CreatePeering(ctx, connect.NewRequest(&pb.CreatePeeringRequest{Vpc: "red", PeerVpc: "yellow"}))
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, rNS, y.PrivateIp) // pending: no routes, no scope
	if _, err := s.api.VPC.AcceptPeering(ctx, connect.NewRequest(&pb.AcceptPeeringRequest{Ref: p.Msg.Peering.Id})); err != nil {
		t.Fatal(err)
	}
	for _, rt := range []struct{ rtb, dest string }{{s.red.MainRouteTableId, "10.1.0.0/16"}, {s.yellow.MainRouteTableId, "10.0.0.0/16"}} {
		if _, err := s.api.VPC.CreateRoute(ctx, connect.NewRequest(&pb.CreateRouteRequest{RouteTable: rt.rtb, DestinationCidr: rt.dest, Target: p.Msg.Peering.Id})); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { _, err := get(rNS, y.PrivateIp, time.Second); return err == nil })
	mustGet(t, rNS, y.PrivateIp, "hello from yellow to "+r.PrivateIp)
	mustGet(t, yNS, r.PrivateIp, "hello from red to "+y.PrivateIp)
	// Green is peered with nobody.
	mustFail(t, gNS, y.PrivateIp)

	if _, err := s.api.VPC.DeletePeering(ctx, connect.NewRequest(&pb.DeletePeeringRequest{Ref: p.Msg.Peering.Id})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := get(rNS, y.PrivateIp, 500*time.Millisecond); return err != nil })
	mustFail(t, rNS, y.PrivateIp)
}

// syncLog is a log many goroutines write to.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 10s")
}
