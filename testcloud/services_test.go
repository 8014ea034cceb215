package testcloud_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/miekg/dns"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/packet/packettest"
	"github.com/openvpc/openvpc/testcloud"
)

// resolverOf is a resolver that asks server (ip:53) from inside an
// instance, over UDP or TCP as the resolver chooses.
func resolverOf(ns *nic.Netstack, server string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return ns.Net.DialContext(ctx, network, net.JoinHostPort(server, "53"))
	}}
}

// An instance resolves its peers' private names and their PTRs through
// the VPC resolver at .2 and at 169.254.169.253, answered by its own host
// from the cache: a peer on another host, a name of no instance, a name
// of another VPC's address.
func TestVPCResolver(t *testing.T) {
	s := newScene(t)
	web, _ := s.run(t, "red-a", s.b, s.red)
	client, clientNS := s.run(t, "red-a", s.a, s.red)
	_, yellowNS := s.run(t, "yellow-a", s.a, s.yellow)
	ctx, cancel := context.WithTimeout(s.c.Ctx(), 20*time.Second)
	defer cancel()

	webName := "ip-" + strings.ReplaceAll(web.PrivateIp, ".", "-") + ".openvpc.compute.internal"
	for _, server := range []string{"10.0.0.2", "169.254.169.253"} {
		r := resolverOf(clientNS, server)
		addrs, err := r.LookupHost(ctx, webName)
		if err != nil || len(addrs) != 1 || addrs[0] != web.PrivateIp {
			t.Fatalf("%s: %s → %v, %v; want %s", server, webName, addrs, err, web.PrivateIp)
		}
		names, err := r.LookupAddr(ctx, web.PrivateIp)
		if err != nil || len(names) != 1 || names[0] != webName+"." {
			t.Fatalf("%s: PTR %s → %v, %v; want %s.", server, web.PrivateIp, names, err, webName)
		}
	}
	// The instance's own stack resolves through .2 by itself, as a TUN
	// instance's resolv.conf makes its programs do.
	if addrs, err := clientNS.Net.LookupHost(webName); err != nil || len(addrs) != 1 || addrs[0] != web.PrivateIp {
		t.Fatalf("the netstack's own LookupHost %s → %v, %v", webName, addrs, err)
	}
	r := resolverOf(clientNS, "10.0.0.2")
	for _, name := range []string{"ip-10-0-1-200.openvpc.compute.internal", "example.com", "ip-10-0-1-4.other.compute.internal"} {
		if addrs, err := r.LookupHost(ctx, name); !isNotFound(err) {
			t.Errorf("%s → %v, %v; want not found", name, addrs, err)
		}
	}
	// Instance names in the VPC's domain: one made with a name, on another host.
	named, err := s.api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: "red-a", Host: s.b.HostID, Name: "web"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.Inst.WaitInstance(ctx, connect.NewRequest(&pb.WaitInstanceRequest{Ref: named.Msg.Instance.Id, TimeoutMs: 10000})); err != nil {
		t.Fatal(err)
	}
	if addrs, err := r.LookupHost(ctx, "web.red.internal"); err != nil || len(addrs) != 1 || addrs[0] != named.Msg.Instance.PrivateIp {
		t.Fatalf("web.red.internal → %v, %v; want %s", addrs, err, named.Msg.Instance.PrivateIp)
	}
	if addrs, err := resolverOf(yellowNS, "10.1.0.2").LookupHost(ctx, "web.red.internal"); !isNotFound(err) {
		t.Errorf("yellow resolves red's web.red.internal: %v, %v", addrs, err)
	}
	// Yellow's resolver knows yellow's addresses, not red's: the VPCs'
	// stacks are apart, whatever address they share.
	if addrs, err := resolverOf(yellowNS, "10.1.0.2").LookupHost(ctx, webName); !isNotFound(err) {
		t.Errorf("yellow resolves red's %s: %v, %v", webName, addrs, err)
	}
	if names, err := resolverOf(yellowNS, "169.254.169.253").LookupAddr(ctx, client.PrivateIp); !isNotFound(err) {
		t.Errorf("yellow resolves the PTR of red's %s: %v, %v", client.PrivateIp, names, err)
	}
	// TCP too.
	tcp := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return clientNS.Net.DialContext(ctx, "tcp", "10.0.0.2:53")
	}}
	if addrs, err := tcp.LookupHost(ctx, webName); err != nil || len(addrs) != 1 || addrs[0] != web.PrivateIp {
		t.Fatalf("over TCP: %s → %v, %v", webName, addrs, err)
	}
	if n := s.a.Plane.Counters.Get(datapath.ToHostService); n == 0 {
		t.Error("no packet counted to-host-service")
	}

	// Garbage to the resolver is dropped and counted; it answers on.
	st, ok := s.a.Services(s.red.Vni)
	if !ok {
		t.Fatal("host-a runs no services stack for red")
	}
	junk, err := clientNS.Net.DialContext(ctx, "udp", "10.0.0.2:53")
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	for i := 0; st.Counts().Malformed == 0; i++ {
		if i == 100 {
			t.Fatal("a malformed query was not counted")
		}
		_, _ = junk.Write([]byte{0xde, 0xad, 0xbe, 0xef, 1})
		time.Sleep(20 * time.Millisecond)
	}
	if addrs, err := r.LookupHost(ctx, webName); err != nil || len(addrs) != 1 {
		t.Fatalf("after garbage: %v, %v", addrs, err)
	}
	if c := st.Counts(); c.Answered == 0 || c.NXDomain == 0 || c.Queries < c.Answered+c.NXDomain {
		t.Errorf("resolver counters %+v", c)
	}
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return err != nil && errors.As(err, &de) && de.IsNotFound
}

