package objectstore

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// recorder is a gofakes3 backend that remembers what gofakes3 asked of
// it: the ground truth classify must agree with.
type recorder struct {
	gofakes3.Backend
	mu    sync.Mutex
	calls []call
}

type call struct{ op, bucket, key, srcBucket, srcKey string }

func (r *recorder) add(c call) { r.mu.Lock(); r.calls = append(r.calls, c); r.mu.Unlock() }

func (r *recorder) ListBuckets() ([]gofakes3.BucketInfo, error) {
	r.add(call{op: "ListBuckets"})
	return r.Backend.ListBuckets()
}
func (r *recorder) ListBucket(name string, p *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	r.add(call{op: "ListBucket", bucket: name})
	return r.Backend.ListBucket(name, p, page)
}
func (r *recorder) CreateBucket(name string) error {
	r.add(call{op: "CreateBucket", bucket: name})
	return r.Backend.CreateBucket(name)
}
func (r *recorder) DeleteBucket(name string) error {
	r.add(call{op: "DeleteBucket", bucket: name})
	return r.Backend.DeleteBucket(name)
}
func (r *recorder) ForceDeleteBucket(name string) error {
	r.add(call{op: "DeleteBucket", bucket: name})
	return r.Backend.ForceDeleteBucket(name)
}
func (r *recorder) GetObject(b, k string, rr *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	r.add(call{op: "GetObject", bucket: b, key: k})
	return r.Backend.GetObject(b, k, rr)
}
func (r *recorder) HeadObject(b, k string) (*gofakes3.Object, error) {
	r.add(call{op: "HeadObject", bucket: b, key: k})
	return r.Backend.HeadObject(b, k)
}
func (r *recorder) DeleteObject(b, k string) (gofakes3.ObjectDeleteResult, error) {
	r.add(call{op: "DeleteObject", bucket: b, key: k})
	return r.Backend.DeleteObject(b, k)
}
func (r *recorder) PutObject(b, k string, meta map[string]string, in io.Reader, size int64, c *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	r.add(call{op: "PutObject", bucket: b, key: k})
	return r.Backend.PutObject(b, k, meta, in, size, c)
}
func (r *recorder) DeleteMulti(b string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	for _, k := range keys {
		r.add(call{op: "DeleteObject", bucket: b, key: k})
	}
	return r.Backend.DeleteMulti(b, keys...)
}
func (r *recorder) CopyObject(sb, sk, db, dk string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	r.add(call{op: "CopyObject", bucket: db, key: dk, srcBucket: sb, srcKey: sk})
	return r.Backend.CopyObject(sb, sk, db, dk, meta)
}

