package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/localcloud"
	"github.com/openvpc/openvpc/objectstore"
	"github.com/openvpc/openvpc/packet"
)

// scene1: red → yellow across hosts, the packet's layers as host-1 puts
// it on the wire, and real echoes.
func (d *demo) scene1(ctx context.Context) (Scene, error) {
	red, yellow := d.insts["red"], d.insts["yellow"]
	s := Scene{Title: "red → yellow, across hosts", Caption: "host-1 asks its cache where yellow-1 lives, wraps the packet (physical IP | VPC | inner IP | data) and host-2 checks it before delivering"}
	t, err := d.inst.TraceInstance(ctx, connect.NewRequest(&pb.TraceInstanceRequest{From: red.Id, To: yellow.Id}))
	if err != nil {
		return s, err
	}
	for _, h := range t.Msg.Hops {
		for _, st := range h.Steps {
			if st.Name == "mapping" || st.Name == "encapsulate" || st.Name == "sender owns the source" || st.Name == "peered" {
				s.Wire = append(s.Wire, fmt.Sprintf("%s %s: %s", h.HostId, st.Name, st.Detail))
			}
		}
	}
	if len(t.Msg.Hops) > 0 {
		s.Wire = append(s.Wire, d.layers(t.Msg.Hops[0])...)
	}
	p, err := d.inst.PingInstance(ctx, connect.NewRequest(&pb.PingInstanceRequest{From: red.Id, To: yellow.Id, Count: 3}))
	if err != nil {
		return s, err
	}
	s.Wire = append(s.Wire, fmt.Sprintf("ping red-1 → yellow-1: %d of %d echoes answered", p.Msg.Received, p.Msg.Sent))
	s.Verdict = t.Msg.Verdict
	if p.Msg.Received == 0 {
		s.Verdict = "lost"
	}
	return s, nil
}

// layers decodes the packet red's host would put on the wire for yellow,
// as the trace's first hop reports it.
func (d *demo) layers(hop *pb.TraceHop) []string {
	var e packet.Encap
	if !packet.ParseGenevePayload(hop.Wire, &e) {
		return nil
	}
	in := e.Inner
	tcp := packet.TCP(in.Payload())
	return []string{
		"on the wire, as host-1 sends it:",
		fmt.Sprintf("  outer IPv4  %v → %s  (host-1 → host-2)", d.agentOf(d.insts["red"]).Underlay, hop.NextHop),
		fmt.Sprintf("  UDP         source port from the flow hash → %d (Geneve)", d.wire),
		fmt.Sprintf("  Geneve      VNI %d (yellow), option SourceVPC %d (red)", e.VNI, e.Options.SourceVNI),
		fmt.Sprintf("  inner IPv4  %v → %v, TCP %d → %d [SYN], TTL %d", in.Src(), in.Dst(), tcp.SrcPort(), tcp.DstPort(), in.TTL()),
	}
}

// scene2: green → yellow has no route: green's own host drops it.
func (d *demo) scene2(ctx context.Context) (Scene, error) {
	green, yellow := d.insts["green"], d.insts["yellow"]
	s := Scene{Title: "green → yellow", Caption: "green is peered with nobody: its own host finds no route and the packet never reaches the wire"}
	t, err := d.inst.TraceInstance(ctx, connect.NewRequest(&pb.TraceInstanceRequest{From: green.Id, To: yellow.Id}))
	if err != nil {
		return s, err
	}
	for _, h := range t.Msg.Hops {
		for _, st := range h.Steps {
			if !st.Pass {
				s.Wire = append(s.Wire, fmt.Sprintf("%s %s: %s", h.HostId, st.Name, st.Detail))
			}
		}
	}
	p, err := d.inst.PingInstance(ctx, connect.NewRequest(&pb.PingInstanceRequest{From: green.Id, To: yellow.Id, Count: 1, TimeoutMs: 500}))
	if err != nil {
		return s, err
	}
	s.Wire = append(s.Wire, fmt.Sprintf("ping green-1 → yellow-1: %d of %d echoes answered", p.Msg.Received, p.Msg.Sent))
	s.Verdict = t.Msg.Verdict
	return s, nil
}