// A packet to the resolver from an address the instance does not own is
// dropped before it: a forged source never gets an answer.
func TestVPCResolverForgedSource(t *testing.T) {
	s := newScene(t)
	client, _ := s.run(t, "red-a", s.a, s.red)
	eni, ok := model.ParseID(model.KindENI, client.EniId)
	if !ok {
		t.Fatalf("eni id %q", client.EniId)
	}
	buf := make([]byte, packet.Headroom+128)
	n := packettest.UDP(buf, "10.0.1.200", "10.0.0.2", 32, 64, false)
	before := s.a.Plane.Counters.Get(datapath.ToHostService)
	v, err := s.a.Plane.Send(eni, buf[packet.Headroom:packet.Headroom+n])
	if err != nil || v != datapath.SpoofedSource {
		t.Fatalf("forged query: %v, %v; want spoofed-source", v, err)
	}
	if after := s.a.Plane.Counters.Get(datapath.ToHostService); after != before {
		t.Fatalf("a forged query reached the host services (%d → %d)", before, after)
	}
}

// An instance reads its own metadata, with an IMDSv2 token or without
// one, and a token is its own: another instance cannot use it.
func TestMetadata(t *testing.T) {
	s := newScene(t)
	web, webNS := s.run(t, "red-a", s.a, s.red)
	_, otherNS := s.run(t, "red-a", s.a, s.red)
	hc := func(ns *nic.Netstack) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return ns.Net.DialContext(ctx, network, addr)
		}}}
	}
	do := func(c *http.Client, method, path string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://169.254.169.254"+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	c := hc(webNS)
	code, tok := do(c, "PUT", "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
	if code != 200 || tok == "" {
		t.Fatalf("token: %d %q", code, tok)
	}
	withToken := map[string]string{"X-aws-ec2-metadata-token": tok}
	want := map[string]string{
		"/latest/meta-data/instance-id":                                                web.Id,
		"/latest/meta-data/local-ipv4":                                                 web.PrivateIp,
		"/latest/meta-data/mac":                                                        web.Mac,
		"/latest/meta-data/hostname":                                                   "ip-" + strings.ReplaceAll(web.PrivateIp, ".", "-") + ".openvpc.compute.internal",
		"/latest/meta-data/placement/region":                                           "openvpc",
		"/latest/meta-data/network/interfaces/macs/" + web.Mac + "/vpc-id":             s.red.Id,
		"/latest/meta-data/network/interfaces/macs/" + web.Mac + "/subnet-id":          web.SubnetId,
		"/latest/meta-data/network/interfaces/macs/" + web.Mac + "/interface-id":       web.EniId,
		"/latest/meta-data/network/interfaces/macs/" + web.Mac + "/security-group-ids": strings.Join(web.SecurityGroupIds, "\n"),
	}
	for path, v := range want {
		if code, got := do(c, "GET", path, withToken); code != 200 || got != v {
			t.Errorf("GET %s: %d %q, want %q", path, code, got, v)
		}
	}
	if code, got := do(c, "GET", "/latest/meta-data/instance-id", nil); code != 200 || got != web.Id {
		t.Errorf("IMDSv1 instance-id: %d %q", code, got)
	}
	if code, _ := do(c, "GET", "/latest/meta-data/instance-id", map[string]string{"X-aws-ec2-metadata-token": "forged"}); code != 401 {
		t.Errorf("a forged token: %d, want 401", code)
	}
	// Another instance with web's token: refused; without: its own identity.
	o := hc(otherNS)
	if code, _ := do(o, "GET", "/latest/meta-data/instance-id", withToken); code != 401 {
		t.Errorf("another instance with web's token: %d, want 401", code)
	}
	if code, got := do(o, "GET", "/latest/meta-data/instance-id", nil); code != 200 || got == web.Id {
		t.Errorf("another instance reads %d %q", code, got)
	}
	if code, _ := do(c, "PUT", "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "0"}); code != 400 {
		t.Errorf("token with TTL 0: %d, want 400", code)
	}

	// IMDSv1 refused for web once modified so, and only for web; allowed
	// again when set back.
	setV1 := func(v string) {
		t.Helper()
		if _, err := s.api.Inst.ModifyInstance(s.c.Ctx(), connect.NewRequest(&pb.ModifyInstanceRequest{Ref: web.Id, ImdsV1: v})); err != nil {
			t.Fatal(err)
		}
	}
	waitCode := func(cl *http.Client, hdr map[string]string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, _ := do(cl, "GET", "/latest/meta-data/instance-id", hdr)
			if code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET with %v: %d, want %d", hdr, code, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	setV1("required-token")
	waitCode(c, nil, 401)
	if code, got := do(c, "GET", "/latest/meta-data/instance-id", withToken); code != 200 || got != web.Id {
		t.Errorf("IMDSv2 under required-token: %d %q", code, got)
	}
	if code, _ := do(o, "GET", "/latest/meta-data/instance-id", nil); code != 200 {
		t.Errorf("another instance's IMDSv1 refused too: %d", code)
	}
	setV1("optional")
	waitCode(c, nil, 200)
	if _, err := s.api.Inst.ModifyInstance(s.c.Ctx(), connect.NewRequest(&pb.ModifyInstanceRequest{Ref: web.Id, ImdsV1: "never"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("imds-v1 never: %v, want invalid argument", err)
	}
}

// With the server's --dns-upstream, names that are not the VPC's go to
// that resolver (here one the test runs on loopback), and its answer is
// kept for its TTL: a second query within it does not reach the upstream.
// The VPC's own names never leave the host.
func TestVPCResolverForwards(t *testing.T) {
	var asked atomic.Int64
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		asked.Add(1)
		m := new(dns.Msg)
		m.SetReply(req)
		if req.Question[0].Name == "example.test." && req.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR("example.test. 300 IN A 192.0.2.7")
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	})}
	go up.ActivateAndServe()
	defer up.Shutdown()

	c := testcloud.NewWith(t, etcd, testcloud.Options{DNSUpstream: pc.LocalAddr().String()})
	s := &scene{c: c, api: c.API()}
	s.a = c.AddAgent("host-a", netip.MustParseAddr("127.0.1.1"))
	s.red = s.vpc(t, "red", "10.0.0.0/16", "10.0.1.0/24")
	inst, ns := s.run(t, "red-a", s.a, s.red)
	ctx, cancel := context.WithTimeout(c.Ctx(), 20*time.Second)
	defer cancel()
	r := resolverOf(ns, "10.0.0.2")
	for i := range 2 {
		ips, err := r.LookupIP(ctx, "ip4", "example.test")
		if err != nil || len(ips) != 1 || ips[0].String() != "192.0.2.7" {
			t.Fatalf("query %d: example.test → %v, %v", i, ips, err)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("the upstream was asked %d times for example.test A, want 1 (the second from the cache)", n)
	}
	before := asked.Load()
	own := "ip-" + strings.ReplaceAll(inst.PrivateIp, ".", "-") + ".openvpc.compute.internal"
	if ips, err := r.LookupIP(ctx, "ip4", own); err != nil || len(ips) != 1 || ips[0].String() != inst.PrivateIp {
		t.Fatalf("%s → %v, %v", own, ips, err)
	}
	if _, err := r.LookupIP(ctx, "ip4", "ip-10-0-1-250.openvpc.compute.internal"); !isNotFound(err) {
		t.Fatalf("a private name of nothing: %v", err)
	}
	if n := asked.Load(); n != before {
		t.Fatalf("the VPC's own names reached the upstream (%d queries)", n-before)
	}
}

// openvpc trace shows a DNS query and a metadata request answered on the
// sender's host, by the step that takes them there.
func TestTraceHostServices(t *testing.T) {
	s := newScene(t)
	web, _ := s.run(t, "red-a", s.a, s.red)
	for _, req := range []*pb.TraceInstanceRequest{
		{From: web.Id, To: "10.0.0.2", Protocol: "udp", Port: 53},
		{From: web.Id, To: "169.254.169.253", Protocol: "tcp", Port: 53},
		{From: web.Id, To: "169.254.169.254", Protocol: "tcp", Port: 80},
	} {
		r, err := s.api.Inst.TraceInstance(s.c.Ctx(), connect.NewRequest(req))
		if err != nil {
			t.Fatal(err)
		}
		if r.Msg.Verdict != "to-host-service" || len(r.Msg.Hops) != 1 || r.Msg.Hops[0].HostId != "host-a" {
			t.Fatalf("trace to %s: %v", req.To, r.Msg)
		}
		steps := r.Msg.Hops[0].Steps
		if last := steps[len(steps)-1]; last.Name != "host services" || !last.Pass || !strings.Contains(last.Detail, "answered on this host") {
			t.Fatalf("trace to %s ends with %v", req.To, last)
		}
	}
}

// An instance with an Elastic IP reads it as public-ipv4; one without has
// no such path.
func TestMetadataPublicIP(t *testing.T) {
	s := newInternetScene(t)
	web, webNS := s.run(t, "red-a", s.a, s.red)
	_, otherNS := s.run(t, "red-a", s.a, s.red)
	pub := s.elastic(t, web)
	get := func(ns *nic.Netstack, path string) (int, string) {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return ns.Net.DialContext(ctx, network, addr)
		}}}
		resp, err := hc.Get("http://169.254.169.254" + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(webNS, "/latest/meta-data/public-ipv4")
		if code == 200 && body == pub.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("public-ipv4: %d %q, want %s", code, body, pub)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, list := get(webNS, "/latest/meta-data/"); !strings.Contains(list, "public-ipv4") {
		t.Errorf("the listing lacks public-ipv4:\n%s", list)
	}
	if code, _ := get(otherNS, "/latest/meta-data/public-ipv4"); code != 404 {
		t.Errorf("an instance without an Elastic IP: public-ipv4 %d, want 404", code)
	}
}

// With DNS support off (vpc modify --enable-dns-support=false) the VPC's
// resolver answers nothing, as on AWS; on again, it answers.
func TestVPCResolverDNSSupport(t *testing.T) {
	s := newScene(t)
	web, webNS := s.run(t, "red-a", s.a, s.red)
	name := "ip-" + strings.ReplaceAll(web.PrivateIp, ".", "-") + ".openvpc.compute.internal"
	r := resolverOf(webNS, "10.0.0.2")
	lookup := func() error {
		ctx, cancel := context.WithTimeout(s.c.Ctx(), 300*time.Millisecond)
		defer cancel()
		_, err := r.LookupHost(ctx, name)
		return err
	}
	set := func(on bool) {
		t.Helper()
		if _, err := s.api.VPC.ModifyVpc(s.c.Ctx(), connect.NewRequest(&pb.ModifyVpcRequest{Ref: "red", EnableDnsSupport: &on})); err != nil {
			t.Fatal(err)
		}
	}
	if err := lookup(); err != nil {
		t.Fatalf("before: %v", err)
	}
	set(false)
	for deadline := time.Now().Add(10 * time.Second); lookup() == nil; {
		if time.Now().After(deadline) {
			t.Fatal("the resolver still answers with DNS support off")
		}
	}
	set(true)
	for deadline := time.Now().Add(10 * time.Second); lookup() != nil; {
		if time.Now().After(deadline) {
			t.Fatal("the resolver does not answer with DNS support on again")
		}
	}
	if _, err := s.api.VPC.ModifyVpc(s.c.Ctx(), connect.NewRequest(&pb.ModifyVpcRequest{Ref: "red"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("modify with nothing to change: %v, want invalid argument", err)
	}
}

// An instance run with user data reads it at /latest/user-data, byte for
// byte; one without gets 404, as on AWS. The data is in the instance's
// host's cache (the Mapping Service's test checks no other host gets it).
func TestMetadataUserData(t *testing.T) {
	s := newScene(t)
	ctx := s.c.Ctx()
	data := []byte("#cloud-config\nruncmd:\n  - echo hi\n\x00\xff")
	r, err := s.api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: "red-a", Host: s.a.HostID, UserData: data}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.Inst.WaitInstance(ctx, connect.NewRequest(&pb.WaitInstanceRequest{Ref: r.Msg.Instance.Id, TimeoutMs: 10000})); err != nil {
		t.Fatal(err)
	}
	withNS, err := testcloud.Instance(s.a, s.red.Vni, r.Msg.Instance)
	if err != nil {
		t.Fatal(err)
	}
	_, withoutNS := s.run(t, "red-a", s.a, s.red)
	get := func(ns *nic.Netstack, path string) (int, []byte) {
		t.Helper()
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return ns.Net.DialContext(ctx, network, addr)
		}}}
		resp, err := hc.Get("http://169.254.169.254" + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, got := get(withNS, "/latest/user-data"); code != 200 || string(got) != string(data) {
		t.Fatalf("user-data: %d %q, want %q", code, got, data)
	}
	if code, got := get(withNS, "/latest/"); code != 200 || string(got) != "meta-data/\nuser-data" {
		t.Errorf("/latest/: %d %q", code, got)
	}
	if code, got := get(withoutNS, "/latest/user-data"); code != 404 {
		t.Errorf("no user data: %d %q, want 404", code, got)
	}
	var onA bool
	for _, l := range s.a.Cache.Locals() {
		if l.InstanceID == r.Msg.Instance.Id {
			onA = string(l.UserData) == string(data)
		}
	}
	if !onA {
		t.Error("host a's cache lacks the instance's user data")
	}
	// Over the limit: refused.
	if _, err := s.api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: "red-a", UserData: make([]byte, model.MaxUserData+1)})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("17 KiB of user data: %v, want invalid argument", err)
	}
}

