package servicenode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/openvpc/openvpc/datapath"
	"github.com/openvpc/openvpc/model"
	"github.com/openvpc/openvpc/objectstore"
	"github.com/openvpc/openvpc/packet"
	"github.com/openvpc/openvpc/policy"
	"github.com/openvpc/openvpc/underlay"
)

var (
	serviceIP = netip.MustParseAddr("198.51.100.10")
	nodeAddr  = netip.MustParseAddr("127.0.3.1")
	edgeAddr  = netip.MustParseAddr("127.0.3.2")
	strayAddr = netip.MustParseAddr("127.0.3.3")
)

// world is a service node in front of an object store, and an edge's
// place on the wire played by the test: instances' packets go to the node
// encapsulated with their endpoint id, as the edge sends them.
type world struct {
	t     *testing.T
	net   *underlay.MemNet
	node  *Node
	store *objectstore.Store
	edge  underlay.Conn

	mu        sync.Mutex
	endpoints map[uint64]Endpoint
	instances map[[2]uint64]*instance // by (VNI, endpoint)
	events    []datapath.Event
}

type instance struct {
	dev tun.Device
	net *netstack.Net
	ep  Endpoint
}

func newWorld(t *testing.T, opts ...func(*Config)) *world {
	w := &world{t: t, net: underlay.NewMemNet(), endpoints: map[uint64]Endpoint{}, instances: map[[2]uint64]*instance{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	// The store's endpoints listener is a unix socket in a private
	// directory, as in a local cloud: only this process can speak for a
	// service node.
	dir, err := os.MkdirTemp("", "servicenode-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, "s3.sock"))
	if err != nil {
		t.Fatal(err)
	}
	w.store, err = objectstore.New(objectstore.Config{Endpoints: l, EndpointPolicy: func(id string) *policy.Policy {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, ep := range w.endpoints {
			if vpce(ep.ID) == id {
				return policy.FullAccessPolicy()
			}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.store.Run(ctx) }()

	wire, err := w.net.Listen(nodeAddr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Wire: wire, Addrs: []netip.Addr{serviceIP}, Backends: map[uint16]string{80: "unix:" + l.Addr().String()},
		Endpoint: func(id uint64) (Endpoint, bool) {
			w.mu.Lock()
			defer w.mu.Unlock()
			ep, ok := w.endpoints[id]
			return ep, ok
		},
		Edge:   func(a netip.Addr) bool { return a == edgeAddr },
		Sweep:  50 * time.Millisecond,
		Events: func(e datapath.Event) { w.mu.Lock(); w.events = append(w.events, e); w.mu.Unlock() },
	}
	for _, o := range opts {
		o(&cfg)
	}
	w.node, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := w.node.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	w.edge, err = w.net.Listen(edgeAddr)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); w.fromNode() }()
	t.Cleanup(func() { w.edge.Close() })
	return w
}

// addInstance makes an instance at ip in VPC vni that reaches the
// service through endpoint id.
func (w *world) addInstance(ip string, vni uint32, id uint64) *instance {
	w.t.Helper()
	dev, tnet, err := netstack.CreateNetTUN([]netip.Addr{netip.MustParseAddr(ip)}, nil, 1400)
	if err != nil {
		w.t.Fatal(err)
	}
	ep := Endpoint{ID: id, VNI: vni, VPC: uint64(vni) + 0x100}
	in := &instance{dev: dev, net: tnet, ep: ep}
	w.mu.Lock()
	w.endpoints[id] = ep
	w.instances[[2]uint64{uint64(vni), id}] = in
	w.mu.Unlock()
	w.t.Cleanup(func() { dev.Close() })
	go w.toNode(in)
	return in
}

// toNode sends what the instance sends to the node, as an edge does.
func (w *world) toNode(in *instance) {
	buf := make([]byte, packet.Headroom+1500)
	bufs, sizes := [][]byte{buf}, []int{0}
	opts := packet.GeneveOptions{SourceVNI: in.ep.VNI, HasEndpoint: true, EndpointID: in.ep.ID}
	for {
		if _, err := in.dev.Read(bufs, sizes, packet.Headroom); err != nil {
			return
		}
		start, ok := packet.EncapsulateGeneve(buf, sizes[0], in.ep.VNI, opts)
		if !ok {
			continue
		}
		_, _ = w.edge.WriteBatch([]underlay.Datagram{{Buf: buf, Off: start, Len: packet.Headroom + sizes[0] - start, Peer: netip.AddrPortFrom(nodeAddr, underlay.Port)}})
	}
}

// fromNode delivers the node's replies by VNI and endpoint id, and checks
// that each carries both.
func (w *world) fromNode() {
	ds := make([]underlay.Datagram, 8)
	for i := range ds {
		ds[i].Buf = make([]byte, underlay.MaxPayload)
	}
	var e packet.Encap
	for {
		n, err := w.edge.ReadBatch(ds)
		if err != nil {
			return
		}
		for i := range n {
			if !packet.ParseGenevePayload(ds[i].Payload(), &e) || !e.Options.HasEndpoint || e.Options.SourceVNI != e.VNI {
				w.t.Errorf("the node sent a packet without its endpoint id or VPC")
				continue
			}
			if e.Inner.Src() != serviceIP {
				w.t.Errorf("reply from %v, want the service address", e.Inner.Src())
			}
			w.mu.Lock()
			in := w.instances[[2]uint64{uint64(e.VNI), e.Options.EndpointID}]
			w.mu.Unlock()
			if in != nil {
				_, _ = in.dev.Write([][]byte{e.Inner}, 0)
			}
		}
	}
}

func (in *instance) s3() *s3.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return in.net.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(serviceIP, 80))
	}}
	return s3.New(s3.Options{
		BaseEndpoint: aws.String("http://s3.openvpc.internal"), UsePathStyle: true, Region: "openvpc",
		Credentials: credentials.NewStaticCredentialsProvider("openvpc", "openvpc", ""),
		HTTPClient:  &http.Client{Transport: tr, Timeout: 20 * time.Second},
	})
}

