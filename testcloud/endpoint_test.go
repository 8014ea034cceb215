package testcloud_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/openvpc/openvpc/datapath"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/nic"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/localcloud"
	"github.com/openvpc/openvpc/objectstore"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/testcloud"
)

// endpointScene is the internet scene with the object store: reached
// from the internet at localcloud.S3Addr, and through gateway endpoints.
type endpointScene struct {
	*internetScene
	s3 *testcloud.S3
}

func newEndpointScene(t testing.TB) *endpointScene {
	s := &endpointScene{internetScene: newInternetScene(t)}
	s.s3 = s.c.AddS3(s.edges[0], s.inet)
	return s
}

// endpoint creates a gateway endpoint of vpc to the store, in its main
// route table, and waits until the edges and vpc's hosts route to it.
func (s *endpointScene) endpoint(t testing.TB, vpc *pb.Vpc, policy string) *pb.VpcEndpoint {
	t.Helper()
	r, err := s.api.Endpt.CreateVpcEndpoint(s.c.Ctx(), connect.NewRequest(&pb.CreateVpcEndpointRequest{
		Vpc: vpc.Id, ServiceName: s.s3.Name, RouteTables: []string{vpc.MainRouteTableId}, PolicyDocument: policy}))
	if err != nil {
		t.Fatal(err)
	}
	s.waitEndpoint(t, vpc.Vni, r.Msg.Endpoint.Id, true)
	return r.Msg.Endpoint
}

// waitEndpoint waits until every edge's cache does (or does not) hold
// the endpoint of VPC vni.
func (s *endpointScene) waitEndpoint(t testing.TB, vni uint32, id string, want bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		all := true
		for _, e := range s.edges {
			v, ok := e.Cache.Tables.Load().VPC(vni)
			has := false
			if ok {
				for _, ep := range v.Endpoints {
					has = has || fmt.Sprintf("vpce-%016x", ep.ID) == id
				}
			}
			all = all && has == want
		}
		if all {
			time.Sleep(100 * time.Millisecond) // and the hosts (same deltas)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the edges do not agree that VPC %d has %s=%v", vni, id, want)
		}
	}
}

// s3Client is an S3 client inside an instance, for the store's address.
func s3Client(ns *nic.Netstack) *s3.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return ns.Net.DialContext(ctx, "tcp", netip.AddrPortFrom(localcloud.S3Addr, 80).String())
	}}
	return s3.New(s3.Options{
		BaseEndpoint: aws.String("http://s3.openvpc.internal"), UsePathStyle: true, Region: "openvpc",
		Credentials: credentials.NewStaticCredentialsProvider("openvpc", "openvpc", ""),
		HTTPClient:  &http.Client{Transport: tr, Timeout: 5 * time.Second},
		Retryer:     aws.NopRetryer{},
	})
}

func isDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied"
}