// With DNS hostnames off (vpc modify --enable-dns-hostnames false) the
// resolver answers no instance name, private or named, nor its PTR; on
// again, it answers them.
func TestVPCResolverDNSHostnames(t *testing.T) {
	s := newScene(t)
	ctx := s.c.Ctx()
	r0, err := s.api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: "red-a", Host: s.b.HostID, Name: "web"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.Inst.WaitInstance(ctx, connect.NewRequest(&pb.WaitInstanceRequest{Ref: r0.Msg.Instance.Id, TimeoutMs: 10000})); err != nil {
		t.Fatal(err)
	}
	web := r0.Msg.Instance
	_, clientNS := s.run(t, "red-a", s.a, s.red)
	private := "ip-" + strings.ReplaceAll(web.PrivateIp, ".", "-") + ".openvpc.compute.internal"
	r := resolverOf(clientNS, "10.0.0.2")
	// answers reports for each name whether it resolves, failing on
	// anything but an answer or NXDOMAIN.
	answers := func() [3]bool {
		t.Helper()
		var out [3]bool
		for i, f := range []func(context.Context) error{
			func(ctx context.Context) error { _, err := r.LookupHost(ctx, private); return err },
			func(ctx context.Context) error { _, err := r.LookupHost(ctx, "web.red.internal"); return err },
			func(ctx context.Context) error { _, err := r.LookupAddr(ctx, web.PrivateIp); return err },
		} {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := f(ctx)
			cancel()
			if err != nil && !isNotFound(err) {
				t.Fatalf("lookup %d: %v, want an answer or NXDOMAIN", i, err)
			}
			out[i] = err == nil
		}
		return out
	}
	set := func(on bool) {
		t.Helper()
		if _, err := s.api.VPC.ModifyVpc(ctx, connect.NewRequest(&pb.ModifyVpcRequest{Ref: "red", EnableDnsHostnames: &on})); err != nil {
			t.Fatal(err)
		}
	}
	if got := answers(); got != [3]bool{true, true, true} {
		t.Fatalf("before: %v", got)
	}
	set(false)
	for deadline := time.Now().Add(10 * time.Second); answers() != [3]bool{}; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("with DNS hostnames off: %v, want NXDOMAIN for all", answers())
		}
	}
	if v, err := s.api.VPC.GetVpc(ctx, connect.NewRequest(&pb.GetVpcRequest{Ref: "red"})); err != nil || !v.Msg.Vpc.DnsHostnamesDisabled || v.Msg.Vpc.DnsSupportDisabled {
		t.Errorf("vpc after modify: %v, %v", v, err)
	}
	set(true)
	for deadline := time.Now().Add(10 * time.Second); answers() != [3]bool{true, true, true}; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("with DNS hostnames on again: %v", answers())
		}
	}
}