// scene3: green's host (or anyone on the underlay) crafts packets that
// claim another identity; the receiving host checks them against its
// cache, drops them and raises security events.
func (d *demo) scene3(ctx context.Context) (Scene, error) {
	red, yellow, green := d.insts["red"], d.insts["yellow"], d.insts["green"]
	s := Scene{Title: "green forges its way in", Caption: "green-1's host, compromised, wraps packets for yellow-1 claiming to come from red-1, then from green itself: host-2 checks both against its cache"}
	greenHost, yellowHost := d.agentOf(green), d.agentOf(yellow)
	conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: greenHost.Underlay.AsSlice()}, &net.UDPAddr{IP: yellowHost.Underlay.AsSlice(), Port: int(d.wire)})
	if err != nil {
		return s, err
	}
	defer conn.Close()
	before := map[string]uint64{}
	for _, v := range datapath.Verdicts() {
		before[v.String()] = yellowHost.Plane.FromWire.Get(v)
	}
	forge := func(src string, srcVNI uint32, what string) error {
		pkt, err := datapath.Probe(packet.ProtoTCP, netip.MustParseAddr(src), netip.MustParseAddr(yellow.PrivateIp), 80)
		if err != nil {
			return err
		}
		buf := make([]byte, packet.Headroom+len(pkt))
		copy(buf[packet.Headroom:], pkt)
		start, _ := packet.EncapsulateGeneve(buf, len(pkt), d.vpcs["yellow"].Vni, packet.GeneveOptions{SourceVNI: srcVNI})
		if _, err := conn.Write(buf[start:]); err != nil {
			return err
		}
		s.Wire = append(s.Wire, fmt.Sprintf("host-3 (%v) sends %s: Geneve VNI %d, SourceVPC %d, inner %s → %s", greenHost.Underlay, what, d.vpcs["yellow"].Vni, srcVNI, src, yellow.PrivateIp))
		return nil
	}
	if err := forge(red.PrivateIp, d.vpcs["red"].Vni, "a packet claiming to be red-1"); err != nil {
		return s, err
	}
	if err := forge(green.PrivateIp, d.vpcs["green"].Vni, "a packet from green, straight into yellow"); err != nil {
		return s, err
	}
	// The events reach the Mapping Service a moment later.
	var events []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(events) < 2; time.Sleep(50 * time.Millisecond) {
		ev, err := d.inst.ListEvents(ctx, connect.NewRequest(&pb.ListEventsRequest{}))
		if err != nil {
			return s, err
		}
		events = events[:0]
		for _, e := range ev.Msg.Events {
			if e.HostId == yellowHost.HostID && (e.Reason == "sender-mismatch" || e.Reason == "not-peered" || e.Reason == "unknown-sender") {
				events = append(events, fmt.Sprintf("security event from %s: %s — outer %s, inner %s → %s, claimed VPC %d", e.HostId, e.Reason, e.OuterSrc, e.InnerSrc, e.InnerDst, e.ClaimedVni))
			}
		}
	}
	s.Wire = append(s.Wire, events...)
	var verdicts []string
	for _, v := range datapath.Verdicts() {
		if n := yellowHost.Plane.FromWire.Get(v) - before[v.String()]; n > 0 && v.Dropped() {
			verdicts = append(verdicts, v.String())
		}
	}
	s.Verdict = strings.Join(verdicts, ", ")
	return s, nil
}

