package testcloud_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/packet/packettest"
	"github.com/openvpc/openvpc/pki"
	"github.com/openvpc/openvpc/testcloud"
	"github.com/openvpc/openvpc/underlay"
)

// eventCounts lists the stored security events of host per reason, after
// waiting until at least want of them are stored (and a little more, so
// any extra one would have arrived).
func eventCounts(t *testing.T, c *testcloud.Cloud, host string, want int) map[string][]*pb.SecurityEvent {
	t.Helper()
	out := map[string][]*pb.SecurityEvent{}
	count := func() int {
		clear(out)
		r, err := c.API().Inst.ListEvents(c.Ctx(), connect.NewRequest(&pb.ListEventsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ev := range r.Msg.Events {
			if ev.HostId == host {
				out[ev.Reason] = append(out[ev.Reason], ev)
				n++
			}
		}
		return n
	}
	waitFor(t, func() bool { return count() >= want })
	time.Sleep(300 * time.Millisecond)
	count()
	return out
}

// TestHostCertificateActsOnlyAsItsHost: with host-a's certificate a host
// can neither subscribe to host-b's scope nor read it, nor register,
// acknowledge or report as host-b, nor move to another underlay address,
// nor call the management API; each refusal is a security event, one per
// reason (repeats fold into it).
func TestHostCertificateActsOnlyAsItsHost(t *testing.T) {
	s := newScene(t)
	s.run(t, "yellow-a", s.b, s.yellow)
	ctx := s.c.Ctx()
	asA := s.c.HostClients(s.api.URL, "host-a", netip.MustParseAddr("127.0.1.1"))
	denied := func(what string, err error) {
		t.Helper()
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("%s with host-a's certificate: %v, want permission denied", what, err)
		}
	}

	// The scope of another host: its stream, and its VPC's records.
	st, err := asA.Mapping.Subscribe(ctx, connect.NewRequest(&pb.SubscribeRequest{HostId: "host-b"}))
	if err == nil {
		for st.Receive() {
			t.Fatal("host-a received host-b's mapping stream")
		}
		err = st.Err()
	}
	denied("subscribe as host-b", err)
	_, err = asA.Mapping.GetVpcMappings(ctx, connect.NewRequest(&pb.GetVpcMappingsRequest{HostId: "host-b", Vni: s.yellow.Vni}))
	denied("read host-b's VPC", err)

	// Claims as another host, or to another address.
	_, err = asA.Mapping.Register(ctx, connect.NewRequest(&pb.RegisterRequest{HostId: "host-b", UnderlayAddress: "127.0.1.2"}))
	denied("register as host-b", err)
	_, err = asA.Mapping.Register(ctx, connect.NewRequest(&pb.RegisterRequest{HostId: "host-a", UnderlayAddress: "127.0.1.2"}))
	denied("register host-b's underlay address", err)
	_, err = asA.Mapping.Ack(ctx, connect.NewRequest(&pb.AckRequest{HostId: "host-b", Revision: 1}))
	denied("acknowledge as host-b", err)
	_, err = asA.Mapping.ReportEvents(ctx, connect.NewRequest(&pb.ReportEventsRequest{HostId: "host-b", Events: []*pb.SecurityEvent{{Reason: "spoofed-source"}}}))
	denied("report as host-b", err)
	// An edge certificate for host-a's id would be another identity; a
	// host's may not register as an edge.
	_, err = asA.Mapping.Register(ctx, connect.NewRequest(&pb.RegisterRequest{HostId: "host-a", UnderlayAddress: "127.0.1.1", Role: pb.HostRole_HOST_ROLE_EDGE}))
	denied("register as an edge", err)

	// The management API, on each of its services.
	_, err = asA.VPC.ListVpcs(ctx, connect.NewRequest(&pb.ListVpcsRequest{}))
	denied("VpcService.ListVpcs", err)
	_, err = asA.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: "yellow-a", Host: "host-a"}))
	denied("InstanceService.RunInstance", err)
	_, err = asA.Trust.CreateJoinToken(ctx, connect.NewRequest(&pb.CreateJoinTokenRequest{Role: pb.HostRole_HOST_ROLE_HOST}))
	denied("TrustService.CreateJoinToken", err)
	_, err = asA.Trust.RemoveHost(ctx, connect.NewRequest(&pb.RemoveHostRequest{HostId: "host-b"}))
	denied("TrustService.RemoveHost", err)

	// Its own requests still work: the certificate is fine, the claims were not.
	if _, err := asA.Mapping.Ack(ctx, connect.NewRequest(&pb.AckRequest{HostId: "host-a", Revision: 1})); err != nil {
		t.Fatalf("host-a acknowledging as itself: %v", err)
	}

	got := eventCounts(t, s.c, "host-a", 3)
	for reason, n := range map[string]int64{"scope-refused": 2, "claim-refused": 5, "management-refused": 4} {
		evs := got[reason]
		if len(evs) != 1 {
			t.Errorf("%d %s events, want 1: %v", len(evs), reason, evs)
			continue
		}
		// Repeats within the rate-limit window are folded into the next
		// stored event; the metric counts each refusal.
		if c := metric(t, s.c, `openvpc_security_events_total{host="host-a",reason="`+reason+`"}`); c != n {
			t.Errorf("openvpc_security_events_total for %s = %d, want %d refusals", reason, c, n)
		}
	}
	if len(got) != 3 {
		t.Errorf("events of host-a: %v, want scope-refused, claim-refused and management-refused only", got)
	}
	if len(eventCounts(t, s.c, "host-b", 0)) != 0 {
		t.Error("host-b was blamed for host-a's requests")
	}
}

