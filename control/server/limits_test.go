package server_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/openvpc/openvpc/control/server"
	pb "github.com/openvpc/openvpc/gen/openvpc/v1"
	"github.com/openvpc/openvpc/gen/openvpc/v1/openvpcv1connect"
)

// post sends body to a Connect unary procedure and returns the status and
// the error code of the answer.
func post(t *testing.T, hc *http.Client, url string, body io.Reader, size int64, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/proto")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e.Code
}

// zeros is a reader of n zero bytes that allocates nothing.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), z.n)]
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

// allocated runs fn and returns how many bytes the process allocated meanwhile.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestBodiesBoundedBeforeAuth: anonymous callers cannot make the server
// read, inflate or hold much. A gzip bomb to Join, a 50 MB body to Join or
// to the management API without a token, are refused as resource_exhausted
// at once, and the server allocates a small fraction of what they claim.
func TestBodiesBoundedBeforeAuth(t *testing.T) {
	s := startServer(t)
	hc := s.anonymous(t)
	join := s.URL() + openvpcv1connect.TrustServiceJoinProcedure

	// 200 MB of zeros in a gzip body of about 200 KB.
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	io.Copy(zw, &zeros{n: 200 << 20})
	zw.Close()
	gz := http.Header{"Content-Encoding": {"gzip"}}
	cases := []struct {
		name   string
		url    string
		body   func() (io.Reader, int64)
		header http.Header
	}{
		{"gzip bomb to Join", join, func() (io.Reader, int64) { return bytes.NewReader(bomb.Bytes()), int64(bomb.Len()) }, gz},
		{"50 MB body to Join", join, func() (io.Reader, int64) { return &zeros{n: 50 << 20}, 50 << 20 }, nil},
		{"50 MB body of unknown length to Join", join, func() (io.Reader, int64) { return &zeros{n: 50 << 20}, -1 }, nil},
		{"50 MB body to the management API without a token", s.URL() + openvpcv1connect.VpcServiceCreateVpcProcedure,
			func() (io.Reader, int64) { return &zeros{n: 50 << 20}, 50 << 20 }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var status int
			var code string
			start := time.Now()
			n := allocated(func() {
				body, size := c.body()
				status, code = post(t, hc, c.url, body, size, c.header)
			})
			if code != connect.CodeResourceExhausted.String() {
				t.Errorf("status %d, code %q; want resource_exhausted", status, code)
			}
			if n > 20<<20 {
				t.Errorf("the server allocated %d MB for it", n>>20)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("refused after %v", d)
			}
		})
	}
	// A small gzip body to Join is still served (and refused for its token).
	var small bytes.Buffer
	zw = gzip.NewWriter(&small)
	b, _ := proto.Marshal(&pb.JoinRequest{Token: "nope", HostId: "host-a", UnderlayAddress: "127.0.1.1"})
	zw.Write(b)
	zw.Close()
	if _, code := post(t, hc, join, &small, int64(small.Len()), gz); code != connect.CodeUnauthenticated.String() {
		t.Errorf("a small gzip Join: code %q, want unauthenticated (a bad token)", code)
	}
}

// TestAuthenticatedMessagesBounded: an administrator's message is bounded
// too (per message, after decompression), and a huge name comes back in an
// error of a few hundred bytes, not repeated whole.
func TestAuthenticatedMessagesBounded(t *testing.T) {
	s := startServer(t)
	vpcs := s.vpcs(s.adminHTTP(t))
	_, err := vpcs.CreateVpc(ctx(t), connect.NewRequest(&pb.CreateVpcRequest{Name: strings.Repeat("a", server.MaxMessage+1), Cidr: "10.0.0.0/16"}))
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("CreateVpc with a name over %d bytes: %v, want resource_exhausted", server.MaxMessage, err)
	}
	gz := openvpcv1connect.NewVpcServiceClient(s.adminHTTP(t), s.URL(), connect.WithSendGzip())
	_, err = gz.CreateVpc(ctx(t), connect.NewRequest(&pb.CreateVpcRequest{Name: strings.Repeat("a", 64<<20), Cidr: "10.0.0.0/16"}))
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("CreateVpc with a gzip'ed name of 64 MB: %v, want resource_exhausted", err)
	}
	huge := strings.Repeat("b", 1<<20)
	_, err = vpcs.CreateVpc(ctx(t), connect.NewRequest(&pb.CreateVpcRequest{Name: huge, Cidr: "10.0.0.0/16"}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("CreateVpc with a name of 1 MB: %v, want invalid_argument", err)
	}
	if msg := err.(*connect.Error).Message(); len(msg) > 512 {
		t.Errorf("the error repeats %d bytes of the name: %.200q…", len(msg), msg)
	}
}

// TestAnonymousCallsBounded: anonymous calls in flight are bounded. Calls
// that hold their slot (their body arrives slowly) leave the next one
// refused after a short wait; once they end, joins are served again.
func TestAnonymousCallsBounded(t *testing.T) {
	s := startServer(t)
	hc := s.anonymous(t)
	join := s.URL() + openvpcv1connect.TrustServiceJoinProcedure
	var writers []*io.PipeWriter
	var wg sync.WaitGroup
	for range server.MaxAnonymousCalls {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx(t), http.MethodPost, join, pr)
			req.ContentLength = 100
			req.Header.Set("Content-Type", "application/proto")
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
			}
		})
		pw.Write([]byte{0x0a}) // a byte, so the handler is reading the body
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if _, code := post(t, hc, join, strings.NewReader(""), 0, nil); code != connect.CodeUnavailable.String() {
		t.Errorf("call %d: code %q, want unavailable (agents retry it)", server.MaxAnonymousCalls+1, code)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("refused after %v", d)
	}
	for _, w := range writers {
		w.CloseWithError(io.ErrUnexpectedEOF)
	}
	wg.Wait()
	if _, code := post(t, hc, join, strings.NewReader(""), 0, nil); code != connect.CodeUnauthenticated.String() {
		t.Errorf("after the slow calls ended: code %q, want unauthenticated (an empty token)", code)
	}
}
