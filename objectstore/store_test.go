package objectstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/openvpc/openvpc/policy"
	"github.com/openvpc/openvpc/vpceproxy"
)

// running is a store on loopback: its endpoint and direct listeners.
type running struct {
	*Store
	endpoints, direct string
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	el, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Endpoints, cfg.Direct = el, dl
	if cfg.EndpointPolicy == nil {
		cfg.EndpointPolicy = everyEndpoint
	}
	if cfg.TrustPeer == nil {
		cfg.TrustPeer = loopback // the test plays the service nodes
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &running{Store: s, endpoints: el.Addr().String(), direct: dl.Addr().String()}
}

func everyEndpoint(string) *policy.Policy { return policy.FullAccessPolicy() }

func loopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// client is an S3 client; with o.Endpoint set, every connection it makes
// begins with the header a service node writes for o, as if it came
// through that endpoint.
func client(t *testing.T, addr string, o *vpceproxy.Origin) *s3.Client {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: false}
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil || o == nil {
			return c, err
		}
		if err := vpceproxy.Write(c, *o); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	t.Cleanup(tr.CloseIdleConnections)
	return s3.New(s3.Options{
		BaseEndpoint: aws.String("http://s3.openvpc.internal"),
		UsePathStyle: true,
		Region:       "openvpc",
		Credentials:  credentials.NewStaticCredentialsProvider("openvpc", "openvpc", ""),
		HTTPClient:   &http.Client{Transport: tr},
	})
}

func via(vpce, vpc, src string) *vpceproxy.Origin {
	return &vpceproxy.Origin{Source: netip.MustParseAddrPort(src + ":40000"), Dest: netip.MustParseAddrPort("198.51.100.10:80"), Endpoint: vpce, VPC: vpc}
}

func put(ctx context.Context, c *s3.Client, bucket, key, body string) error {
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader([]byte(body))})
	return err
}

func get(ctx context.Context, c *s3.Client, bucket, key string) (string, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return string(b), err
}

func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
		t.Fatalf("%s: %v, want AccessDenied", what, err)
	}
}

func TestSDKThroughEndpoint(t *testing.T) {
	ctx := context.Background()
	s := start(t, Config{})
	a := client(t, s.endpoints, via("vpce-aaaa", "vpc-0001", "10.0.1.5"))
	if _, err := a.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	if err := put(ctx, a, "bkt", "dir/k", "hello"); err != nil {
		t.Fatal(err)
	}
	got, err := get(ctx, a, "bkt", "dir/k")
	if err != nil || got != "hello" {
		t.Fatalf("get = %q, %v", got, err)
	}
	l, err := a.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt")})
	if err != nil || len(l.Contents) != 1 || *l.Contents[0].Key != "dir/k" {
		t.Fatalf("list = %+v, %v", l, err)
	}
	if _, err := a.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("dir/k")}); err != nil {
		t.Fatal(err)
	}
	// Multipart: two parts, the first at S3's 5 MiB minimum.
	up, err := a.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String("big")})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i, body := range [][]byte{bytes.Repeat([]byte("x"), 5<<20), []byte("tail")} {
		n := int32(i + 1)
		p, err := a.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("bkt"), Key: aws.String("big"), UploadId: up.UploadId, PartNumber: &n, Body: bytes.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{ETag: p.ETag, PartNumber: &n})
	}
	if _, err := a.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String("big"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
	h, err := a.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("big")})
	if err != nil || *h.ContentLength != 5<<20+4 {
		t.Fatalf("head big = %v, %v", h, err)
	}
	if _, err := a.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("bkt"), Key: aws.String("dir/k")}); err != nil {
		t.Fatal(err)
	}

	// Every request is logged with the instance's private address and the endpoint.
	reqs := s.Requests()
	if len(reqs) < 8 {
		t.Fatalf("%d requests logged", len(reqs))
	}
	for _, r := range reqs {
		if r.Source != netip.MustParseAddr("10.0.1.5") || r.Endpoint != "vpce-aaaa" || r.VPC != "vpc-0001" {
			t.Fatalf("logged %+v, want source 10.0.1.5 via vpce-aaaa in vpc-0001", r)
		}
	}
	if r := reqs[1]; r.Action != "s3:PutObject" || r.Key != "dir/k" || r.Status != 200 {
		t.Fatalf("second request logged as %+v", r)
	}
}

const onlyA = `{"Version":"2012-10-17","Statement":[{"Sid":"only-via-vpce-a","Effect":"Deny","Principal":"*","Action":"s3:*",
  "Resource":["arn:aws:s3:::bkt","arn:aws:s3:::bkt/*"],"Condition":{"StringNotEquals":{"aws:SourceVpce":"vpce-aaaa"}}}]}`