// Peered red and yellow resolve each other's instance names only while
// the peering allows remote DNS (peering modify --allow-remote-dns): off
// (the default), a peer's private name is NXDOMAIN and its zone is the
// upstream's (none here: NXDOMAIN too).
func TestVPCResolverPeerNames(t *testing.T) {
	s := newScene(t)
	ctx := s.c.Ctx()
	runNamed := func(subnet, name string, host string) *pb.Instance {
		t.Helper()
		r, err := s.api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: subnet, Host: host, Name: name}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.api.Inst.WaitInstance(ctx, connect.NewRequest(&pb.WaitInstanceRequest{Ref: r.Msg.Instance.Id, TimeoutMs: 10000})); err != nil {
			t.Fatal(err)
		}
		return r.Msg.Instance
	}
	db := runNamed("yellow-a", "db", s.b.HostID)
	_, redNS := s.run(t, "red-a", s.a, s.red)
	web := runNamed("red-a", "web", s.a.HostID)
	yr, err := s.api.Inst.GetInstance(ctx, connect.NewRequest(&pb.GetInstanceRequest{Ref: db.Id}))
	if err != nil {
		t.Fatal(err)
	}
	yellowNS, err := testcloud.Instance(s.b, s.yellow.Vni, yr.Msg.Instance)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.api.VPC.CreatePeering(ctx, connect.NewRequest(&pb.CreatePeeringRequest{Vpc: "red", PeerVpc: "yellow"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.VPC.AcceptPeering(ctx, connect.NewRequest(&pb.AcceptPeeringRequest{Ref: p.Msg.Peering.Id})); err != nil {
		t.Fatal(err)
	}
	private := func(i *pb.Instance) string {
		return "ip-" + strings.ReplaceAll(i.PrivateIp, ".", "-") + ".openvpc.compute.internal"
	}
	// resolves reports whether each of the names resolves to its address
	// from ns, failing on anything but that or NXDOMAIN.
	resolves := func(ns *nic.Netstack, server string, names map[string]string) bool {
		t.Helper()
		r := resolverOf(ns, server)
		all := true
		for name, want := range names {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			addrs, err := r.LookupHost(c, name)
			cancel()
			switch {
			case err == nil && len(addrs) == 1 && addrs[0] == want:
			case isNotFound(err):
				all = false
			default:
				t.Fatalf("%s: %v, %v", name, addrs, err)
			}
		}
		return all
	}
	fromRed := map[string]string{private(db): db.PrivateIp, "db.yellow.internal": db.PrivateIp}
	fromYellow := map[string]string{private(web): web.PrivateIp, "web.red.internal": web.PrivateIp}
	check := func(on bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			r, y := resolves(redNS, "10.0.0.2", fromRed), resolves(yellowNS, "10.1.0.2", fromYellow)
			if on && r && y || !on && !r && !y {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("remote DNS %v: red resolves yellow's names %v, yellow red's %v", on, r, y)
			}
		}
		if on {
			names, err := resolverOf(redNS, "10.0.0.2").LookupAddr(ctx, db.PrivateIp)
			if err != nil || len(names) != 1 || names[0] != private(db)+"." {
				t.Errorf("PTR of yellow's db from red: %v, %v", names, err)
			}
		}
	}
	set := func(on bool) {
		t.Helper()
		r, err := s.api.VPC.ModifyPeering(ctx, connect.NewRequest(&pb.ModifyPeeringRequest{Ref: p.Msg.Peering.Id, AllowRemoteDns: &on}))
		if err != nil || r.Msg.Peering.AllowRemoteDns != on {
			t.Fatalf("modify peering: %v, %v", r, err)
		}
	}
	check(false) // the default
	set(true)
	check(true)
	set(false)
	check(false)
	if _, err := s.api.VPC.ModifyPeering(ctx, connect.NewRequest(&pb.ModifyPeeringRequest{Ref: p.Msg.Peering.Id})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("modify with nothing to change: %v, want invalid argument", err)
	}
}
