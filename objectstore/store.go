// Package objectstore is openvpc's S3-compatible object store: the
// service gateway endpoints lead to. It answers real S3 clients
// (path-style) through gofakes3, on a disk or memory backend, and
// evaluates bucket policies and endpoint policies on every request
// against where the request came from.
//
// It trusts the service node, not the packet: on its endpoint listener a
// connection must start with the PROXY v2 header a service node writes
// (vpceproxy), and the source and endpoint id come from there; on its
// direct listener (the internet path: igw + Elastic IP) there is no
// endpoint and the source is the connection's peer, so a policy that says
// "only via vpce-…" refuses it.
package objectstore

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/pires/go-proxyproto"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/errgroup"

	"github.com/openvpc/openvpc/policy"
	"github.com/openvpc/openvpc/vpceproxy"
)

// Config is what a store needs. Field comments are the user docs.
type Config struct {
	// Dir keeps objects (objects.bolt) and bucket policies (policies/);
	// "" keeps everything in memory, gone when the store stops.
	Dir string
	// Endpoints is where service nodes connect; every connection must
	// begin with a vpceproxy header, which the store believes. Nil: no
	// endpoint traffic. Best a unix socket in a directory only the store's
	// user can enter; on TCP, TrustPeer is required.
	Endpoints net.Listener
	// TrustPeer says whether a connection from peer to Endpoints is a
	// service node's (for TCP: the registered service nodes' addresses);
	// others are closed before their header is read. Nil: every peer —
	// allowed only when Endpoints is a unix socket.
	TrustPeer func(peer net.Addr) bool
	// Direct is where clients connect without an endpoint (the internet
	// path); a PROXY header there is refused. Nil: none.
	Direct net.Listener
	// EndpointPolicy returns the policy of endpoint vpce — for one
	// without a document of its own, policy.FullAccessPolicy() — or nil
	// for an endpoint it does not know, whose requests are denied.
	// Required with Endpoints.
	EndpointPolicy func(vpce string) *policy.Policy
	// Log receives one line per request (info) and per refused connection.
	Log *slog.Logger
	// Keep is how many requests Requests remembers (default 1024).
	Keep int
}

// Store is a running object store.
type Store struct {
	cfg     Config
	s3      http.Handler
	backend gofakes3.Backend
	closer  func() error

	mu       sync.RWMutex
	policies map[string]bucketPolicy

	logMu sync.Mutex
	log   []Request // a ring of the last cfg.Keep requests
	next  int
	total uint64
}

type bucketPolicy struct {
	doc []byte
	p   *policy.Policy
}

// Request is one request as the store logged it.
type Request struct {
	Time     time.Time
	Method   string
	Action   string // s3:GetObject, …
	Bucket   string
	Key      string
	Source   netip.Addr // as the store saw it: private through an endpoint, the Elastic IP over the internet
	Endpoint string     // vpce-…, "" over the internet
	VPC      string
	Decision policy.Decision
	Status   int
}

// Log field names.
const (
	logAction   = "action"
	logBucket   = "bucket"
	logKey      = "key"
	logSource   = "source"
	logEndpoint = "endpoint"
	logVPC      = "vpc"
	logDecision = "decision"
	logStatus   = "status"
)

// New opens a store; Run serves it.
func New(cfg Config) (*Store, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 1024
	}
	if cfg.Endpoints != nil {
		if cfg.EndpointPolicy == nil {
			return nil, errors.New("objectstore: Endpoints needs EndpointPolicy (the endpoints' policies); without it no endpoint policy would be enforced")
		}
		if cfg.TrustPeer == nil && cfg.Endpoints.Addr().Network() != "unix" {
			return nil, fmt.Errorf("objectstore: the endpoints listener %v is on %s: give TrustPeer (the service nodes' addresses), or use a unix socket in a private directory — any process that can connect could claim any endpoint and source", cfg.Endpoints.Addr(), cfg.Endpoints.Addr().Network())
		}
	}
	s := &Store{cfg: cfg, policies: map[string]bucketPolicy{}, closer: func() error { return nil }}
	if cfg.Dir == "" {
		s.backend = s3mem.New()
	} else {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, "policies"), 0o700); err != nil {
			return nil, fmt.Errorf("objectstore: %w (is --data-dir writable?)", err)
		}
		db, err := bolt.Open(filepath.Join(cfg.Dir, "objects.bolt"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
		if err != nil {
			return nil, fmt.Errorf("objectstore: opening %s: %w (is another store using it?)", cfg.Dir, err)
		}
		s.backend, s.closer = s3bolt.New(db), db.Close
		if err := s.loadPolicies(); err != nil {
			db.Close()
			return nil, err
		}
	}
	s.s3 = gofakes3.New(s.backend, gofakes3.WithAutoBucket(false)).Server()
	return s, nil
}

type connKey struct{}