func TestBucketPolicyOnlyViaEndpoint(t *testing.T) {
	ctx := context.Background()
	s := start(t, Config{})
	a := client(t, s.endpoints, via("vpce-aaaa", "vpc-0001", "10.0.1.5"))
	b := client(t, s.endpoints, via("vpce-bbbb", "vpc-0002", "10.0.1.5"))
	internet := client(t, s.direct, nil)
	if _, err := a.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("bkt"), Policy: aws.String(onlyA)}); err != nil {
		t.Fatal(err)
	}
	got, err := a.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String("bkt")})
	if err != nil || *got.Policy != onlyA {
		t.Fatalf("GetBucketPolicy = %v, %v", got, err)
	}
	if err := put(ctx, a, "bkt", "k", "v"); err != nil {
		t.Fatalf("through vpce-aaaa: %v", err)
	}
	wantDenied(t, "put over the internet", put(ctx, internet, "bkt", "k", "w"))
	_, err = get(ctx, internet, "bkt", "k")
	wantDenied(t, "get over the internet", err)
	wantDenied(t, "put through vpce-bbbb", put(ctx, b, "bkt", "k", "w"))
	_, err = b.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: aws.String("bkt")})
	wantDenied(t, "delete the policy through vpce-bbbb", err)

	denied := 0
	for _, r := range s.Requests() {
		if r.Status == http.StatusForbidden {
			denied++
			if r.Decision != policy.ExplicitDeny || r.Endpoint == "vpce-aaaa" {
				t.Errorf("refused %+v", r)
			}
		}
	}
	if denied != 4 {
		t.Errorf("%d refusals logged, want 4", denied)
	}

	if _, err := a.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String("bkt")}); err == nil || !strings.Contains(err.Error(), "NoSuchBucketPolicy") {
		t.Fatalf("GetBucketPolicy after delete: %v", err)
	}
	if err := put(ctx, internet, "bkt", "k", "w"); err != nil {
		t.Fatalf("without the policy the internet path works: %v", err)
	}
	_, err = a.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("bkt"), Policy: aws.String(`{"Statement":{"Effect":"Perhaps"}}`)})
	if err == nil || !strings.Contains(err.Error(), "MalformedPolicy") {
		t.Fatalf("a bad policy: %v", err)
	}
}

