package testcloud_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/edge/internet"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/host/agent"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/testcloud"
)

// webAddr is a public web server on the test internet (a documentation address).
var webAddr = netip.MustParseAddr("203.0.113.10")

// internetScene is the scene plus an internet with a web server, two
// edges, and red connected to the internet through an internet gateway.
type internetScene struct {
	*scene
	inet  *internet.Internet
	web   *netstack.Net
	edges []*testcloud.Edge
}

func newInternetScene(t testing.TB) *internetScene {
	s := &internetScene{scene: newSceneTB(t), inet: internet.New(testcloud.EIPPool)}
	t.Cleanup(s.inet.Close)
	web, err := s.inet.AddHost(webAddr)
	if err != nil {
		t.Fatal(err)
	}
	s.web = web
	l, err := web.ListenTCP(&net.TCPAddr{Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			bigResponse(w)
			return
		}
		fmt.Fprintf(w, "you are %s", r.RemoteAddr)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	for i := 1; i <= 2; i++ {
		s.edges = append(s.edges, s.c.AddEdge(fmt.Sprintf("edge-%d", i), netip.AddrFrom4([4]byte{127, 0, 1, byte(100 + i)}), s.inet.Attach()))
	}
	// Red's web servers take connections from the internet.
	s.allowFrom(t, s.red, "tcp", "80", "0.0.0.0/0")
	ctx := s.c.Ctx()
	g, err := s.api.VPC.CreateInternetGateway(ctx, connect.NewRequest(&pb.CreateInternetGatewayRequest{Name: "red-igw"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.VPC.AttachInternetGateway(ctx, connect.NewRequest(&pb.AttachInternetGatewayRequest{Ref: "red-igw", Vpc: "red"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.VPC.CreateRoute(ctx, connect.NewRequest(&pb.CreateRouteRequest{RouteTable: s.red.MainRouteTableId, DestinationCidr: "0.0.0.0/0", Target: g.Msg.InternetGateway.Id})); err != nil {
		t.Fatal(err)
	}
	return s
}

// bigSize is the size of /big: sent slowly enough (about 2 s) that an edge
// can be killed in the middle.
const bigSize = 200 * 16 << 10

func bigChunk(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 16<<10) }

func bigResponse(w http.ResponseWriter) {
	w.Header().Set("Content-Length", fmt.Sprint(bigSize))
	for i := range 200 {
		if _, err := w.Write(bigChunk(i)); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		time.Sleep(10 * time.Millisecond)
	}
}

// elastic allocates an Elastic IP for inst and waits until every edge can
// translate it.
func (s *internetScene) elastic(t testing.TB, inst *pb.Instance) netip.Addr {
	t.Helper()
	ctx := s.c.Ctx()
	e, err := s.api.VPC.AllocateAddress(ctx, connect.NewRequest(&pb.AllocateAddressRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.VPC.AssociateAddress(ctx, connect.NewRequest(&pb.AssociateAddressRequest{Ref: e.Msg.Address.AllocationId, Instance: inst.Id})); err != nil {
		t.Fatal(err)
	}
	pub := netip.MustParseAddr(e.Msg.Address.PublicIp)
	s.waitEdges(t, pub, true)
	return pub
}

// waitEdges waits until every edge's cache does (or does not) hold pub.
func (s *internetScene) waitEdges(t testing.TB, pub netip.Addr, want bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		all := true
		for _, e := range s.edges {
			_, _, ok := e.Cache.Tables.Load().ByPublicIP(pub)
			all = all && ok == want
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the edges' caches do not agree that %v is associated=%v", pub, want)
		}
	}
}

// TestInternetGateway: an instance with an Elastic IP reaches a server on
// the internet, which sees the Elastic IP; the internet reaches the
// instance through it; without one (or after disassociation) nothing gets
// out, and the edges say why.
func TestInternetGateway(t *testing.T) {
	s := newInternetScene(t)
	web, webNS := s.run(t, "red-a", s.a, s.red)
	bare, bareNS := s.run(t, "red-b", s.b, s.red)
	pub := s.elastic(t, web)

	body, err := get(webNS, webAddr.String(), 5*time.Second)
	if err != nil {
		for _, v := range datapath.Verdicts() {
			t.Logf("%s: host-a %d, edge-1 out %d in %d, edge-2 out %d in %d", v, s.a.Plane.Counters.Get(v), s.edges[0].Edge.Out.Get(v), s.edges[0].Edge.In.Get(v), s.edges[1].Edge.Out.Get(v), s.edges[1].Edge.In.Get(v))
		}
		t.Logf("edges in host-a's cache: %v; internet dropped %d", s.a.Cache.Tables.Load().Edges(), s.inet.Dropped())
		t.Fatalf("instance with an Elastic IP cannot reach the internet: %v", err)
	}
	if !strings.HasPrefix(body, "you are "+pub.String()+":") {
		t.Fatalf("the internet saw %q; want the Elastic IP %v as source", body, pub)
	}

	// Inbound: a client on the internet reaches the instance's web server.
	serveHTTP(t, webNS, "web")
	client, err := s.inet.AddHost(netip.MustParseAddr("203.0.113.20"))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return client.DialContext(ctx, "tcp", addr)
	}}}
	resp, err := hc.Get("http://" + pub.String() + "/")
	if err != nil {
		t.Fatalf("the internet cannot reach the instance at its Elastic IP: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "hello from web to 203.0.113.20:"; !strings.HasPrefix(string(b), want) {
		t.Fatalf("instance answered %q; want it to see the client's own address (%q…)", b, want)
	}

	// No Elastic IP: dropped at the edge as no-public-ip.
	before := noPublicIP(s)
	if _, err := get(bareNS, webAddr.String(), 500*time.Millisecond); err == nil {
		t.Fatalf("instance %s without an Elastic IP reached the internet", bare.Id)
	}
	if noPublicIP(s) == before {
		t.Fatal("no edge counted no-public-ip for the instance without an Elastic IP")
	}

	// Disassociated: cut off.
	if _, err := s.api.VPC.DisassociateAddress(s.c.Ctx(), connect.NewRequest(&pb.DisassociateAddressRequest{Ref: pub.String()})); err != nil {
		t.Fatal(err)
	}
	s.waitEdges(t, pub, false)
	if _, err := get(webNS, webAddr.String(), 500*time.Millisecond); err == nil {
		t.Fatal("instance still reaches the internet after its Elastic IP was disassociated")
	}
}

func noPublicIP(s *internetScene) uint64 {
	var n uint64
	for _, e := range s.edges {
		n += e.Edge.Out.Get(datapath.NoPublicIP)
	}
	return n
}

// TestEdgeFailover: two edges carry a long download; the one carrying it
// dies in the middle; the download completes, whole, through the other.
func TestEdgeFailover(t *testing.T) {
	s := newInternetScene(t)
	inst, ns := s.run(t, "red-a", s.a, s.red)
	s.elastic(t, inst)

	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return ns.Net.DialContext(ctx, "tcp", addr)
		}}}
		resp, err := hc.Get("http://" + webAddr.String() + "/big")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		done <- result{sum: [32]byte(h.Sum(nil)), n: n, err: err}
	}()
	time.Sleep(700 * time.Millisecond)
	// Kill the edge that carries the data (the internet's choice).
	carrying, other := s.edges[0], s.edges[1]
	if other.Edge.In.Get(datapath.Forwarded) > carrying.Edge.In.Get(datapath.Forwarded) {
		carrying, other = other, carrying
	}
	if carrying.Edge.In.Get(datapath.Forwarded) == 0 {
		t.Fatal("no edge carried the download")
	}
	otherBefore := other.Edge.In.Get(datapath.Forwarded) + other.Edge.Out.Get(datapath.Forwarded)
	carrying.Stop()
	t.Logf("killed %s mid-download", carrying.HostID)
	// The Mapping Service notices the missed heartbeats and every host
	// stops choosing the dead edge.
	for deadline := time.Now().Add(testcloud.EdgeTimeout + 5*time.Second); ; time.Sleep(20 * time.Millisecond) {
		edges := s.a.Cache.Tables.Load().Edges()
		if len(edges) == 1 && edges[0].Underlay == other.Edge.Underlay() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host-a still chooses among %v after %s died", edges, carrying.HostID)
		}
	}

	r := <-done
	if r.err != nil {
		t.Fatalf("download failed after an edge died: %v", r.err)
	}
	want := sha256.New()
	for i := range 200 {
		want.Write(bigChunk(i))
	}
	if r.n != bigSize || r.sum != [32]byte(want.Sum(nil)) {
		t.Fatalf("download is %d bytes (want %d) or its content differs", r.n, bigSize)
	}
	if after := other.Edge.In.Get(datapath.Forwarded) + other.Edge.Out.Get(datapath.Forwarded); after == otherBefore {
		t.Fatalf("%s carried nothing after %s died", other.HostID, carrying.HostID)
	}
}