func vpce(id uint64) string { return model.FormatID(model.KindEndpoint, id) }

func TestSDKThroughNode(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	in := w.addInstance("10.0.1.5", 7, 0xa)
	c := in.s3()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB: many segments each way
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("got %d bytes (%v), want the %d put", len(got), err, len(body))
	}
	l, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt")})
	if err != nil || len(l.Contents) != 1 {
		t.Fatalf("list: %v %v", l, err)
	}
	reqs := w.store.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests logged, want 4", len(reqs))
	}
	for _, r := range reqs {
		if r.Source != netip.MustParseAddr("10.0.1.5") || r.Endpoint != vpce(0xa) || r.VPC != model.FormatID(model.KindVPC, 0x107) {
			t.Fatalf("store logged %+v: want the instance's private address and its endpoint", r)
		}
	}
	if w.node.Conns.Load() == 0 || w.node.Out.Load() == 0 {
		t.Fatal("the node counted no connection or reply")
	}
}

func deny(bucket string, id uint64) string {
	return fmt.Sprintf(`{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::%s","arn:aws:s3:::%s/*"],"Condition":{"StringNotEquals":{"aws:SourceVpce":"%s"}}}}`, bucket, bucket, vpce(id))
}

func accessDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied"
}

// TestSameAddressTwoVPCs: two VPCs with the same CIDR, an instance at
// the same address in each, each through its own endpoint, uploading at
// once: every connection stays in its endpoint (the store sees each
// request with the right vpce id) and each object lands only in the
// bucket its endpoint may write.
func TestSameAddressTwoVPCs(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	a := w.addInstance("10.0.1.5", 1, 0xa).s3()
	b := w.addInstance("10.0.1.5", 2, 0xb).s3()
	for c, bucket := range map[*s3.Client]string{a: "bkt-a", b: "bkt-b"} {
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("bkt-a"), Policy: aws.String(deny("bkt-a", 0xa))}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("bkt-b"), Policy: aws.String(deny("bkt-b", 0xb))}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for _, who := range []struct {
		c          *s3.Client
		own, other string
	}{{a, "bkt-a", "bkt-b"}, {b, "bkt-b", "bkt-a"}} {
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprintf("obj-%d", i)
				body := bytes.Repeat([]byte(who.own), 5000)
				if _, err := who.c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(who.own), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
					errs <- fmt.Errorf("%s/%s through its own endpoint: %w", who.own, key, err)
				}
				_, err := who.c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(who.other), Key: aws.String(key), Body: bytes.NewReader(body)})
				if !accessDenied(err) {
					errs <- fmt.Errorf("%s/%s through the other VPC's endpoint: %v, want AccessDenied", who.other, key, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, bucket := range []string{"bkt-a", "bkt-b"} {
		l, err := a.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt-a")})
		if bucket == "bkt-b" {
			l, err = b.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt-b")})
		}
		if err != nil || len(l.Contents) != n {
			t.Fatalf("%s holds %v objects (%v), want %d", bucket, l, err, n)
		}
	}
	for _, r := range w.store.Requests() {
		wantEP := map[string]string{"bkt-a": vpce(0xa), "bkt-b": vpce(0xb)}[r.Bucket]
		if r.Status == 200 && r.Action == "s3:PutObject" && r.Endpoint != wantEP {
			t.Errorf("a put to %s through %s succeeded", r.Bucket, r.Endpoint)
		}
		if r.Source != netip.MustParseAddr("10.0.1.5") {
			t.Errorf("logged source %v", r.Source)
		}
	}
	if w.node.Endpoints() != 2 {
		t.Errorf("%d endpoint stacks, want 2", w.node.Endpoints())
	}
}

func TestDrops(t *testing.T) {
	w := newWorld(t)
	w.addInstance("10.0.1.5", 1, 0xa)
	stray, err := w.net.Listen(strayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer stray.Close()
	syn := func(vni uint32, o packet.GeneveOptions, dst netip.Addr) []byte {
		buf := make([]byte, packet.Headroom+40)
		packet.IPv4(buf[packet.Headroom:]).Encode(&packet.IPv4Fields{TotalLen: 40, TTL: 64, Protocol: packet.ProtoTCP, Src: netip.MustParseAddr("10.0.1.5"), Dst: dst})
		start, _ := packet.EncapsulateGeneve(buf, 40, vni, o)
		return buf[start:]
	}
	good := packet.GeneveOptions{SourceVNI: 1, HasEndpoint: true, EndpointID: 0xa}
	cases := []struct {
		name string
		from underlay.Conn
		pkt  []byte
		want datapath.Verdict
	}{
		{"not from an edge", stray, syn(1, good, serviceIP), datapath.UnknownSender},
		{"no endpoint id", w.edge, syn(1, packet.GeneveOptions{SourceVNI: 1}, serviceIP), datapath.NoRoute},
		{"unknown endpoint", w.edge, syn(1, packet.GeneveOptions{SourceVNI: 1, HasEndpoint: true, EndpointID: 0xdead}, serviceIP), datapath.NoRoute},
		{"endpoint of another VPC", w.edge, syn(2, packet.GeneveOptions{SourceVNI: 2, HasEndpoint: true, EndpointID: 0xa}, serviceIP), datapath.NoRoute},
		{"not a service address", w.edge, syn(1, good, netip.MustParseAddr("198.51.100.11")), datapath.NoRoute},
		{"garbage", w.edge, []byte("not geneve"), datapath.Malformed},
	}
	for _, c := range cases {
		before := w.node.In.Get(c.want)
		_, _ = c.from.WriteBatch([]underlay.Datagram{{Buf: c.pkt, Len: len(c.pkt), Peer: netip.AddrPortFrom(nodeAddr, underlay.Port)}})
		deadline := time.Now().Add(5 * time.Second)
		for w.node.In.Get(c.want) == before {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not counted as %v", c.name, c.want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.events) != 1 || w.events[0].Verdict != datapath.UnknownSender || w.events[0].OuterSrc != strayAddr {
		t.Fatalf("security events %+v, want one unknown-sender from %v", w.events, strayAddr)
	}
}

// TestEndpointGoneCutsOff: once the endpoint is gone its stack closes,
// open connections with it, and nothing gets through any more.
func TestEndpointGoneCutsOff(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	c := w.addInstance("10.0.1.5", 1, 0xa).s3()
	if _, err := c.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	delete(w.endpoints, 0xa)
	w.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for w.node.Endpoints() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stack of a deleted endpoint stays up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := c.ListBuckets(ctx, &s3.ListBucketsInput{}); err == nil {
		t.Fatal("a request got through a deleted endpoint")
	}
}