// scene4: the cache — every lookup is local, and a new instance's mapping
// reaches every host in scope before it runs.
func (d *demo) scene4(ctx context.Context) (Scene, error) {
	s := Scene{Title: "the cache", Caption: "each host holds the mappings of its VPCs; a lookup never leaves the host, and a miss is a drop, never a query"}
	for _, h := range d.cloud.Hosts {
		a := h.Agent
		snap := a.Cache.Tables.Load()
		c := &a.Plane.Counters
		s.Wire = append(s.Wire, fmt.Sprintf("%s: %d mappings cached at revision %d; packets forwarded %d, delivered %d, dropped %d; queries to the Mapping Service: none (there is no such path)",
			a.HostID, snap.Len(), snap.Revision(), c.Get(datapath.Forwarded), c.Get(datapath.Delivered), dropped(c)))
	}
	start := time.Now()
	inst, err := d.runInstance(ctx, "yellow-a", "yellow-3", "host-1")
	if err != nil {
		return s, err
	}
	took := time.Since(start)
	hs, err := d.inst.ListHosts(ctx, connect.NewRequest(&pb.ListHostsRequest{}))
	if err != nil {
		return s, err
	}
	var acked []string
	for _, h := range hs.Msg.Hosts {
		if h.AckedRevision >= inst.Revision {
			acked = append(acked, h.Id)
		}
	}
	s.Wire = append(s.Wire, fmt.Sprintf("instance run yellow-3 → running in %d ms: every host in scope acknowledged revision %d first (%s)", took.Milliseconds(), inst.Revision, strings.Join(acked, ", ")))
	s.Verdict = strings.ToLower(strings.TrimPrefix(inst.State.String(), "INSTANCE_STATE_"))
	return s, nil
}