// metric reads one sample of the server's /metrics.
func metric(t *testing.T, c *testcloud.Cloud, name string) int64 {
	t.Helper()
	resp, err := c.AdminConn().HTTP.Get(c.Server(0).URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var n float64
			if _, err := fmt.Sscan(v, &n); err == nil {
				return int64(n)
			}
		}
	}
	return 0
}

// TestAgentAPIOnlyForServers: a host agent's API answers only openvpc
// servers: not a client without a certificate, not another host, not an
// administrator's token.
func TestAgentAPIOnlyForServers(t *testing.T) {
	s := newScene(t)
	hs, err := s.api.Inst.ListHosts(s.c.Ctx(), connect.NewRequest(&pb.ListHostsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	url := ""
	for _, h := range hs.Msg.Hosts {
		if h.Id == "host-a" {
			url = h.AgentUrl
		}
	}
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("host-a's agent API is %q, want https", url)
	}
	b := s.c.Credentials("host-b", pki.RoleHost, netip.MustParseAddr("127.0.1.2"))
	admin := s.c.Admin()
	pool, _ := pki.NewCredentialsPool([]byte(admin.CA))
	for name, cfg := range map[string]*tls.Config{
		"no certificate":     {RootCAs: pool, InsecureSkipVerify: true},
		"host-b certificate": pki.AgentClientTLS(b.Pool, b.Current, "host-a"),
	} {
		hc := pki.HTTPClient(cfg)
		_, err := openvpcv1connect.NewAgentServiceClient(hc, url).Flows(s.c.Ctx(), connect.NewRequest(&pb.FlowsRequest{}))
		if err == nil {
			t.Errorf("agent API answered a caller with %s", name)
		}
	}
	// Through the server it works.
	if _, err := s.api.Inst.ListFlows(s.c.Ctx(), connect.NewRequest(&pb.ListFlowsRequest{Host: "host-a"})); err != nil {
		t.Fatalf("flows through the server: %v", err)
	}
}

// TestManagementNeedsAdminToken: without a token, with a wrong one or a
// malformed one, every management call is Unauthenticated; with the admin
// token it succeeds. Join tokens are one-time and expire.
func TestManagementNeedsAdminToken(t *testing.T) {
	c := testcloud.New(t, etcd)
	url := c.Server(0).URL()
	admin := c.Admin()
	pool, err := pki.NewCredentialsPool([]byte(admin.CA))
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := pki.ParseCert([]byte(admin.CA))
	if err != nil {
		t.Fatal(err)
	}
	good, _ := pki.ParseToken(admin.Token)
	wrong := pki.Token{ID: good.ID, Secret: pki.NewToken().Secret}
	var methods []string
	for _, f := range []protoreflect.FileDescriptor{pb.File_openvpc_v1_vpc_proto, pb.File_openvpc_v1_instance_proto, pb.File_openvpc_v1_trust_proto} {
		svcs := f.Services()
		for i := range svcs.Len() {
			ms := svcs.Get(i).Methods()
			for j := range ms.Len() {
				m := ms.Get(j)
				if m.IsStreamingServer() || m.IsStreamingClient() || m.Name() == "Join" || m.Name() == "Renew" {
					continue // Join and Renew are for hosts; streams below
				}
				methods = append(methods, "/"+string(svcs.Get(i).FullName())+"/"+string(m.Name()))
			}
		}
	}
	if len(methods) < 30 {
		t.Fatalf("found only %d management methods", len(methods))
	}
	hc := pki.HTTPClient(pki.ClientTLS(pool, nil))
	call := func(path, token string) (int, string) {
		req, _ := http.NewRequest("POST", url+path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, m := range methods {
		for name, tok := range map[string]string{"no token": "", "a wrong secret": wrong.String(), "garbage": "let-me-in"} {
			if code, body := call(m, tok); code != http.StatusUnauthorized || !strings.Contains(body, "unauthenticated") {
				t.Errorf("%s with %s: %d %s, want 401 unauthenticated", m, name, code, body)
			}
		}
		if code, body := call(m, admin.Token); code == http.StatusUnauthorized || code == http.StatusForbidden {
			t.Errorf("%s with the admin token: %d %s", m, code, body)
		}
	}
	// A stream too.
	anon := openvpcv1connect.NewInstanceServiceClient(hc, url)
	st, err := anon.WatchEvents(c.Ctx(), connect.NewRequest(&pb.WatchEventsRequest{}))
	if err == nil {
		for st.Receive() {
		}
		err = st.Err()
	}
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("WatchEvents without a token: %v", err)
	}
	// The no-token error says what to do.
	_, err = anon.ListHosts(c.Ctx(), connect.NewRequest(&pb.ListHostsRequest{}))
	if !strings.Contains(err.Error(), "no admin token") {
		t.Errorf("no-token error %q does not say how to get one", err)
	}

	// Join tokens: one use each, and not after they expire.
	api := c.API()
	join := func(token, id string) error {
		key, _ := pki.NewKey()
		csr, _ := pki.NewCSR(key, id)
		jc := openvpcv1connect.NewTrustServiceClient(pki.HTTPClient(pki.PinnedTLS(pki.Fingerprint(caCert.Raw))), url)
		_, err := jc.Join(c.Ctx(), connect.NewRequest(&pb.JoinRequest{Token: token, HostId: id, Csr: csr, UnderlayAddress: "127.0.1.77"}))
		return err
	}
	tok := func(ttl int64) string {
		r, err := api.Trust.CreateJoinToken(c.Ctx(), connect.NewRequest(&pb.CreateJoinTokenRequest{Role: pb.HostRole_HOST_ROLE_HOST, TtlSeconds: ttl}))
		if err != nil {
			t.Fatal(err)
		}
		return r.Msg.Token
	}
	once := tok(60)
	if err := join(once, "host-new"); err != nil {
		t.Fatalf("join with a fresh token: %v", err)
	}
	if err := join(once, "host-other"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("second join with one token: %v, want unauthenticated", err)
	}
	if err := join(tok(60), "host-new"); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Errorf("joining as an id that has joined: %v, want already exists", err)
	}
	short := tok(1)
	time.Sleep(1500 * time.Millisecond)
	if err := join(short, "host-late"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("join with an expired token: %v, want unauthenticated", err)
	}
}

// TestRemovedHostIsCutOff: removing a host revokes its certificate, ends
// its stream and withdraws its instances within one heartbeat; what its
// data plane still sends is dropped as unknown-sender, and it cannot come
// back with its old certificate.
func TestRemovedHostIsCutOff(t *testing.T) {
	s := newScene(t)
	client, clientNS := s.run(t, "red-a", s.a, s.red)
	web, webNS := s.run(t, "red-a", s.b, s.red)
	if err := ping(clientNS, client.PrivateIp, web.PrivateIp); err != nil {
		t.Fatalf("before removal: %v", err)
	}
	start := time.Now()
	r, err := s.api.Trust.RemoveHost(s.c.Ctx(), connect.NewRequest(&pb.RemoveHostRequest{HostId: "host-b"}))
	if err != nil {
		t.Fatal(err)
	}
	if r.Msg.Revoked < 1 || len(r.Msg.Terminated) != 1 || r.Msg.Terminated[0] != web.Id {
		t.Fatalf("remove host-b: %v", r.Msg)
	}
	// Within one heartbeat: host-b's stream is closed, and host-a holds
	// neither its record nor its instance's mapping.
	waitFor(t, func() bool {
		st := s.a.Cache.State()
		_, knowsB := st.Hosts["host-b"]
		return !s.b.Sub.Connected() && !knowsB && len(st.Mappings) == 1
	})
	if took := time.Since(start); took > s.c.Heartbeat {
		t.Errorf("cutting host-b off took %v, more than a heartbeat (%v)", took, s.c.Heartbeat)
	}
	// What still leaves host-b is from an unknown sender: its instance's
	// ping (unless host-b already removed the instance: see below), and a
	// datagram put on host-b's own socket, as its data plane with its old
	// cache would send it.
	before := s.a.Plane.Counters.Get(datapath.UnknownSender)
	if err := ping(webNS, web.PrivateIp, client.PrivateIp); err == nil {
		t.Fatal("the removed host's instance still reaches host-a")
	}
	buf := make([]byte, packet.Headroom+128)
	n := packettest.UDP(buf, web.PrivateIp, client.PrivateIp, 8, packet.DefaultTTL, false)
	off, _ := packet.EncapsulateGeneve(buf, n, s.red.Vni, packet.GeneveOptions{SourceVNI: s.red.Vni})
	d := []underlay.Datagram{{Buf: buf, Off: off, Len: packet.Headroom + n - off, Peer: netip.AddrPortFrom(s.a.Underlay, s.c.WirePort())}}
	if _, err := s.b.Wire.WriteBatch(d); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.a.Plane.Counters.Get(datapath.UnknownSender) > before })
	if got := s.a.Plane.Counters.Get(datapath.UnknownSender); got <= before {
		t.Fatalf("host-a counted no unknown-sender drops (%d before, %d after)", before, got)
	}
	// host-b learns of its removal when the server refuses it (its stream
	// ended before its instance was terminated): it removes the instance
	// then, without waiting to be stopped.
	waitFor(t, func() bool { _, ok := s.b.NIC(s.red.Vni, netip.MustParseAddr(web.PrivateIp)); return !ok })
	if _, ok := s.b.NIC(s.red.Vni, netip.MustParseAddr(web.PrivateIp)); ok {
		t.Fatal("the removed host still runs its instance's NIC")
	}
	// It does not come back: its certificate is refused everywhere.
	time.Sleep(2 * s.c.Heartbeat)
	if s.b.Sub.Connected() {
		t.Fatal("host-b resubscribed with a revoked certificate")
	}
	hs, _ := s.api.Inst.ListHosts(s.c.Ctx(), connect.NewRequest(&pb.ListHostsRequest{}))
	for _, h := range hs.Msg.Hosts {
		if h.Id == "host-b" {
			t.Fatal("host-b registered again")
		}
	}
	_, err = s.b.Sub.Client.Ack(s.c.Ctx(), connect.NewRequest(&pb.AckRequest{HostId: "host-b", Revision: 1}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("a call with host-b's revoked certificate: %v, want unauthenticated (revoked)", err)
	}
}