// Run serves the listeners until ctx ends, then closes them and the
// backend.
func (s *Store) Run(ctx context.Context) error {
	defer s.closer()
	g, ctx := errgroup.WithContext(ctx)
	var servers []*http.Server
	serve := func(l net.Listener) {
		srv := &http.Server{
			Handler:           s,
			ReadHeaderTimeout: 30 * time.Second,
			// An idle keep-alive connection costs a goroutine and a file
			// descriptor (and, through an endpoint, a service node's
			// connection slot): let it go.
			IdleTimeout: idleTimeout,
			ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
			ErrorLog:    slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelDebug),
		}
		servers = append(servers, srv)
		g.Go(func() error {
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("objectstore: serving %v: %w", l.Addr(), err)
			}
			return nil
		})
	}
	if l := s.cfg.Endpoints; l != nil {
		serve(&proxyproto.Listener{
			Listener: l,
			ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
				if s.cfg.TrustPeer != nil && !s.cfg.TrustPeer(o.Upstream) {
					s.cfg.Log.Warn("objectstore: refused a connection to the endpoints listener from a peer that is no service node", "peer", o.Upstream.String())
					return proxyproto.REJECT, proxyproto.ErrInvalidUpstream // closed, header unread
				}
				return proxyproto.REQUIRE, nil
			},
			ValidateHeader:    func(h *proxyproto.Header) error { _, err := vpceproxy.FromHeader(h); return err },
			ReadHeaderTimeout: 10 * time.Second,
		})
	}
	if l := s.cfg.Direct; l != nil {
		serve(&proxyproto.Listener{
			Listener: l,
			// A PROXY header from a client is someone claiming to be a
			// service node: refused, never believed.
			ConnPolicy: func(proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) { return proxyproto.REJECT, nil },
		})
	}
	g.Go(func() error {
		<-ctx.Done()
		for _, srv := range servers {
			srv.Close()
		}
		return nil
	})
	return g.Wait()
}