func TestEndpointPolicy(t *testing.T) {
	ctx := context.Background()
	readOnly, err := policy.Parse([]byte(`{"Statement":{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:ListBucket","s3:CreateBucket"],"Resource":"*"}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, Config{EndpointPolicy: func(vpce string) *policy.Policy {
		if vpce == "vpce-ro" {
			return readOnly
		}
		return policy.FullAccessPolicy()
	}})
	ro := client(t, s.endpoints, via("vpce-ro", "vpc-1", "10.0.0.9"))
	rw := client(t, s.endpoints, via("vpce-rw", "vpc-1", "10.0.0.9"))
	if _, err := ro.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	wantDenied(t, "put through a read-only endpoint", put(ctx, ro, "bkt", "k", "v"))
	if err := put(ctx, rw, "bkt", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := get(ctx, ro, "bkt", "k"); err != nil || v != "v" {
		t.Fatalf("get through the read-only endpoint: %q %v", v, err)
	}
}

// TestTrustsOnlyServiceNodes: the endpoint listener refuses a connection
// without the header; the direct listener refuses one with it (a client
// claiming to be a service node).
func TestTrustsOnlyServiceNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := start(t, Config{})
	plain := client(t, s.endpoints, nil)
	if _, err := plain.ListBuckets(ctx, &s3.ListBucketsInput{}); err == nil {
		t.Fatal("a plain connection to the endpoint listener was served")
	}
	forged := client(t, s.direct, via("vpce-aaaa", "vpc-1", "10.0.1.5"))
	if _, err := forged.ListBuckets(ctx, &s3.ListBucketsInput{}); err == nil {
		t.Fatal("a PROXY header on the direct listener was believed")
	}
	for _, r := range s.Requests() {
		t.Errorf("a request was served: %+v", r)
	}
}

func TestDiskKeepsObjectsAndPolicies(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	func() {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		el, _ := net.Listen("tcp", "127.0.0.1:0")
		s, err := New(Config{Dir: dir, Endpoints: el, EndpointPolicy: everyEndpoint, TrustPeer: loopback})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		a := client(t, el.Addr().String(), via("vpce-aaaa", "vpc-1", "10.0.1.5"))
		if _, err := a.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
			t.Fatal(err)
		}
		if err := put(ctx, a, "bkt", "k", "kept"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("bkt"), Policy: aws.String(onlyA)}); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}()
	s := start(t, Config{Dir: dir})
	if v, err := get(ctx, client(t, s.endpoints, via("vpce-aaaa", "vpc-1", "10.0.1.5")), "bkt", "k"); err != nil || v != "kept" {
		t.Fatalf("after a restart: %q, %v", v, err)
	}
	_, err := get(ctx, client(t, s.direct, nil), "bkt", "k")
	wantDenied(t, "the policy after a restart", err)
}

func TestClassify(t *testing.T) {
	cases := []struct{ method, url, action, resource string }{
		{"GET", "/", "s3:ListAllMyBuckets", "arn:aws:s3:::*"},
		{"PUT", "/bkt", "s3:CreateBucket", "arn:aws:s3:::bkt"},
		{"GET", "/bkt?list-type=2", "s3:ListBucket", "arn:aws:s3:::bkt"},
		{"HEAD", "/bkt", "s3:ListBucket", "arn:aws:s3:::bkt"},
		{"DELETE", "/bkt", "s3:DeleteBucket", "arn:aws:s3:::bkt"},
		{"PUT", "/bkt?policy", "s3:PutBucketPolicy", "arn:aws:s3:::bkt"},
		{"GET", "/bkt?policy", "s3:GetBucketPolicy", "arn:aws:s3:::bkt"},
		{"DELETE", "/bkt?policy", "s3:DeleteBucketPolicy", "arn:aws:s3:::bkt"},
		{"POST", "/bkt?delete", "s3:DeleteObject", "arn:aws:s3:::bkt"},
		{"GET", "/bkt/k/x", "s3:GetObject", "arn:aws:s3:::bkt/k/x"},
		{"PUT", "/bkt/k", "s3:PutObject", "arn:aws:s3:::bkt/k"},
		{"POST", "/bkt/k?uploads", "s3:PutObject", "arn:aws:s3:::bkt/k"},
		{"PUT", "/bkt/k?uploadId=1&partNumber=1", "s3:PutObject", "arn:aws:s3:::bkt/k"},
		{"DELETE", "/bkt/k?uploadId=1", "s3:AbortMultipartUpload", "arn:aws:s3:::bkt/k"},
		{"DELETE", "/bkt/k", "s3:DeleteObject", "arn:aws:s3:::bkt/k"},
		// gofakes3 routes by these before the key (review finding 2).
		{"GET", "/bkt/k?uploadId=", "s3:GetObject", "arn:aws:s3:::bkt/k"},
		{"DELETE", "/bkt/k?uploadId=", "s3:DeleteObject", "arn:aws:s3:::bkt/k"},
		{"GET", "/bkt/k?uploadId=1", "s3:ListMultipartUploadParts", "arn:aws:s3:::bkt/k"},
		{"PUT", "/bkt/k?versioning", "s3:PutBucketVersioning", "arn:aws:s3:::bkt"},
		{"GET", "/bkt/k?versioning", "s3:GetBucketVersioning", "arn:aws:s3:::bkt"},
		{"GET", "/bkt/k?versions", "s3:ListBucketVersions", "arn:aws:s3:::bkt"},
		{"GET", "/bkt/k?uploads", "s3:ListBucketMultipartUploads", "arn:aws:s3:::bkt"},
		{"GET", "/bkt/k?versionId=v1", "s3:GetObjectVersion", "arn:aws:s3:::bkt/k"},
		{"GET", "/bkt/k?versionId=null", "s3:GetObject", "arn:aws:s3:::bkt/k"},
		{"DELETE", "/bkt/k?versionId=v1", "s3:DeleteObjectVersion", "arn:aws:s3:::bkt/k"},
		{"GET", "/bkt/k?policy", "s3:GetObject", "arn:aws:s3:::bkt/k"},
		{"GET", "/bkt?location", "s3:GetBucketLocation", "arn:aws:s3:::bkt"},
	}
	for _, c := range cases {
		r, _ := http.NewRequest(c.method, "http://s3"+c.url, nil)
		o := classify(r)
		if o.action != c.action || o.resource() != c.resource {
			t.Errorf("%s %s = %s on %s, want %s on %s", c.method, c.url, o.action, o.resource(), c.action, c.resource)
		}
	}
}

// FuzzClassify: any method and URL a client sends gets an action and an
// ARN naming the bucket and key of its path, never a panic.
func FuzzClassify(f *testing.F) {
	f.Add("GET", "/bkt/k?uploadId=1")
	f.Add("PUT", "/bkt?policy")
	f.Fuzz(func(t *testing.T, method, target string) {
		r, err := http.NewRequest("GET", "http://s3"+target, nil)
		if err != nil || !strings.HasPrefix(r.URL.Path, "/") {
			return
		}
		r.Method = method
		o := classify(r)
		if !strings.HasPrefix(o.action, "s3:") || !strings.HasPrefix(o.resource(), "arn:aws:s3:::") {
			t.Fatalf("%s %s → %q on %q", method, target, o.action, o.resource())
		}
	})
}