func onlyVia(bucket, vpce string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"only-via-endpoint","Effect":"Deny","Principal":"*","Action":"s3:*",
"Resource":["arn:aws:s3:::%s","arn:aws:s3:::%s/*"],"Condition":{"StringNotEquals":{"aws:SourceVpce":"%s"}}}]}`, bucket, bucket, vpce)
}

func put(ctx context.Context, c *s3.Client, bucket, key string, body []byte) error {
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)})
	return err
}

// lastRequest is the store's last logged request.
func lastRequest(t *testing.T, st *objectstore.Store) objectstore.Request {
	t.Helper()
	rs := st.Requests()
	if len(rs) == 0 {
		t.Fatal("the store logged nothing")
	}
	return rs[len(rs)-1]
}

// TestGatewayEndpoint is the talk's last scene: an instance uses S3
// through its VPC's endpoint with its private address and the endpoint
// id seen by the store; a bucket policy "only via vpce-A" holds against
// the internet path (igw + Elastic IP, the store sees the EIP) and
// against another VPC's endpoint; a route table without the endpoint
// takes the internet path; deleting the endpoint cuts it off.
func TestGatewayEndpoint(t *testing.T) {
	s := newEndpointScene(t)
	ctx := s.c.Ctx()
	web, webNS := s.run(t, "red-a", s.a, s.red)
	pub := s.elastic(t, web)
	epA := s.endpoint(t, s.red, "")
	c := s3Client(webNS)

	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("red-data")}); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("openvpc "), 64<<10) // 512 KiB
	if err := put(ctx, c, "red-data", "report", body); err != nil {
		t.Fatal(err)
	}
	l, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("red-data")})
	if err != nil || len(l.Contents) != 1 {
		t.Fatalf("list: %v %v", l, err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("red-data"), Key: aws.String("report")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("got %d bytes back, want the %d put", len(got), len(body))
	}
	for _, r := range s.s3.Store.Requests() {
		if r.Source.String() != web.PrivateIp || r.Endpoint != epA.Id || r.VPC != s.red.Id {
			t.Fatalf("the store logged %+v: want %s via %s", r, web.PrivateIp, epA.Id)
		}
	}

	if _, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("red-data"), Policy: aws.String(onlyVia("red-data", epA.Id))}); err != nil {
		t.Fatal(err)
	}
	if err := put(ctx, c, "red-data", "k", []byte("via A")); err != nil {
		t.Fatalf("through vpce-A: %v", err)
	}

	// Red's main table without the endpoint: the same instance takes the
	// internet path (igw + EIP), where the store sees the EIP and no
	// endpoint, and the policy refuses it.
	if _, err := s.api.Endpt.ModifyVpcEndpoint(ctx, connect.NewRequest(&pb.ModifyVpcEndpointRequest{Id: epA.Id, RemoveRouteTables: []string{s.red.MainRouteTableId}})); err != nil {
		t.Fatal(err)
	}
	var last objectstore.Request
	waitFor(t, func() bool {
		err := put(ctx, c, "red-data", "k", []byte("via the internet"))
		last = lastRequest(t, s.s3.Store)
		return isDenied(err) && last.Source == pub
	})
	if last.Endpoint != "" || last.Status != http.StatusForbidden {
		t.Fatalf("over the internet the store logged %+v: want the EIP %v, no endpoint, refused", last, pub)
	}

	// Another VPC's endpoint: refused.
	yweb, yNS := s.run(t, "yellow-a", s.b, s.yellow)
	epB := s.endpoint(t, s.yellow, "")
	if err := put(ctx, s3Client(yNS), "red-data", "k", []byte("via B")); !isDenied(err) {
		t.Fatalf("through vpce-B: %v, want AccessDenied", err)
	}
	if last = lastRequest(t, s.s3.Store); last.Endpoint != epB.Id || last.Source.String() != yweb.PrivateIp {
		t.Fatalf("through vpce-B the store logged %+v", last)
	}

	// Deleting the endpoint cuts yellow off: it has no other way.
	if _, err := s.api.Endpt.DeleteVpcEndpoint(ctx, connect.NewRequest(&pb.DeleteVpcEndpointRequest{Id: epB.Id})); err != nil {
		t.Fatal(err)
	}
	s.waitEndpoint(t, s.yellow.Vni, epB.Id, false)
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := s3Client(yNS).ListBuckets(short, &s3.ListBucketsInput{}); err == nil {
		t.Fatal("yellow reached the store after its endpoint was deleted")
	}
	rt, err := s.api.VPC.GetRouteTable(ctx, connect.NewRequest(&pb.GetRouteTableRequest{Ref: s.yellow.MainRouteTableId}))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rt.Msg.RouteTable.Routes {
		if r.Target == epB.Id {
			t.Fatalf("the deleted endpoint's route stayed: %v", r)
		}
	}
}

// TestEndpointSameAddresses: two VPCs with the same CIDR, an instance at
// the same address in each, each through its own endpoint, uploading at
// once: no connection mixes — every request reaches the store with its
// own endpoint id — and each object lands only where its policy allows.
func TestEndpointSameAddresses(t *testing.T) {
	s := newEndpointScene(t)
	ctx := s.c.Ctx()
	type side struct {
		vpc    *pb.Vpc
		ep     *pb.VpcEndpoint
		c      *s3.Client
		bucket string
	}
	var sides []*side
	for i, host := range []string{"host-a", "host-b"} {
		name := fmt.Sprintf("twin-%d", i+1)
		vpc := s.vpc(t, name, "10.9.0.0/16", "10.9.1.0/24")
		r, err := s.api.Inst.RunInstance(ctx, connect.NewRequest(&pb.RunInstanceRequest{Subnet: name + "-a", Host: host, Ip: "10.9.1.10"}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.api.Inst.WaitInstance(ctx, connect.NewRequest(&pb.WaitInstanceRequest{Ref: r.Msg.Instance.Id, TimeoutMs: 10000})); err != nil {
			t.Fatal(err)
		}
		agent := s.a
		if host == "host-b" {
			agent = s.b
		}
		ns, err := testcloud.Instance(agent, vpc.Vni, r.Msg.Instance)
		if err != nil {
			t.Fatal(err)
		}
		sd := &side{vpc: vpc, ep: s.endpoint(t, vpc, ""), c: s3Client(ns), bucket: name}
		if _, err := sd.c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
		if _, err := sd.c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(name), Policy: aws.String(onlyVia(name, sd.ep.Id))}); err != nil {
			t.Fatal(err)
		}
		sides = append(sides, sd)
	}
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i, sd := range sides {
		other := sides[1-i]
		for k := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprintf("obj-%d", k)
				if err := put(ctx, sd.c, sd.bucket, key, bytes.Repeat([]byte(sd.bucket), 4000)); err != nil {
					errs <- fmt.Errorf("%s/%s through its own endpoint: %w", sd.bucket, key, err)
				}
				if err := put(ctx, sd.c, other.bucket, key, []byte("intruder")); !isDenied(err) {
					errs <- fmt.Errorf("%s/%s through the other VPC's endpoint: %v, want AccessDenied", other.bucket, key, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, sd := range sides {
		l, err := sd.c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(sd.bucket)})
		if err != nil || len(l.Contents) != n {
			t.Fatalf("%s: %v objects, %v; want %d", sd.bucket, l, err, n)
		}
	}
	for _, r := range s.s3.Store.Requests() {
		if r.Source != netip.MustParseAddr("10.9.1.10") {
			t.Errorf("logged source %v", r.Source)
		}
		if r.Action == "s3:PutObject" && r.Status == http.StatusOK {
			want := sides[0].ep.Id
			if r.Bucket == sides[1].bucket {
				want = sides[1].ep.Id
			}
			if r.Endpoint != want {
				t.Errorf("a put into %s through %s was allowed", r.Bucket, r.Endpoint)
			}
		}
	}
}

// TestForgedEndpoint: a host names, for an instance of one VPC, another
// VPC's endpoint: the edge drops it and raises a security event —
// forged-target when the instance's VPC is one the edge holds (it has
// an endpoint of its own), unknown-sender while the edge holds no VPC
// with an instance on that host (yellow outside its scope).
func TestForgedEndpoint(t *testing.T) {
	s := newEndpointScene(t)
	ctx := s.c.Ctx()
	ep := s.endpoint(t, s.red, "")
	y, _ := s.run(t, "yellow-a", s.a, s.yellow)
	var id uint64
	fmt.Sscanf(ep.Id, "vpce-%x", &id)

	// From host-a's underlay address, as a compromised host agent would.
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.1.1"), 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	forge := func() {
		buf := make([]byte, packet.Headroom+40)
		packet.IPv4(buf[packet.Headroom:]).Encode(&packet.IPv4Fields{TotalLen: 40, TTL: 64, Protocol: packet.ProtoTCP,
			Src: netip.MustParseAddr(y.PrivateIp), Dst: localcloud.S3Addr})
		start, _ := packet.EncapsulateGeneve(buf, 40, s.yellow.Vni, packet.GeneveOptions{SourceVNI: s.yellow.Vni, HasTarget: true, Function: uint8(tables.TargetEndpoint), Target: id})
		for _, e := range s.edges {
			if _, err := conn.WriteToUDPAddrPort(buf[start:], e.WireAddr); err != nil {
				t.Fatal(err)
			}
		}
	}
	event := func(reason string) func() bool {
		return func() bool {
			r, err := s.api.Inst.ListEvents(ctx, connect.NewRequest(&pb.ListEventsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range r.Msg.Events {
				if ev.Reason == reason && ev.InnerSrc == y.PrivateIp && ev.ClaimedVni == s.yellow.Vni {
					return true
				}
			}
			return false
		}
	}
	forge()
	waitFor(t, event("unknown-sender"))
	s.endpoint(t, s.yellow, "")
	forge()
	waitFor(t, event("forged-target"))
	for _, e := range s.edges {
		if got := e.Edge.Out.Get(datapath.ForgedTarget); got != 1 {
			t.Errorf("%v counted %d forged-target drops, want 1", e.WireAddr, got)
		}
	}
}

// TestEndpointTrace: openvpc trace follows a packet to the store through
// the endpoint: the host routes it to the endpoint's edge, the edge finds
// the endpoint and the service node, and says the source is kept.
func TestEndpointTrace(t *testing.T) {
	s := newEndpointScene(t)
	ctx := s.c.Ctx()
	web, _ := s.run(t, "red-a", s.a, s.red)
	ep := s.endpoint(t, s.red, "")
	tr, err := s.api.Inst.TraceInstance(ctx, connect.NewRequest(&pb.TraceInstanceRequest{From: web.Id, To: localcloud.S3Addr.String(), Port: 80}))
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, h := range tr.Msg.Hops {
		for _, st := range h.Steps {
			steps = append(steps, h.HostId+": "+st.Name+": "+st.Detail)
		}
	}
	joined := fmt.Sprint(steps)
	if tr.Msg.Verdict != "forwarded" {
		t.Fatalf("trace verdict %q:\n%s", tr.Msg.Verdict, joined)
	}
	for _, want := range []string{ep.Id, "the VPC has the endpoint", "service node", "source " + web.PrivateIp + " kept"} {
		if !bytes.Contains([]byte(joined), []byte(want)) {
			t.Errorf("the trace does not say %q:\n%s", want, joined)
		}
	}
}
