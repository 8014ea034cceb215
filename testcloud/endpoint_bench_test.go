package testcloud_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/host/nic"
)

// internetOnly puts red's subnet red-b on a route table of its own whose
// only way out is the internet gateway: not associated with the endpoint.
func (s *endpointScene) internetOnly(t testing.TB) {
	t.Helper()
	ctx := s.c.Ctx()
	rt, err := s.api.VPC.CreateRouteTable(ctx, connect.NewRequest(&pb.CreateRouteTableRequest{Vpc: "red", Name: "red-internet"}))
	if err != nil {
		t.Fatal(err)
	}
	igw, err := s.api.VPC.GetInternetGateway(ctx, connect.NewRequest(&pb.GetInternetGatewayRequest{Ref: "red-igw"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.VPC.CreateRoute(ctx, connect.NewRequest(&pb.CreateRouteRequest{RouteTable: rt.Msg.RouteTable.Id, DestinationCidr: "0.0.0.0/0", Target: igw.Msg.InternetGateway.Id})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.api.VPC.AssociateRouteTable(ctx, connect.NewRequest(&pb.AssociateRouteTableRequest{Subnet: "red-b", RouteTable: rt.Msg.RouteTable.Id})); err != nil {
		t.Fatal(err)
	}
}

// TestEndpointNotAssociated: an instance whose subnet's route table is
// not associated with the endpoint never uses it: without an Elastic IP
// it cannot reach the store at all; with one it goes over the internet,
// where the store sees the Elastic IP and no endpoint.
func TestEndpointNotAssociated(t *testing.T) {
	s := newEndpointScene(t)
	ctx := s.c.Ctx()
	s.endpoint(t, s.red, "")
	s.internetOnly(t)
	bare, ns := s.run(t, "red-b", s.a, s.red)
	c := s3Client(ns)
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c.ListBuckets(short, &s3.ListBucketsInput{}); err == nil {
		t.Fatal("an instance without an Elastic IP in a subnet not associated with the endpoint reached the store")
	}
	pub := s.elastic(t, bare)
	if _, err := c.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		t.Fatalf("over the internet: %v", err)
	}
	if r := lastRequest(t, s.s3.Store); r.Source != pub || r.Endpoint != "" {
		t.Fatalf("the store logged %+v: want the Elastic IP %v and no endpoint", r, pub)
	}
}

// BenchmarkEndpointGET is P10: a 64 MiB GET from inside an instance
// through the gateway endpoint, next to the same GET through the
// internet gateway and an Elastic IP to the same store, in the same
// cloud; and small (1 KiB) GETs through the endpoint, one connection
// kept alive, as requests per second.
func BenchmarkEndpointGET(b *testing.B) {
	s := newEndpointScene(b)
	ctx := s.c.Ctx()
	s.endpoint(b, s.red, "")
	s.internetOnly(b)
	_, viaEP := s.run(b, "red-a", s.a, s.red)
	pubInst, viaNet := s.run(b, "red-b", s.a, s.red)
	s.elastic(b, pubInst)
	c := s3Client(viaEP)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
		b.Fatal(err)
	}
	const big = 64 << 20
	if err := put(ctx, c, "bench", "big", bytes.Repeat([]byte("x"), big)); err != nil {
		b.Fatal(err)
	}
	if err := put(ctx, c, "bench", "small", bytes.Repeat([]byte("y"), 1<<10)); err != nil {
		b.Fatal(err)
	}
	get := func(b *testing.B, hc *http.Client, key string, size int) {
		resp, err := hc.Get("http://" + netip.AddrPortFrom(s.s3.Addr, 80).String() + "/bench/" + key)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(size) || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d bytes, %v, status %d", key, n, err, resp.StatusCode)
		}
	}
	client := func(ns *nic.Netstack) *http.Client {
		return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: ns.Net.DialContext}}
	}
	for _, path := range []struct {
		name string
		ns   *nic.Netstack
	}{{"64MiB-endpoint", viaEP}, {"64MiB-internet", viaNet}} {
		b.Run(path.name, func(b *testing.B) {
			hc := client(path.ns)
			get(b, hc, "big", big) // warm: the connection and both stacks' windows
			b.SetBytes(big)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				get(b, hc, "big", big)
			}
			b.ReportMetric(float64(big)*float64(b.N)/time.Since(start).Seconds()/(1<<20), "MiB/s")
		})
	}
	b.Run("small-endpoint", func(b *testing.B) {
		hc := client(viaEP)
		get(b, hc, "small", 1<<10)
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			get(b, hc, "small", 1<<10)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	})
}
