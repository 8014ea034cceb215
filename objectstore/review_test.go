package objectstore

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/openvpc/openvpc/policy"
	"github.com/openvpc/openvpc/vpceproxy"
)

func vpceproxyWrite(c net.Conn, o *vpceproxy.Origin) error { return vpceproxy.Write(c, *o) }

// secretStore is a store with bucket "secret" holding k = TOPSECRET under
// doc, written through vpce-aaaa, and an empty bucket "mine".
func secretStore(t *testing.T, cfg Config, doc string) (*running, *s3.Client) {
	t.Helper()
	ctx := context.Background()
	s := start(t, cfg)
	a := client(t, s.endpoints, via("vpce-aaaa", "vpc-0001", "10.0.1.5"))
	for _, b := range []string{"secret", "mine"} {
		if _, err := a.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := put(ctx, a, "secret", "k", "TOPSECRET"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("secret"), Policy: aws.String(doc)}); err != nil {
		t.Fatal(err)
	}
	return s, a
}

const secretOnlyA = `{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*",
  "Resource":["arn:aws:s3:::secret","arn:aws:s3:::secret/*"],"Condition":{"StringNotEquals":{"aws:SourceVpce":"vpce-aaaa"}}}]}`

// raw sends one hand-made request to addr and returns status and body.
func raw(t *testing.T, addr, method, target string, hdr map[string]string, body string) (int, string) {
	t.Helper()
	r, err := http.NewRequest(method, "http://"+addr+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestCopyObjectChecksSource (review finding 1): a copy reads its source,
// so GetObject on the source must be allowed — by the source bucket's
// policy and by the endpoint's.
func TestCopyObjectChecksSource(t *testing.T) {
	ctx := context.Background()
	mineOnly, err := policy.Parse([]byte(`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::mine","arn:aws:s3:::mine/*"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	s, a := secretStore(t, Config{EndpointPolicy: func(vpce string) *policy.Policy {
		if vpce == "vpce-mine" {
			return mineOnly
		}
		return policy.FullAccessPolicy()
	}}, secretOnlyA)
	for _, src := range []string{"/secret/k", "secret/k", "secret/k?versionId=1", "%2Fsecret%2Fk", "/secret/%6B"} {
		code, body := raw(t, s.direct, "PUT", "/mine/copy", map[string]string{"X-Amz-Copy-Source": src}, "")
		if code != http.StatusForbidden || !strings.Contains(body, "AccessDenied") {
			t.Errorf("copy of %q over the internet: %d %s", src, code, body)
		}
	}
	if code, body := raw(t, s.direct, "GET", "/mine/copy", nil, ""); code != http.StatusNotFound {
		t.Fatalf("GET /mine/copy after refused copies: %d %s", code, body)
	}
	// The endpoint policy of vpce-mine allows only bucket mine: copying
	// from a bucket without a policy through it is refused all the same.
	if err := put(ctx, a, "mine", "src", "mine-data"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("open")}); err != nil {
		t.Fatal(err)
	}
	if err := put(ctx, a, "open", "o", "open-data"); err != nil {
		t.Fatal(err)
	}
	m := client(t, s.endpoints, via("vpce-mine", "vpc-0002", "10.0.2.5"))
	_, err = m.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("mine"), Key: aws.String("c"), CopySource: aws.String("open/o")})
	wantDenied(t, "copy from a bucket the endpoint policy does not allow", err)
	if _, err := m.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("mine"), Key: aws.String("c"), CopySource: aws.String("mine/src")}); err != nil {
		t.Fatalf("copy within the allowed bucket: %v", err)
	}
	// Through vpce-aaaa the policy allows the read: the copy works.
	if _, err := a.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("mine"), Key: aws.String("copy"), CopySource: aws.String("secret/k")}); err != nil {
		t.Fatalf("copy through vpce-aaaa: %v", err)
	}
	if v, err := get(ctx, a, "mine", "copy"); err != nil || v != "TOPSECRET" {
		t.Fatalf("the allowed copy: %q %v", v, err)
	}
}

// TestRoutesAsGofakes3 (review finding 2): the action checked is the one
// gofakes3 runs — an empty uploadId is no multipart call, and
// ?versioning/?versions act on the bucket whatever key the path names.
func TestRoutesAsGofakes3(t *testing.T) {
	ctx := context.Background()
	doc := `{"Statement":[{"Effect":"Deny","Principal":"*","Action":["s3:GetObject","s3:DeleteObject","s3:PutBucketVersioning","s3:ListBucketVersions"],
	  "Resource":["arn:aws:s3:::secret","arn:aws:s3:::secret/*"],"Condition":{"StringNotEquals":{"aws:SourceVpce":"vpce-aaaa"}}}]}`
	s, a := secretStore(t, Config{}, doc)
	for _, c := range []struct{ method, target string }{
		{"GET", "/secret/k?uploadId="},
		{"DELETE", "/secret/k?uploadId="},
		{"PUT", "/secret/x?versioning"},
		{"GET", "/secret/x?versions"},
		{"GET", "/secret/k?versionId=null"},
		{"GET", "/secret/k"},
	} {
		body := ""
		if c.method == "PUT" {
			body = `<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>`
		}
		code, out := raw(t, s.direct, c.method, c.target, nil, body)
		if code != http.StatusForbidden || strings.Contains(out, "TOPSECRET") {
			t.Errorf("%s %s over the internet: %d %s", c.method, c.target, code, out)
		}
	}
	if v, err := get(ctx, a, "secret", "k"); err != nil || v != "TOPSECRET" {
		t.Fatalf("k after the refused requests: %q %v", v, err)
	}
	vs, err := a.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String("secret")})
	if err != nil || vs.Status == types.BucketVersioningStatusEnabled {
		t.Fatalf("versioning after a refused PutBucketVersioning: %+v %v", vs, err)
	}
}

// TestDeleteObjectsPerKey (review finding 3): DeleteObjects is authorized
// per key it names, and browser POST uploads are refused.
func TestDeleteObjectsPerKey(t *testing.T) {
	ctx := context.Background()
	doc := `{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::secret/*","Condition":{"StringNotEquals":{"aws:SourceVpce":"vpce-aaaa"}}}]}`
	s, a := secretStore(t, Config{}, doc)
	internet := client(t, s.direct, nil)
	_, err := internet.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("secret"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("k")}}}})
	wantDenied(t, "DeleteObjects of secret/k over the internet", err)
	if v, err := get(ctx, a, "secret", "k"); err != nil || v != "TOPSECRET" {
		t.Fatalf("k after a refused DeleteObjects: %q %v", v, err)
	}
	big := "<Delete>" + strings.Repeat("<Object><Key>x</Key></Object>", 1001) + "</Delete>"
	if code, out := raw(t, s.direct, "POST", "/secret?delete", nil, big); code != http.StatusBadRequest || !strings.Contains(out, "MalformedXML") {
		t.Errorf("1001 keys: %d %s", code, out)
	}
	if code, out := raw(t, s.direct, "POST", "/mine", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, "--x--"); code != http.StatusNotImplemented || !strings.Contains(out, "NotImplemented") {
		t.Errorf("browser upload: %d %s", code, out)
	}
	// Through vpce-aaaa the delete is allowed and happens.
	if _, err := a.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("secret"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("k")}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := get(ctx, a, "secret", "k"); err == nil {
		t.Fatal("k still there after an allowed DeleteObjects")
	}
}

// TestKeyTooLong (review finding 5): an over-long key is refused before
// any policy is matched against it, fast.
func TestKeyTooLong(t *testing.T) {
	s, _ := secretStore(t, Config{}, secretOnlyA)
	start := time.Now()
	code, out := raw(t, s.direct, "GET", "/secret/"+strings.Repeat("a", 100<<10), nil, "")
	if code != http.StatusBadRequest || !strings.Contains(out, "KeyTooLongError") {
		t.Errorf("a 100 KiB key: %d %.200s", code, out)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing a long key took %v", d)
	}
	if code, out := raw(t, s.direct, "GET", "/"+strings.Repeat("b", 100<<10)+"/k", nil, ""); code != http.StatusBadRequest || !strings.Contains(out, "InvalidBucketName") {
		t.Errorf("a 100 KiB bucket name: %d %.200s", code, out)
	}
	if code, out := raw(t, s.direct, "PUT", "/mine/c", map[string]string{"X-Amz-Copy-Source": "/secret/" + strings.Repeat("a", 2000)}, ""); code != http.StatusBadRequest || !strings.Contains(out, "KeyTooLongError") {
		t.Errorf("a copy from a 2000-byte key: %d %.200s", code, out)
	}
}

// FuzzCopySource: any X-Amz-Copy-Source header parses to a bucket without
// a slash or is refused, never a panic.
func FuzzCopySource(f *testing.F) {
	for _, s := range []string{"/b/k", "b/k?versionId=1", "%2Fb%2Fk", "/b/%zz", "b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		b, _, present, ok := copySource(http.Header{"X-Amz-Copy-Source": {src}})
		if !present || (ok && strings.Contains(b, "/")) {
			t.Fatalf("%q → bucket %q present %v ok %v", src, b, present, ok)
		}
	})
}

// TestEndpointsListenerTrust (review finding 6): the store believes a
// PROXY header only from a service node — on TCP it must be told which
// peers those are, and closes the rest unread; a unix socket in a
// private directory needs no list.
func TestEndpointsListenerTrust(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := New(Config{Endpoints: l, EndpointPolicy: everyEndpoint}); err == nil || !strings.Contains(err.Error(), "TrustPeer") {
		t.Fatalf("TCP endpoints without TrustPeer: %v", err)
	}
	s := start(t, Config{TrustPeer: func(net.Addr) bool { return false }})
	forged := client(t, s.endpoints, via("vpce-aaaa", "vpc-0001", "10.0.1.5"))
	if _, err := forged.ListBuckets(ctx, &s3.ListBucketsInput{}); err == nil {
		t.Fatal("a header from a peer that is no service node was believed")
	}
	if n := len(s.Requests()); n != 0 {
		t.Fatalf("%d requests served from an untrusted peer", n)
	}

	dir, err := os.MkdirTemp("", "objectstore-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ul, err := net.Listen("unix", filepath.Join(dir, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	us, err := New(Config{Endpoints: ul, EndpointPolicy: everyEndpoint})
	if err != nil {
		t.Fatalf("unix endpoints: %v", err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- us.Run(rctx) }()
	defer func() { stop(); <-done }()
	o := via("vpce-aaaa", "vpc-0001", "10.0.1.5")
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "unix", ul.Addr().String())
		if err == nil {
			err = vpceproxyWrite(c, o)
		}
		return c, err
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://s3/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("through the unix socket: %v %v", resp, err)
	}
	resp.Body.Close()
	if r := us.Requests(); len(r) != 1 || r[0].Endpoint != "vpce-aaaa" {
		t.Fatalf("logged %+v", r)
	}
}

// TestUnknownEndpointDenied (review finding 7): an endpoint the policy
// function does not know gets nothing, and a store with endpoints but no
// policy function is refused at start.
func TestUnknownEndpointDenied(t *testing.T) {
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := New(Config{Endpoints: l, TrustPeer: loopback}); err == nil || !strings.Contains(err.Error(), "EndpointPolicy") {
		t.Fatalf("endpoints without EndpointPolicy: %v", err)
	}
	s := start(t, Config{EndpointPolicy: func(vpce string) *policy.Policy {
		if vpce == "vpce-known" {
			return policy.FullAccessPolicy()
		}
		return nil
	}})
	known := client(t, s.endpoints, via("vpce-known", "vpc-0001", "10.0.1.5"))
	if _, err := known.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	unknown := client(t, s.endpoints, via("vpce-gone", "vpc-0001", "10.0.1.5"))
	_, err = unknown.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt")})
	wantDenied(t, "through an unknown endpoint", err)
}

// TestSourceIPAsAWS: through an endpoint the instance's private address
// is aws:VpcSourceIp and there is no aws:SourceIp, as on AWS; over the
// internet the peer (the Elastic IP) is aws:SourceIp.
func TestSourceIPAsAWS(t *testing.T) {
	ctx := context.Background()
	doc := `{"Statement":[
	  {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::secret/*","Condition":{"StringEquals":{"aws:SourceVpce":"vpce-aaaa"},"NotIpAddress":{"aws:VpcSourceIp":"10.0.1.0/24"}}},
	  {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::secret/*","Condition":{"StringEquals":{"aws:SourceVpce":"vpce-aaaa"},"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}},
	  {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::secret/*","Condition":{"StringNotEquals":{"aws:SourceVpce":"vpce-aaaa"},"NotIpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}]}`
	s, a := secretStore(t, Config{}, doc)
	if v, err := get(ctx, a, "secret", "k"); err != nil || v != "TOPSECRET" {
		t.Fatalf("from 10.0.1.5 through vpce-aaaa (no aws:SourceIp): %q %v", v, err)
	}
	_, err := get(ctx, client(t, s.endpoints, via("vpce-aaaa", "vpc-0001", "10.0.2.5")), "secret", "k")
	wantDenied(t, "from 10.0.2.5 through vpce-aaaa", err)
	if v, err := get(ctx, client(t, s.direct, nil), "secret", "k"); err != nil || v != "TOPSECRET" {
		t.Fatalf("over the internet from loopback (aws:SourceIp 127.0.0.1): %q %v", v, err)
	}
}
