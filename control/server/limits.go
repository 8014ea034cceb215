package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/openvpc/openvpc/control/trust"
)

// Limits on what a caller can make the server read, decompress and hold.
// Anonymous calls (TrustService/Join) are bounded tightly: whoever sends
// them has proven nothing yet.
const (
	// MaxMessage bounds one message of an authenticated call, after
	// decompression: gRPC's customary 4 MiB, far above the largest request
	// openvpc's own clients send (a batch of security events).
	MaxMessage = 4 << 20
	// MaxAnonymousMessage bounds the whole body of an anonymous call
	// (compressed and not): a join is a token, an id, an address and a
	// certificate request, about 1 KiB.
	MaxAnonymousMessage = 16 << 10
	// MaxAnonymousCalls is how many anonymous calls are served at once;
	// more wait up to anonymousWait, then are refused.
	MaxAnonymousCalls = 16
	anonymousWait     = time.Second
	// maxHeaderBytes bounds request headers (a bearer token, a few
	// connect headers): the net/http default of 1 MB is 16 times more.
	maxHeaderBytes = 64 << 10
	// framing is what a unary body holds besides its message (the gRPC
	// envelope's 5 bytes, with room to spare).
	framing = 64
)

// clientStreams are the procedures whose request body is a stream of
// messages for as long as the call lasts (AckStream): their body as a whole
// is not bounded, each message is.
var clientStreams = func() map[string]bool {
	m := map[string]bool{}
	protoregistry.GlobalFiles.RangeFilesByPackage("openvpc.v1", func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				if md := svc.Methods().Get(j); md.IsStreamingClient() {
					m["/"+string(svc.FullName())+"/"+string(md.Name())] = true
				}
			}
		}
		return true
	})
	return m
}()

// limitBodies bounds every request body before anything reads it, and the
// number of anonymous calls in flight. It runs before authentication, so
// that a body too large is refused before the 401 and never read whole.
func limitBodies(next http.Handler) http.Handler {
	ew := connect.NewErrorWriter()
	anonymous := make(chan struct{}, MaxAnonymousCalls)
	refuse := func(w http.ResponseWriter, r *http.Request, code connect.Code, format string, args ...any) {
		_ = ew.Write(w, r, connect.NewError(code, fmt.Errorf(format, args...)))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := int64(MaxMessage + framing)
		anon := trust.Anonymous(r.URL.Path)
		switch {
		case anon:
			limit = MaxAnonymousMessage
		case clientStreams[r.URL.Path]:
			limit = -1
		}
		if limit >= 0 {
			if r.ContentLength > limit {
				refuse(w, r, connect.CodeResourceExhausted, "request body of %d bytes is larger than the %d this call accepts", r.ContentLength, limit)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		if anon && r.Method == http.MethodPost {
			if !acquire(r.Context(), anonymous) {
				// Unavailable, not resource_exhausted: joining agents retry
				// it with backoff, as a burst of real joins should.
				refuse(w, r, connect.CodeUnavailable, "the server is busy with %d unauthenticated calls; retry in a few seconds", MaxAnonymousCalls)
				return
			}
			defer func() { <-anonymous }()
		}
		if limit >= 0 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			if err := checkFrames(r); err != nil {
				_ = ew.Write(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// checkFrames reads a unary gRPC (or gRPC-Web) body, bounded above, and
// checks its framing: connect would answer a frame cut short as its own
// internal error, where it is the caller's invalid argument. (Streams get
// the same code from apierr's interceptor.)
func checkFrames(r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("request body: %w", err))
		}
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("request body cut short: %w", err))
	}
	for b := body; len(b) > 0; {
		if len(b) < 5 {
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("malformed request: %d bytes where a 5-byte frame header belongs", len(b)))
		}
		n := binary.BigEndian.Uint32(b[1:5])
		if uint64(n) > uint64(len(b)-5) {
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("malformed request: a frame promises %d bytes and has %d", n, len(b)-5))
		}
		b = b[5+n:]
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return nil
}

// acquire takes a slot of sem, waiting at most anonymousWait.
func acquire(ctx context.Context, sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(anonymousWait)
	defer t.Stop()
	select {
	case sem <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// gzipCapped is connect's gzip with a bound on what one message inflates
// to: without it, refusing an oversized message still inflates all of it
// (connect reads to the end to report its size), so a 200 KB body would
// cost 200 MB of work.
func gzipCapped(max int64) connect.HandlerOption {
	return connect.WithCompression("gzip",
		func() connect.Decompressor { return &cappedGzip{max: max} },
		func() connect.Compressor { return gzip.NewWriter(io.Discard) })
}

type cappedGzip struct {
	gz   gzip.Reader
	max  int64
	read int64
}

func (d *cappedGzip) Read(p []byte) (int, error) {
	if d.read > d.max {
		return 0, d.tooBig()
	}
	if room := d.max + 1 - d.read; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := d.gz.Read(p)
	d.read += int64(n)
	if d.read > d.max {
		return n, d.tooBig()
	}
	return n, err
}

func (d *cappedGzip) tooBig() error {
	return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("message inflates to more than %d bytes", d.max))
}

func (d *cappedGzip) Reset(r io.Reader) error {
	d.read = 0
	return d.gz.Reset(r)
}

func (d *cappedGzip) Close() error { return d.gz.Close() }