// scene5: red reaches the internet through Blackfoot, as its Elastic IP.
func (d *demo) scene5(ctx context.Context) (Scene, error) {
	red := d.insts["red"]
	s := Scene{Title: "red → the internet, through Blackfoot", Caption: "host-1 sends internet traffic to an edge; the edge checks it, swaps red-1's private address for its Elastic IP and back for the reply"}
	n, ok := d.agentOf(red).NIC(d.vpcOf(red).Vni, netip.MustParseAddr(red.PrivateIp))
	if !ok {
		return s, errors.New("red-1 has no NIC")
	}
	// One connection per request: until the endpoint's route reaches
	// host-1, red-1's packets for the store still take the internet
	// gateway (scene 5's default route), and a connection opened that way
	// would be reset once its packets start taking the endpoint.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: n.DialContext, DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + localcloud.WebAddr.String() + "/")
	if err != nil {
		return s, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.Wire = append(s.Wire, fmt.Sprintf("red-1 (%s) fetches http://%s/ and gets: %q", red.PrivateIp, localcloud.WebAddr, strings.TrimSpace(string(body))))
	fl, err := d.inst.ListFlows(ctx, connect.NewRequest(&pb.ListFlowsRequest{Instance: red.Id, Host: "edge-1"}))
	if err != nil {
		return s, err
	}
	for _, f := range fl.Msg.Flows {
		s.Wire = append(s.Wire, fmt.Sprintf("edge-1 %s flow %s:%d → %s:%d %s, %d packets", f.Direction, f.Src, f.SrcPort, f.Dst, f.DstPort, f.Verdict, f.Packets))
	}
	if strings.Contains(string(body), "from "+d.eip+":") {
		s.Verdict = "translated"
	} else {
		s.Verdict = "not translated"
	}
	return s, nil
}

// dropped is how many packets c counted as drops.
func dropped(c *datapath.Counters) uint64 {
	var n uint64
	for _, v := range datapath.Verdicts() {
		if v.Dropped() {
			n += c.Get(v)
		}
	}
	return n
}

// scene6: red reaches the object store through a gateway endpoint: the
// store sees red-1's private address and the endpoint, and a bucket
// policy "only via vpce-…" refuses the same request over the internet.
func (d *demo) scene6(ctx context.Context) (Scene, error) {
	red, vpc := d.insts["red"], d.vpcs["red"]
	s3 := d.cloud.S3
	s := Scene{Title: "red → the object store, through a gateway endpoint", Caption: "the edge wraps red-1's packets with the endpoint id and keeps their source; the service node hands the store each connection with a PROXY header naming both, so a bucket can say \"only via vpce-…\""}
	if s3 == nil {
		return s, errors.New("the cloud runs no object store")
	}
	ep, err := d.endpt.CreateVpcEndpoint(ctx, connect.NewRequest(&pb.CreateVpcEndpointRequest{Vpc: vpc.Id, ServiceName: s3.Name, RouteTables: []string{vpc.MainRouteTableId}}))
	if err != nil {
		return s, err
	}
	id := ep.Msg.Endpoint.Id
	s.Wire = append(s.Wire, fmt.Sprintf("endpoint create --vpc red --service %s → %s; red's main table routes %s → %s", s3.Name, id, ep.Msg.Endpoint.PrefixListId, id))
	n, ok := d.agentOf(red).NIC(vpc.Vni, netip.MustParseAddr(red.PrivateIp))
	if !ok {
		return s, errors.New("red-1 has no NIC")
	}
	// One connection per request: until the endpoint's route reaches
	// host-1, red-1's packets for the store still take the internet
	// gateway (scene 5's default route), and a connection opened that way
	// would be reset once its packets start taking the endpoint.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: n.DialContext, DisableKeepAlives: true}}
	base := "http://" + s3.Addr.String()
	policy := fmt.Sprintf(`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::talk","arn:aws:s3:::talk/*"],"Condition":{"StringNotEquals":{"aws:SourceVpce":"%s"}}}]}`, id)
	var status []int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		// Wait for the endpoint's route to reach host-1 and the edge: a
		// listing that the store saw arrive through the endpoint.
		if st, err := d.send(hc, http.MethodGet, base+"/", ""); err == nil && st == http.StatusOK && lastVia(s3.Store.Requests()) == id {
			break
		} else if time.Now().After(deadline) {
			return s, fmt.Errorf("red-1 cannot reach the store through %s: %v %v", id, st, err)
		}
	}
	if st, err := d.send(hc, http.MethodPut, base+"/talk", ""); err != nil || st != http.StatusOK {
		return s, fmt.Errorf("creating bucket talk through %s: %v %v", id, st, err)
	}
	for _, r := range []struct{ method, path, body string }{
		{http.MethodPut, "/talk?policy", policy},
		{http.MethodPut, "/talk/slides.txt", "the last scene"},
	} {
		st, err := d.send(hc, r.method, base+r.path, r.body)
		if err != nil {
			return s, err
		}
		status = append(status, st)
	}
	last := s3.Store.Requests()
	for _, r := range last[max(0, len(last)-2):] {
		s.Wire = append(s.Wire, fmt.Sprintf("store: %s %s/%s from %v via %s (%s) → %d", r.Action, r.Bucket, r.Key, r.Source, r.Endpoint, r.VPC, r.Status))
	}
	// The same request over the internet: red's table without the
	// endpoint, red-1 goes out through the igw as its Elastic IP.
	if _, err := d.endpt.ModifyVpcEndpoint(ctx, connect.NewRequest(&pb.ModifyVpcEndpointRequest{Id: id, RemoveRouteTables: []string{vpc.MainRouteTableId}})); err != nil {
		return s, err
	}
	var denied int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st, err := d.send(hc, http.MethodPut, base+"/talk/slides.txt", "over the internet"); err == nil && st == http.StatusForbidden {
			denied = st
			break
		}
	}
	all := s3.Store.Requests()
	r := all[len(all)-1]
	s.Wire = append(s.Wire, fmt.Sprintf("without the endpoint's route: store: %s %s/%s from %v (the Elastic IP), no endpoint → %d AccessDenied", r.Action, r.Bucket, r.Key, r.Source, r.Status))
	if status[0] == http.StatusNoContent && status[1] == http.StatusOK && denied == http.StatusForbidden && r.Source.String() == d.eip {
		s.Verdict = "allowed via " + id + ", denied via the internet"
	} else {
		s.Verdict = fmt.Sprintf("unexpected: %v, internet %d", status, denied)
	}
	return s, nil
}

// lastVia is the endpoint the store's last request came through.
func lastVia(rs []objectstore.Request) string {
	if len(rs) == 0 {
		return ""
	}
	return rs[len(rs)-1].Endpoint
}

// send makes one plain HTTP request (the store takes unsigned requests).
func (d *demo) send(hc *http.Client, method, url, body string) (int, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