// actionsFor are the actions that allow a backend call.
var actionsFor = map[string][]string{
	"ListBuckets":  {"s3:ListAllMyBuckets"},
	"ListBucket":   {"s3:ListBucket"},
	"CreateBucket": {"s3:CreateBucket"},
	"DeleteBucket": {"s3:DeleteBucket"},
	"GetObject":    {"s3:GetObject", "s3:GetObjectVersion"},
	"HeadObject":   {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"}, // a copy heads its source, checked as GetObject
	"DeleteObject": {"s3:DeleteObject", "s3:DeleteObjectVersion"},
	"PutObject":    {"s3:PutObject"},
	"CopyObject":   {"s3:PutObject"},
}

// agree runs one request through gofakes3 on a recording backend and
// fails if gofakes3 did anything the action and resource classify named
// (and, for a copy, copySource named) do not cover.
func agree(t *testing.T, method, target string, hdr http.Header, body string) {
	t.Helper()
	mem := s3mem.New()
	_ = mem.CreateBucket("bkt")
	_, _ = mem.PutObject("bkt", "k", map[string]string{}, strings.NewReader("v"), 1, nil)
	rec := &recorder{Backend: mem}
	srv := gofakes3.New(rec, gofakes3.WithAutoBucket(false)).Server()
	r, err := http.NewRequest(method, "http://s3"+target, bytes.NewReader([]byte(body)))
	if err != nil || !strings.HasPrefix(r.URL.Path, "/") {
		return
	}
	for k, v := range hdr {
		r.Header[k] = v
	}
	op := classify(r)
	if op.policy || op.refuse != "" || len(op.key) > maxKey || len(op.bucket) > maxBucket {
		return // answered by the store itself, never by gofakes3
	}
	srv.ServeHTTP(httptest.NewRecorder(), r)
	sb, sk, present, ok := copySource(r.Header)
	for _, c := range rec.calls {
		allowed := false
		for _, a := range actionsFor[c.op] {
			allowed = allowed || a == op.action
		}
		res := "arn:aws:s3:::" + c.bucket
		if c.key != "" {
			res += "/" + c.key
		}
		onResource := res == op.resource() || op.deleteMulti && c.bucket == op.bucket || c.op == "ListBuckets" && op.bucket == ""
		if c.op == "HeadObject" && op.action == "s3:PutObject" {
			// gofakes3 heads a copy's source: the store checks GetObject on it.
			allowed, onResource = present && ok && sb == c.bucket && sk == c.key, true
		}
		if c.op == "CopyObject" && !(present && ok && sb == c.srcBucket && sk == c.srcKey) {
			t.Errorf("%s %s %v: gofakes3 copied from %s/%s, the store would check %q/%q (%v %v)", method, target, hdr, c.srcBucket, c.srcKey, sb, sk, present, ok)
		}
		if !allowed || !onResource {
			t.Errorf("%s %s: gofakes3 ran %s on %s; classify said %s on %s", method, target, c.op, res, op.action, op.resource())
		}
	}
}

// TestClassifyMatchesGofakes3 (review finding 2): for each route, what
// gofakes3 does to the backend is what classify authorized.
func TestClassifyMatchesGofakes3(t *testing.T) {
	copyFrom := func(s string) http.Header { return http.Header{"X-Amz-Copy-Source": {s}} }
	cases := []struct {
		method, target string
		hdr            http.Header
		body           string
	}{
		{"GET", "/", nil, ""}, {"GET", "/bkt", nil, ""}, {"HEAD", "/bkt", nil, ""}, {"PUT", "/new", nil, ""},
		{"DELETE", "/bkt", nil, ""}, {"GET", "/bkt?location", nil, ""}, {"GET", "/bkt/k", nil, ""}, {"HEAD", "/bkt/k", nil, ""},
		{"PUT", "/bkt/k2", nil, "x"}, {"DELETE", "/bkt/k", nil, ""},
		{"GET", "/bkt/k?uploadId=", nil, ""}, {"DELETE", "/bkt/k?uploadId=", nil, ""}, {"PUT", "/bkt/k?uploadId=", nil, "x"},
		{"GET", "/bkt/k?versionId=null", nil, ""}, {"DELETE", "/bkt/k?versionId=", nil, ""},
		{"PUT", "/bkt/x?versioning", nil, "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"},
		{"GET", "/bkt/x?versions", nil, ""}, {"GET", "/bkt/k?uploads", nil, ""}, {"POST", "/bkt/k?uploads", nil, ""},
		{"POST", "/bkt?delete", nil, "<Delete><Object><Key>k</Key></Object><Object><Key>z</Key></Object></Delete>"},
		{"PUT", "/bkt/c", copyFrom("/bkt/k"), ""}, {"PUT", "/bkt/c", copyFrom("bkt/k?versionId=1"), ""},
		{"PUT", "/bkt/c", copyFrom("%2Fbkt%2Fk"), ""}, {"PUT", "/bkt/c", copyFrom("/bkt/%6B"), ""},
	}
	for _, c := range cases {
		agree(t, c.method, c.target, c.hdr, c.body)
	}
}

// FuzzClassifyMatchesGofakes3: any method, URL and copy source agree.
func FuzzClassifyMatchesGofakes3(f *testing.F) {
	f.Add("GET", "/bkt/k?uploadId=", "", "")
	f.Add("PUT", "/bkt/x?versioning", "", "")
	f.Add("PUT", "/bkt/c", "/bkt/k", "")
	f.Add("POST", "/bkt?delete", "", "<Delete><Object><Key>k</Key></Object></Delete>")
	f.Fuzz(func(t *testing.T, method, target, src, body string) {
		switch method {
		case "GET", "PUT", "POST", "DELETE", "HEAD":
		default:
			return
		}
		var hdr http.Header
		if src != "" {
			hdr = http.Header{"X-Amz-Copy-Source": {src}}
		}
		agree(t, method, target, hdr, body)
	})
}