// TestFlows: the flow records of hosts and edges, gathered by the server,
// say what happened to each flow: delivered across hosts, translated at an
// edge, dropped for no route or no Elastic IP; the filters select them.
func TestFlows(t *testing.T) {
	s := newInternetScene(t)
	web, webNS := s.run(t, "red-a", s.a, s.red)
	app, appNS := s.run(t, "red-a", s.b, s.red)
	_, greenNS := s.run(t, "green-a", s.b, s.green)
	s.elastic(t, web)
	serveHTTP(t, webNS, "web")
	mustGet(t, appNS, web.PrivateIp, "hello from web")
	if _, err := get(webNS, webAddr.String(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	_, _ = get(appNS, webAddr.String(), 300*time.Millisecond) // no Elastic IP: dropped at the edge
	_, _ = get(greenNS, web.PrivateIp, 300*time.Millisecond)  // no route from green to red

	list := func(req *pb.ListFlowsRequest) []*pb.FlowRecord {
		t.Helper()
		r, err := s.api.Inst.ListFlows(s.c.Ctx(), connect.NewRequest(req))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Msg.Unreachable) > 0 {
			t.Fatalf("unreachable agents: %v", r.Msg.Unreachable)
		}
		return r.Msg.Flows
	}
	find := func(fs []*pb.FlowRecord, host, dir, src, dst string, dport uint32, verdict string) *pb.FlowRecord {
		for _, f := range fs {
			if f.HostId == host && f.Direction == dir && f.Src == src && f.Dst == dst && (dport == 0 || f.DstPort == dport) && f.Verdict == verdict {
				return f
			}
		}
		return nil
	}
	all := list(&pb.ListFlowsRequest{})
	for _, want := range []struct {
		host, dir, src, dst string
		dport               uint32
		verdict             string
	}{
		{"host-b", "egress", app.PrivateIp, web.PrivateIp, 80, "forwarded"},
		{"host-a", "ingress", app.PrivateIp, web.PrivateIp, 80, "delivered"},
		{"host-a", "egress", web.PrivateIp, app.PrivateIp, 0, "forwarded"},
		{"host-a", "egress", web.PrivateIp, webAddr.String(), 80, "forwarded"},
		{"host-b", "egress", "", web.PrivateIp, 80, "no-route"},
	} {
		src := want.src
		if src == "" { // green's instance
			for _, f := range all {
				if f.Verdict == "no-route" {
					src = f.Src
				}
			}
		}
		f := find(all, want.host, want.dir, src, want.dst, want.dport, want.verdict)
		if f == nil {
			t.Errorf("no %s %s flow %s → %s:%d %s in %d records", want.host, want.dir, src, want.dst, want.dport, want.verdict, len(all))
			continue
		}
		if f.Packets == 0 || f.Bytes == 0 || f.Protocol != "tcp" {
			t.Errorf("flow %+v: want TCP with packets and bytes", f)
		}
	}
	// At the edges: web's flow to the internet, translated; app's dropped.
	var translated, noEIP bool
	for _, f := range all {
		if strings.HasPrefix(f.HostId, "edge-") && f.Direction == "egress" && f.Dst == webAddr.String() {
			translated = translated || f.Src == web.PrivateIp && f.Verdict == "forwarded"
			noEIP = noEIP || f.Src == app.PrivateIp && f.Verdict == "no-public-ip"
		}
	}
	if !translated || !noEIP {
		t.Errorf("edges' records: web translated %v, app dropped for no-public-ip %v", translated, noEIP)
	}

	// Filters.
	for _, f := range list(&pb.ListFlowsRequest{Verdict: "dropped"}) {
		if f.Verdict == "forwarded" || f.Verdict == "delivered" {
			t.Errorf("--verdict dropped listed %+v", f)
		}
	}
	for _, f := range list(&pb.ListFlowsRequest{Instance: web.Id}) {
		if f.Src != web.PrivateIp && f.Dst != web.PrivateIp {
			t.Errorf("--instance %s listed %+v", web.Id, f)
		}
	}
	if fs := list(&pb.ListFlowsRequest{Host: "host-a", Verdict: "no-route"}); len(fs) != 0 {
		t.Errorf("host-a recorded no no-route flow, yet got %+v", fs)
	}
	if _, err := s.api.Inst.ListFlows(s.c.Ctx(), connect.NewRequest(&pb.ListFlowsRequest{Verdict: "lost"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("an unknown verdict: %v, want invalid_argument", err)
	}
}

// TestTrace: `openvpc trace` on the live caches gives the verdict and the
// reason of each case — delivered across hosts and on one host, across a
// peering, refused without one, a miss, a forged source, the internet with
// and without an Elastic IP — and a live trace collects every hop's report.
func TestTrace(t *testing.T) {
	s := newInternetScene(t)
	web, _ := s.run(t, "red-a", s.a, s.red)
	app, _ := s.run(t, "red-a", s.b, s.red)
	near, _ := s.run(t, "red-b", s.a, s.red)
	_, _ = s.run(t, "yellow-a", s.b, s.yellow)
	green, _ := s.run(t, "green-a", s.b, s.green)
	s.peer(t)
	s.elastic(t, web)
	yellowIP := "10.1.1.4"
	ctx := s.c.Ctx()
	trace := func(req *pb.TraceInstanceRequest) *pb.TraceInstanceResponse {
		t.Helper()
		r, err := s.api.Inst.TraceInstance(ctx, connect.NewRequest(req))
		if err != nil {
			t.Fatalf("trace %v: %v", req, err)
		}
		return r.Msg
	}
	for _, tc := range []struct {
		name              string
		req               *pb.TraceInstanceRequest
		verdict           string
		hosts             []string // the hops, in order
		failedStep, about string   // the step that stopped it, and a word of its reason
	}{
		{"across hosts", &pb.TraceInstanceRequest{From: app.Id, To: web.Id}, "delivered", []string{"host-b", "host-a"}, "", ""},
		{"on one host, through the VPC router", &pb.TraceInstanceRequest{From: near.Id, To: web.PrivateIp, Protocol: "icmp"}, "delivered", []string{"host-a"}, "", ""},
		{"across the peering", &pb.TraceInstanceRequest{From: web.Id, To: yellowIP, Protocol: "udp", Port: 53}, "delivered", []string{"host-a", "host-b"}, "", ""},
		{"green without a peering", &pb.TraceInstanceRequest{From: green.Id, To: web.PrivateIp}, "no-route", []string{"host-b"}, "route", "no route"},
		{"an address nobody has", &pb.TraceInstanceRequest{From: app.Id, To: "10.0.1.99"}, "no-mapping", []string{"host-b"}, "mapping", "miss"},
		{"a forged source", &pb.TraceInstanceRequest{From: app.Id, To: web.Id, Source: "10.0.1.77"}, "spoofed-source", []string{"host-b"}, "source check", "not the address"},
		{"the internet with an Elastic IP", &pb.TraceInstanceRequest{From: web.Id, To: webAddr.String()}, "forwarded", []string{"host-a", "edge-"}, "", ""},
		{"the internet without one", &pb.TraceInstanceRequest{From: app.Id, To: webAddr.String()}, "no-public-ip", []string{"host-b", "edge-"}, "Elastic IP", "no Elastic IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := trace(tc.req)
			if r.Verdict != tc.verdict || len(r.Hops) != len(tc.hosts) {
				t.Fatalf("verdict %s over %d hops, want %s over %v: %v", r.Verdict, len(r.Hops), tc.verdict, tc.hosts, r.Hops)
			}
			for i, h := range r.Hops {
				if !strings.HasPrefix(h.HostId, tc.hosts[i]) {
					t.Errorf("hop %d is %s, want %s", i, h.HostId, tc.hosts[i])
				}
				if len(h.Steps) == 0 {
					t.Errorf("hop %s explains nothing", h.HostId)
				}
			}
			last := r.Hops[len(r.Hops)-1].Steps
			failed := last[len(last)-1]
			if tc.failedStep == "" {
				for _, h := range r.Hops {
					for _, st := range h.Steps {
						if !st.Pass {
							t.Errorf("%s: step %q failed (%s) on a packet that got through", h.HostId, st.Name, st.Detail)
						}
					}
				}
				return
			}
			if failed.Pass || failed.Name != tc.failedStep || !strings.Contains(failed.Detail, tc.about) {
				t.Errorf("last step %+v, want %q failing with %q", failed, tc.failedStep, tc.about)
			}
		})
	}
	// Nothing was sent: the logical traces raised no security event.
	if evs, err := s.api.Inst.ListEvents(ctx, connect.NewRequest(&pb.ListEventsRequest{})); err != nil || len(evs.Msg.Events) != 0 {
		t.Errorf("logical traces raised events: %v, %v", evs, err)
	}

	// What a receiving host does with packets no instance could send: the
	// ingress half of the attack matrix, explained on host-a's cache.
	t.Run("arrivals", func(t *testing.T) {
		hs, err := s.api.Inst.ListHosts(ctx, connect.NewRequest(&pb.ListHostsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		var url string
		for _, h := range hs.Msg.Hosts {
			if h.Id == "host-a" {
				url = h.AgentUrl
			}
		}
		// Only a server may call an agent: the test asks as the server does.
		hc, err := s.c.Server(0).Trust.AgentClient("host-a", url)
		if err != nil {
			t.Fatal(err)
		}
		ag := openvpcv1connect.NewAgentServiceClient(hc, url)
		wrap := func(src, dst string, vni, srcVNI uint32) []byte {
			pkt, err := datapath.Probe(packet.ProtoTCP, netip.MustParseAddr(src), netip.MustParseAddr(dst), 80)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, packet.Headroom+len(pkt))
			copy(buf[packet.Headroom:], pkt)
			start, _ := packet.EncapsulateGeneve(buf, len(pkt), vni, packet.GeneveOptions{SourceVNI: srcVNI})
			return buf[start:]
		}
		for _, tc := range []struct {
			name, outer string
			payload     []byte
			verdict     string
			step, about string
		}{
			{"from an unregistered address", "127.0.9.9", wrap(app.PrivateIp, web.PrivateIp, s.red.Vni, s.red.Vni), "unknown-sender", "known sender", "no host"},
			{"host-b claims web's neighbour near", "127.0.1.2", wrap(near.PrivateIp, web.PrivateIp, s.red.Vni, s.red.Vni), "sender-mismatch", "sender owns the source", "does not live on"},
			{"green straight into red", "127.0.1.2", wrap(green.PrivateIp, web.PrivateIp, s.red.Vni, s.green.Vni), "not-peered", "peered", "not actively peered"},
			{"for an ENI elsewhere", "127.0.1.2", wrap(web.PrivateIp, app.PrivateIp, s.red.Vni, s.red.Vni), "not-local", "destination is local", "not an ENI on this host"},
			{"app to web, as host-b sends it", "127.0.1.2", wrap(app.PrivateIp, web.PrivateIp, s.red.Vni, s.red.Vni), "delivered", "", ""},
		} {
			r, err := ag.Trace(ctx, connect.NewRequest(&pb.TraceRequest{Payload: tc.payload, OuterSrc: tc.outer}))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			last := r.Msg.Steps[len(r.Msg.Steps)-1]
			if r.Msg.Verdict != tc.verdict || tc.step != "" && (last.Pass || last.Name != tc.step || !strings.Contains(last.Detail, tc.about)) {
				t.Errorf("%s: verdict %s, last step %+v; want %s at %q (%q)", tc.name, r.Msg.Verdict, last, tc.verdict, tc.step, tc.about)
			}
		}
		if evs, err := s.api.Inst.ListEvents(ctx, connect.NewRequest(&pb.ListEventsRequest{})); err != nil || len(evs.Msg.Events) != 0 {
			t.Errorf("explaining arrivals raised events: %v, %v", evs, err)
		}
	})

	t.Run("live across hosts", func(t *testing.T) {
		r := trace(&pb.TraceInstanceRequest{From: app.Id, To: web.Id, Live: true})
		if r.Verdict != "delivered" || len(r.Hops) != 2 || r.Hops[0].HostId != "host-b" || r.Hops[0].Story != "egress" ||
			r.Hops[1].HostId != "host-a" || r.Hops[1].Story != "ingress" || r.TraceId == 0 {
			t.Fatalf("live trace: %v", r)
		}
		// Each hop's steps are the story's own, recorded on the real packet.
		for i, want := range []string{"encapsulate", "deliver"} {
			if st := r.Hops[i].Steps; len(st) == 0 || st[len(st)-1].Name != want || !st[len(st)-1].Pass {
				t.Errorf("live hop %d: steps %v, want them to end passing %q", i, st, want)
			}
		}
	})
	t.Run("live to the internet", func(t *testing.T) {
		r := trace(&pb.TraceInstanceRequest{From: web.Id, To: webAddr.String(), Protocol: "icmp", Live: true})
		if r.Verdict != "forwarded" || len(r.Hops) != 2 || r.Hops[1].Story != "edge outbound" || !strings.HasPrefix(r.Hops[1].HostId, "edge-") {
			t.Fatalf("live trace to the internet: %v", r)
		}
		if st := r.Hops[1].Steps; len(st) == 0 || st[len(st)-1].Name != "translate and send out" {
			t.Errorf("the edge's live steps: %v", st)
		}
	})
}

// peer peers red and yellow and routes between them, and waits until the
// hosts know.
func (s *scene) peer(t *testing.T) {
	t.Helper()
	// Before the peering, so hosts hold the rules by the time they hold it.
	s.allowFrom(t, s.red, "all", "", "10.1.0.0/16")
	s.allowFrom(t, s.yellow, "all", "", "10.0.0.0/16")
	ctx := s.c.Ctx()
	p, err := s.api.VPC.CreatePeering(ctx, connect.NewRequest(&pb.CreatePeeringRequest{Vpc: "red", PeerVpc: "yellow"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.VPC.AcceptPeering(ctx, connect.NewRequest(&pb.AcceptPeeringRequest{Ref: p.Msg.Peering.Id})); err != nil {
		t.Fatal(err)
	}
	for _, rt := range []struct{ rtb, dest string }{{s.red.MainRouteTableId, "10.1.0.0/16"}, {s.yellow.MainRouteTableId, "10.0.0.0/16"}} {
		if _, err := s.api.VPC.CreateRoute(ctx, connect.NewRequest(&pb.CreateRouteRequest{RouteTable: rt.rtb, DestinationCidr: rt.dest, Target: p.Msg.Peering.Id})); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		for _, a := range []*agent.Agent{s.a, s.b} {
			if !a.Cache.Tables.Load().Peered(s.red.Vni, s.yellow.Vni) {
				return false
			}
		}
		return true
	})
}