// origin is where r came from: from the PROXY header on an endpoint
// connection, from the peer otherwise.
func origin(r *http.Request) (vpceproxy.Origin, bool) {
	if c, ok := r.Context().Value(connKey{}).(*proxyproto.Conn); ok {
		if h := c.ProxyHeader(); h != nil {
			o, err := vpceproxy.FromHeader(h)
			return o, err == nil
		}
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return vpceproxy.Origin{}, false
	}
	return vpceproxy.Origin{Source: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, true
}

// ServeHTTP authorizes and logs every request, answers the bucket policy
// calls itself and hands the rest to the S3 implementation.
func (s *Store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o, ok := origin(r)
	if !ok {
		http.Error(w, "objectstore: cannot tell where this connection came from", http.StatusBadRequest)
		return
	}
	op := classify(r)
	req := &policy.Request{Action: op.action, Resource: op.resource(), SourceVpce: o.Endpoint, SourceVpc: o.VPC}
	if o.Endpoint != "" {
		req.VpcSourceIP = o.Source.Addr() // as on AWS: through an endpoint, no aws:SourceIp
	} else {
		req.SourceIP = o.Source.Addr()
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	d := policy.ImplicitDeny
	if code, msg := s.check(r, op, req, &d); code != "" {
		status := http.StatusBadRequest
		switch code {
		case "AccessDenied":
			status = http.StatusForbidden
		case "NotImplemented":
			status = http.StatusNotImplemented
		}
		writeError(sw, r, status, code, msg)
	} else if op.policy {
		s.servePolicy(sw, r, op.bucket)
	} else {
		s.s3.ServeHTTP(sw, r)
		if op.action == "s3:DeleteBucket" && sw.status == http.StatusNoContent {
			s.dropPolicy(op.bucket)
		}
	}
	s.record(Request{Time: time.Now(), Method: r.Method, Action: op.action, Bucket: op.bucket, Key: op.key,
		Source: o.Source.Addr(), Endpoint: o.Endpoint, VPC: o.VPC, Decision: d, Status: sw.status})
}

// idleTimeout closes keep-alive connections without a request for this long.
const idleTimeout = 2 * time.Minute

// Limits on what the store reads before it authorizes.
const (
	maxKey          = gofakes3.KeySizeLimit // S3's 1024 bytes; also bounds glob matching (policy.Match)
	maxBucket       = 63                    // S3's bucket name limit; the rest of what policies match against
	maxDeleteBody   = 1 << 20               // DeleteObjects body
	maxDeleteObject = 1000                  // keys per DeleteObjects, as S3
)

// check authorizes r: the action classify named on its resource, and
// what else the request touches — the object a CopyObject reads, each key
// a DeleteObjects deletes. It returns the S3 error code and message to
// answer with, "" to serve the request; *d is the policy decision logged.
func (s *Store) check(r *http.Request, op operation, req *policy.Request, d *policy.Decision) (code, msg string) {
	if len(op.key) > maxKey {
		return "KeyTooLongError", fmt.Sprintf("the key is %d bytes; at most %d are allowed", len(op.key), maxKey)
	}
	if len(op.bucket) > maxBucket {
		return "InvalidBucketName", fmt.Sprintf("the bucket name is %d bytes; at most %d are allowed", len(op.bucket), maxBucket)
	}
	if op.refuse != "" {
		return op.refuse, op.refuseMsg
	}
	if *d = s.authorize(op.bucket, req); *d != policy.Allow {
		return "AccessDenied", "Access Denied"
	}
	if r.Method == http.MethodPut {
		if sb, sk, present, ok := copySource(r.Header); present {
			if !ok || sb == "" {
				return "InvalidArgument", "X-Amz-Copy-Source must be /bucket/key (URL-encoded)"
			}
			if len(sb) > maxBucket {
				return "InvalidBucketName", fmt.Sprintf("the copy source bucket name is %d bytes; at most %d are allowed", len(sb), maxBucket)
			}
			if len(sk) > maxKey {
				return "KeyTooLongError", fmt.Sprintf("the copy source key is %d bytes; at most %d are allowed", len(sk), maxKey)
			}
			// CopyObject reads the source: GetObject on it must be allowed
			// by the source bucket's policy and the endpoint's.
			src := *req
			src.Action, src.Resource = "s3:GetObject", "arn:aws:s3:::"+sb+"/"+sk
			if *d = s.authorize(sb, &src); *d != policy.Allow {
				return "AccessDenied", "Access Denied (reading the copy source)"
			}
		}
	}
	if op.deleteMulti {
		return s.checkDeleteMulti(r, op, req, d)
	}
	return "", ""
}

// checkDeleteMulti reads a DeleteObjects body (bounded), authorizes
// s3:DeleteObject on every key it names and hands the body back for
// gofakes3 to decode the same way.
func (s *Store) checkDeleteMulti(r *http.Request, op operation, req *policy.Request, d *policy.Decision) (code, msg string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxDeleteBody+1))
	r.Body.Close()
	if err != nil {
		return "IncompleteBody", err.Error()
	}
	if len(body) > maxDeleteBody {
		return "MalformedXML", fmt.Sprintf("the Delete body is over %d bytes; send at most %d keys per request", maxDeleteBody, maxDeleteObject)
	}
	var in gofakes3.DeleteRequest
	if err := xml.Unmarshal(body, &in); err != nil {
		return "MalformedXML", err.Error()
	}
	if len(in.Objects) > maxDeleteObject {
		return "MalformedXML", fmt.Sprintf("%d keys in one Delete; at most %d are allowed", len(in.Objects), maxDeleteObject)
	}
	one := *req
	one.Action = "s3:DeleteObject"
	for _, obj := range in.Objects {
		if len(obj.Key) > maxKey {
			return "KeyTooLongError", fmt.Sprintf("a key is %d bytes; at most %d are allowed", len(obj.Key), maxKey)
		}
		one.Resource = "arn:aws:s3:::" + op.bucket + "/" + obj.Key
		if *d = s.authorize(op.bucket, &one); *d != policy.Allow {
			return "AccessDenied", "Access Denied (deleting " + obj.Key + ")"
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return "", ""
}

// authorize: through an endpoint, its policy must allow the request (it
// is an allow-list, full access by default; an unknown endpoint gets
// nothing); the bucket's policy may deny
// it. The store has no accounts — every caller is the bucket owner — so,
// as for the owner on AWS, a bucket policy restricts by its Deny
// statements and an explicit Deny wins over everything.
func (s *Store) authorize(bucket string, r *policy.Request) policy.Decision {
	if r.SourceVpce != "" {
		p := s.cfg.EndpointPolicy(r.SourceVpce)
		if p == nil {
			return policy.ExplicitDeny // an endpoint the store does not know (yet, or any more)
		}
		if d := p.Evaluate(r); d != policy.Allow {
			return d
		}
	}
	if bucket != "" {
		s.mu.RLock()
		bp, ok := s.policies[bucket]
		s.mu.RUnlock()
		if ok && bp.p.Evaluate(r) == policy.ExplicitDeny {
			return policy.ExplicitDeny
		}
	}
	return policy.Allow
}

func (s *Store) record(e Request) {
	s.cfg.Log.Info("s3 request", logAction, e.Action, logBucket, e.Bucket, logKey, e.Key, logSource, e.Source,
		logEndpoint, e.Endpoint, logVPC, e.VPC, logDecision, e.Decision.String(), logStatus, e.Status)
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if len(s.log) < s.cfg.Keep {
		s.log = append(s.log, e)
	} else {
		s.log[s.next] = e
	}
	s.next = (s.next + 1) % s.cfg.Keep
	s.total++
}

// Requests returns the requests remembered, oldest first.
func (s *Store) Requests() []Request {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if len(s.log) < s.cfg.Keep {
		return append([]Request(nil), s.log...)
	}
	return append(append([]Request(nil), s.log[s.next:]...), s.log[:s.next]...)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Flush lets streamed responses through.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
