package servicenode

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/host/tables"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/policy"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConnectionFlood (review finding 8): an instance opening connection
// after connection gets MaxConns of them; the rest are refused and
// counted, and once it lets go the endpoint serves again.
func TestConnectionFlood(t *testing.T) {
	const limit, flood = 8, 40
	w := newWorld(t, func(c *Config) { c.MaxConns = limit })
	in := w.addInstance("10.0.1.5", 7, 0xa)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range flood {
		c, err := in.net.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(serviceIP, 80))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	waitFor(t, "refusals", func() bool { return w.node.Refused.Load() == flood-limit })
	waitFor(t, "the admitted connections reaching the store", func() bool { return w.node.Conns.Load() == limit })
	if w.node.Conns.Load() != limit || w.node.Refused.Load() != flood-limit {
		t.Fatalf("conns %d refused %d, want %d and %d", w.node.Conns.Load(), w.node.Refused.Load(), limit, flood-limit)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	c := in.s3()
	waitFor(t, "the endpoint to serve again", func() bool {
		_, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
		return err == nil
	})
}

// TestIdleConnectionClosed (review finding 8): a proxied connection on
// which nothing moves is closed after IdleTimeout, and a busy one is not.
func TestIdleConnectionClosed(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	in := w.addInstance("10.0.1.5", 7, 0xa)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := in.net.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(serviceIP, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from an idle connection")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("an idle connection lived %v", d)
	}
	waitFor(t, "the idle count", func() bool { return w.node.Idle.Load() == 1 })
	// Requests spaced under the timeout on one connection keep it.
	s := in.s3()
	if _, err := s.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		time.Sleep(100 * time.Millisecond)
		if _, err := s.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.node.Idle.Load(); n != 1 {
		t.Fatalf("%d connections closed as idle, want 1", n)
	}
}

// TestCatalogPolicies (review finding 7): a known endpoint without a
// document has full access, stated; an unknown one gets nil (the store
// denies it); a document that does not parse grants nothing; a parse is
// reused while the document stays the same (finding 10).
func TestCatalogPolicies(t *testing.T) {
	var c Catalog
	if c.Policy("vpce-000000000000000a") != nil {
		t.Fatal("a policy before the first Set")
	}
	ro := `{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}`
	eps := []CatalogEndpoint{{Endpoint: Endpoint{ID: 0xa, VNI: 7}}, {Endpoint: Endpoint{ID: 0xb, VNI: 8}, Policy: ro}, {Endpoint: Endpoint{ID: 0xc, VNI: 9}, Policy: "{"}}
	node := netip.MustParseAddr("192.0.2.9")
	c.Set(eps, nil, []netip.Addr{node})
	put := &policy.Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::b/k"}
	if p := c.Policy(vpce(0xa)); p == nil || p.Evaluate(put) != policy.Allow {
		t.Fatalf("no document: %v", p)
	}
	p := c.Policy(vpce(0xb))
	if p == nil || p.Evaluate(put) == policy.Allow {
		t.Fatalf("read-only: %v", p)
	}
	if p := c.Policy(vpce(0xc)); p == nil || p.Evaluate(put) == policy.Allow {
		t.Fatal("a document that does not parse allowed a request")
	}
	if c.Policy(vpce(0xd)) != nil {
		t.Fatal("an unknown endpoint has a policy")
	}
	if !c.ServiceNode(node) || c.ServiceNode(netip.MustParseAddr("192.0.2.10")) {
		t.Fatal("ServiceNode")
	}
	c.Set(eps, nil, nil)
	if c.Policy(vpce(0xb)) != p {
		t.Fatal("the same document was parsed again")
	}
}

// TestWireStoryAllocs (review finding 9): classifying a datagram for an
// endpoint whose stack is up, from the edge that sent last, allocates
// nothing.
func TestWireStoryAllocs(t *testing.T) {
	w := newWorld(t)
	in := w.addInstance("10.0.1.5", 7, 0xa)
	if _, err := in.s3().ListBuckets(context.Background(), &s3.ListBucketsInput{}); err != nil {
		t.Fatal(err) // brings the endpoint's stack up
	}
	// A minimal IPv4 header to the service address, encapsulated as the edge does.
	buf := make([]byte, packet.Headroom+40)
	ip := buf[packet.Headroom:]
	ip[0], ip[3], ip[8], ip[9] = 0x45, 40, 64, 6
	copy(ip[12:16], netip.MustParseAddr("10.0.1.5").AsSlice())
	copy(ip[16:20], serviceIP.AsSlice())
	binary.BigEndian.PutUint16(ip[10:], ^packet.InternetChecksum(ip[:20]))
	start, ok := packet.EncapsulateGeneve(buf, 40, 7, packet.GeneveOptions{SourceVNI: 7, HasEndpoint: true, EndpointID: 0xa})
	if !ok {
		t.Fatal("encapsulate")
	}
	payload := buf[start:] // the Geneve UDP payload, as the wire hands it over
	var e packet.Encap
	if _, v := w.node.classify(edgeAddr, payload, &e); v != datapath.Delivered {
		t.Fatalf("verdict %v", v)
	}
	if n := testing.AllocsPerRun(1000, func() { w.node.classify(edgeAddr, payload, &e) }); n != 0 {
		t.Fatalf("%v allocations per datagram", n)
	}
}

// TestStacksCloseUnderTraffic (review finding 11): stacks whose endpoint
// goes away while uploads stream through them close without a panic
// (netstack's device must not close while a send of the stack is
// pending), round after round.
func TestStacksCloseUnderTraffic(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.Sweep = 10 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	body := make([]byte, 4<<20)
	for round := range 8 {
		id := uint64(0x100 + round)
		in := w.addInstance("10.0.1.5", uint32(10+round), id)
		c := in.s3()
		if round == 0 {
			if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
				t.Fatal(err)
			}
		}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		for k := range 4 {
			go func() {
				defer func() { done <- struct{}{} }()
				_, _ = c.PutObject(rctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String(string(rune('k' + k))), Body: bytesReader(body)})
			}()
		}
		time.Sleep(30 * time.Millisecond)
		w.mu.Lock()
		delete(w.endpoints, id)
		w.mu.Unlock()
		waitFor(t, "the stack to close", func() bool { return w.node.Endpoints() == 0 })
		stop() // the uploads cut off end
		for range 4 {
			<-done
		}
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// TestDirectoryPolicies (review findings 7 and 10): from an edge's cache,
// an endpoint without a document has full access, an unknown one none
// (nil: the store denies it), and a new snapshot reuses the parse of a
// document that did not change.
func TestDirectoryPolicies(t *testing.T) {
	tb := tables.New(100)
	ro := `{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}`
	publish := func(vpcID uint64) {
		tx := tb.Begin(int64(vpcID))
		eps := []tables.Endpoint{
			{ID: 0xa, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.10/32")}, Nodes: []netip.Addr{nodeAddr}},
			{ID: 0xb, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.10/32")}, Nodes: []netip.Addr{nodeAddr}, Policy: ro},
		}
		if err := tx.UpsertVPC(tables.VPC{VNI: 7, ID: vpcID, CIDR: netip.MustParsePrefix("10.0.0.0/16"), Endpoints: eps}); err != nil {
			t.Fatal(err)
		}
		tx.Commit()
	}
	publish(1)
	d := NewDirectory(tb)
	put := &policy.Request{Action: "s3:PutObject", Resource: "arn:aws:s3:::b/k"}
	if p := d.Policy(vpce(0xa)); p == nil || p.Evaluate(put) != policy.Allow {
		t.Fatalf("no document: %v", p)
	}
	p := d.Policy(vpce(0xb))
	if p == nil || p.Evaluate(put) == policy.Allow {
		t.Fatalf("read-only: %v", p)
	}
	if d.Policy(vpce(0xc)) != nil {
		t.Fatal("an unknown endpoint has a policy")
	}
	publish(2) // a new snapshot, the same documents
	if _, ok := d.Endpoint(0xa); !ok {
		t.Fatal("endpoint gone after a new snapshot")
	}
	if d.Policy(vpce(0xb)) != p {
		t.Fatal("the same document was parsed again for a new snapshot")
	}
}