// TestCertificateRenewal: with certificates that live three seconds,
// agents renew them every two while instances talk across hosts: the
// traffic never breaks or stalls, and the control plane stays connected.
func TestCertificateRenewal(t *testing.T) {
	c := testcloud.NewWith(t, etcd, testcloud.Options{CertTTL: 3 * time.Second})
	s := &scene{c: c, api: c.API()}
	s.a = c.AddAgent("host-a", netip.MustParseAddr("127.0.1.1"))
	s.b = c.AddAgent("host-b", netip.MustParseAddr("127.0.1.2"))
	s.red = s.vpc(t, "red", "10.0.0.0/16", "10.0.1.0/24")
	_, clientNS := s.run(t, "red-a", s.a, s.red)
	web, webNS := s.run(t, "red-a", s.b, s.red)
	first := s.a.Creds.Current().Leaf.SerialNumber

	// A TCP echo service on web, and one connection from client that
	// carries a message every 20ms while the certificates are renewed: it
	// must never break nor stall.
	l, err := webNS.Net.ListenTCP(&net.TCPAddr{Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	conn, err := clientNS.DialContext(c.Ctx(), "tcp", web.PrivateIp+":7")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var sent int
	var slowest time.Duration
	renewals := map[string]bool{}
	msg, back := make([]byte, 512), make([]byte, 512)
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		msg[0] = byte(sent)
		start := time.Now()
		conn.SetDeadline(start.Add(2 * time.Second))
		if _, err := conn.Write(msg); err != nil {
			t.Fatalf("message %d: %v", sent, err)
		}
		if _, err := io.ReadFull(conn, back); err != nil || back[0] != msg[0] {
			t.Fatalf("message %d: echo %v, %v", sent, back[0], err)
		}
		slowest = max(slowest, time.Since(start))
		sent++
		renewals[s.a.Creds.Current().Leaf.SerialNumber.String()] = true
		renewals[s.b.Creds.Current().Leaf.SerialNumber.String()+"b"] = true
	}
	t.Logf("%d round trips across hosts during renewals, the slowest %v", sent, slowest)
	if slowest > time.Second {
		t.Errorf("traffic stalled for %v during renewals", slowest)
	}
	if len(renewals) < 6 || s.a.Creds.Current().Leaf.SerialNumber.Cmp(first) == 0 {
		t.Errorf("certificates seen: %d; want each agent to have renewed at least twice in 8s", len(renewals))
	}
	if !s.a.Sub.Connected() || !s.b.Sub.Connected() {
		t.Error("an agent lost its subscription over renewals")
	}
	// The control plane still works end to end with renewed certificates:
	// a new instance becomes running (every host in scope acknowledged).
	r, err := s.api.Inst.RunInstance(c.Ctx(), connect.NewRequest(&pb.RunInstanceRequest{Subnet: "red-a", Host: "host-b"}))
	if err == nil {
		_, err = s.api.Inst.WaitInstance(c.Ctx(), connect.NewRequest(&pb.WaitInstanceRequest{Ref: r.Msg.Instance.Id, TimeoutMs: 8000}))
	}
	if err != nil {
		t.Fatalf("an instance did not become running after renewals: %v", err)
	}
}
